//! Learning-rate schedules with linear warmup, as `transformers`'
//! `get_{constant,linear,cosine}_schedule_with_warmup` (`LambdaLR`): the update of optimizer
//! step `k` (counting from 0) uses `lr · factor(k)`.

use std::str::FromStr;

/// The decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Constant after warmup.
    Constant,
    /// Linear decay to 0 at the last step.
    #[default]
    Linear,
    /// Half a cosine down to 0 at the last step.
    Cosine,
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            other => Err(format!(
                "unknown schedule `{other}`; use constant, linear or cosine"
            )),
        }
    }
}

impl Schedule {
    /// The multiplier of the base learning rate at optimizer step `step`.
    pub fn factor(self, step: usize, warmup: usize, total: usize) -> f64 {
        if step < warmup {
            return step as f64 / warmup.max(1) as f64;
        }
        let span = total.saturating_sub(warmup).max(1) as f64;
        match self {
            Self::Constant => 1.0,
            Self::Linear => (total.saturating_sub(step) as f64 / span).max(0.0),
            Self::Cosine => {
                let progress = (step - warmup) as f64 / span;
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    }
}

/// Warmup steps for a warmup fraction, as `transformers` (`ceil(total · fraction)`).
pub fn warmup_steps(total: usize, fraction: f64) -> usize {
    (total as f64 * fraction).ceil() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_transformers_lambdas() {
        // get_linear_schedule_with_warmup(opt, 2, 10): [0, .5, 1, 7/8, 6/8, ...]
        let f: Vec<f64> = (0..11).map(|k| Schedule::Linear.factor(k, 2, 10)).collect();
        assert_eq!(&f[..4], &[0.0, 0.5, 1.0, 0.875]);
        assert_eq!(f[10], 0.0);
        assert_eq!(Schedule::Constant.factor(0, 0, 10), 1.0);
        assert_eq!(Schedule::Constant.factor(1, 4, 10), 0.25);
        // Cosine: halfway through the decay the factor is 0.5.
        assert!((Schedule::Cosine.factor(6, 2, 10) - 0.5).abs() < 1e-12);
        assert!(Schedule::Cosine.factor(10, 2, 10).abs() < 1e-12);
        assert_eq!(warmup_steps(20, 0.05), 1);
        assert_eq!(warmup_steps(20, 0.0), 0);
        assert_eq!(warmup_steps(20, 0.1), 2);
        assert_eq!(warmup_steps(30, 0.1), 3);
    }
}

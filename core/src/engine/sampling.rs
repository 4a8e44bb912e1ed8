//! Next-token choice on the host, in `transformers`' order: temperature → top-k → top-p →
//! categorical draw; `temperature == 0` is greedy (first maximum, like `argmax`). Ids the
//! tokenizer does not know (Pythia pads its logits to 50,304 rows) are never chosen.

/// Sampling settings of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 for greedy decoding.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability mass reaches `p` (1 = off).
    pub top_p: f32,
    /// Seed of the random draws; `None` draws a seed from the clock.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Rejects values that have no meaning, with a message naming the fix.
    pub fn validate(&self) -> Result<(), String> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(format!(
                "temperature must be >= 0 (0 = greedy), got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top-p must be in (0, 1], got {}", self.top_p));
        }
        Ok(())
    }
}

use crate::rng::SplitMix64;

/// Chooses the next token from one row of logits. `allowed(id)` filters ids.
pub fn choose(
    logits: &[f32],
    params: &SamplingParams,
    rng: &mut SplitMix64,
    allowed: impl Fn(usize) -> bool,
) -> u32 {
    if params.temperature == 0.0 {
        return argmax(logits, allowed);
    }
    let t = params.temperature;
    let mut cand: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(i, v)| allowed(*i) && !v.is_nan())
        .map(|(i, v)| (i as u32, v / t))
        .collect();
    if cand.is_empty() {
        return 0;
    }
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if params.top_k > 0 && params.top_k < cand.len() {
        cand.truncate(params.top_k);
    }
    let max = cand[0].1;
    let mut probs: Vec<f64> = cand.iter().map(|(_, v)| ((v - max) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    for p in &mut probs {
        *p /= total;
    }
    if params.top_p < 1.0 {
        let mut mass = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            mass += p;
            if mass >= params.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep.max(1));
        let total: f64 = probs.iter().sum();
        for p in &mut probs {
            *p /= total;
        }
    }
    let u = rng.next_f64();
    let mut acc = 0.0;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return cand[i].0;
        }
    }
    cand[probs.len() - 1].0
}

/// Index of the first maximum among allowed ids.
pub fn argmax(logits: &[f32], allowed: impl Fn(usize) -> bool) -> u32 {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if !allowed(i) || v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum_and_skips_unknown_ids() {
        let logits = [0.1, 3.0, 3.0, 9.0];
        assert_eq!(argmax(&logits, |i| i < 3), 1);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits = [0.1, 2.0, 1.0];
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            ..Default::default()
        };
        let mut rng = SplitMix64::new(7);
        for _ in 0..20 {
            assert_eq!(choose(&logits, &params, &mut rng, |_| true), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // Probabilities ~ [0.665, 0.245, 0.09]: p = 0.6 keeps only the first token.
        let logits = [2.0, 1.0, 0.0];
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.6,
            ..Default::default()
        };
        let mut rng = SplitMix64::new(1);
        for _ in 0..50 {
            assert_eq!(choose(&logits, &params, &mut rng, |_| true), 0);
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let params = SamplingParams {
            temperature: 0.8,
            top_k: 20,
            top_p: 0.9,
            seed: Some(3),
        };
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..30)
                .map(|_| choose(&logits, &params, &mut rng, |_| true))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}

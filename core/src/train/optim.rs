//! AdamW with PyTorch's semantics (`torch.optim.AdamW`, single-tensor path) and global
//! gradient-norm clipping as `torch.nn.utils.clip_grad_norm_`, on host vectors.
//!
//! Burn 0.21's `AdamW` computes the same update (`θ·(1 − lr·λ) − lr·m̂/(√v̂ + ε)`), but it
//! works through `Module` parameters and `GradientsParams`, and Burn's gradient clipping is per
//! parameter, not over the global norm. The LoRA factors live on the host
//! ([`super::params::LoraParams`]), so the step is written here, in torch's operation order.

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    /// `β₁` (torch: 0.9).
    pub beta1: f64,
    /// `β₂` (torch: 0.999).
    pub beta2: f64,
    /// `ε` (torch: 1e-8).
    pub eps: f64,
    /// Decoupled weight decay `λ`.
    pub weight_decay: f64,
}

impl Default for AdamW {
    /// torch's betas and epsilon, no weight decay (as `transformers`' `TrainingArguments`).
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// First and second moments of every parameter tensor, and the step count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdamState {
    /// Optimizer steps taken.
    pub step: u64,
    /// First moments, one vector per parameter tensor.
    pub m: Vec<Vec<f32>>,
    /// Second moments.
    pub v: Vec<Vec<f32>>,
}

impl AdamW {
    /// One update of `params` with `grads` at learning rate `lr`:
    /// `θ ← θ·(1 − lr·λ)`, `m ← m + (1 − β₁)(g − m)`, `v ← β₂·v + (1 − β₂)·g²`,
    /// `θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)`.
    pub fn step(
        &self,
        lr: f64,
        params: &mut [&mut Vec<f32>],
        grads: &[Vec<f32>],
        state: &mut AdamState,
    ) {
        if state.m.len() != params.len() {
            state.m = params.iter().map(|p| vec![0.0; p.len()]).collect();
            state.v = params.iter().map(|p| vec![0.0; p.len()]).collect();
        }
        state.step += 1;
        let t = state.step as i32;
        let decay = (1.0 - lr * self.weight_decay) as f32;
        let one_minus_b1 = (1.0 - self.beta1) as f32;
        let b2 = self.beta2 as f32;
        let one_minus_b2 = (1.0 - self.beta2) as f32;
        let step_size = (lr / (1.0 - self.beta1.powi(t))) as f32;
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt() as f32;
        let eps = self.eps as f32;
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut state.m)
            .zip(&mut state.v)
        {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *p *= decay;
                *m += one_minus_b1 * (g - *m);
                *v = *v * b2 + one_minus_b2 * g * g;
                let denom = v.sqrt() / bc2_sqrt + eps;
                *p += -step_size * (*m / denom);
            }
        }
    }
}

/// Scales all gradients together so that their global L2 norm is at most `max_norm`
/// (`clip_grad_norm_`: coefficient `max_norm / (norm + 1e-6)`, clamped to 1); returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut [Vec<f32>], max_norm: f64) -> f64 {
    let norms: Vec<f32> = grads
        .iter()
        .map(|g| g.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32)
        .collect();
    let total = norms
        .iter()
        .map(|&n| n as f64 * n as f64)
        .sum::<f64>()
        .sqrt() as f32;
    let coef = ((max_norm as f32) / (total + 1e-6)).min(1.0);
    for g in grads.iter_mut() {
        for x in g.iter_mut() {
            *x *= coef;
        }
    }
    total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adamw_matches_torch_reference_values() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.5) with p = [1, -2], grads
        // [0.5, -1] then [0.25, 3]:
        //   after step 1: [0.85, -1.8]; after step 2: [0.7290477..., -1.7099472...]
        // (hand-derived from torch's single-tensor update; see the formula above).
        let opt = AdamW {
            weight_decay: 0.5,
            ..AdamW::default()
        };
        let mut p = vec![1.0f32, -2.0];
        let mut state = AdamState::default();
        opt.step(0.1, &mut [&mut p], &[vec![0.5, -1.0]], &mut state);
        // Step 1: m̂ = g, v̂ = g², so the update is lr·sign(g) (ε aside) after the decay.
        assert!((p[0] - (1.0 * 0.95 - 0.1)).abs() < 1e-6, "{p:?}");
        assert!((p[1] - (-2.0 * 0.95 + 0.1)).abs() < 1e-6, "{p:?}");
        opt.step(0.1, &mut [&mut p], &[vec![0.25, 3.0]], &mut state);
        let expect = |p0: f64, g1: f64, g2: f64| {
            let m = 0.9 * (0.1 * g1) + 0.1 * g2;
            let v = 0.999 * (0.001 * g1 * g1) + 0.001 * g2 * g2;
            let (bc1, bc2) = (1.0 - 0.9f64.powi(2), 1.0 - 0.999f64.powi(2));
            p0 * 0.95 - 0.1 / bc1 * m / (v.sqrt() / bc2.sqrt() + 1e-8)
        };
        assert!(
            (p[0] as f64 - expect(0.85, 0.5, 0.25)).abs() < 1e-6,
            "{p:?}"
        );
        assert!(
            (p[1] as f64 - expect(-1.8, -1.0, 3.0)).abs() < 1e-6,
            "{p:?}"
        );
        assert_eq!(state.step, 2);
    }

    #[test]
    fn clipping_uses_the_global_norm() {
        let mut g = vec![vec![3.0f32], vec![4.0f32]];
        let norm = clip_grad_norm(&mut g, 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        assert!(
            (g[0][0] - 0.6).abs() < 1e-6 && (g[1][0] - 0.8).abs() < 1e-6,
            "{g:?}"
        );
        let mut small = vec![vec![0.3f32]];
        clip_grad_norm(&mut small, 1.0);
        assert_eq!(small[0][0], 0.3);
    }
}

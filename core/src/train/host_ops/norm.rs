//! Frozen normalisation layers on host values, one pass per row each way: Burn's LayerNorm is
//! nine element-wise operations over the whole activation forward (each a new tensor) and about
//! twice that backward.

use super::{Cpu, InputGrad, Unary, cast, flex_tensor, host_values};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;
use std::sync::Arc;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// A normalisation over the last dimension whose weights do not train.
#[derive(Debug, Clone)]
pub enum HostNorm {
    /// `torch.nn.LayerNorm`: `(x − mean) / √(var + eps) · weight + bias` (biased variance).
    Layer {
        /// Per-feature weight.
        weight: Vec<f32>,
        /// Per-feature bias.
        bias: Vec<f32>,
        /// Added to the variance.
        eps: f32,
    },
    /// RMSNorm: `x / √(mean(x²) + eps) · scale` (Gemma's `scale` is `1 + weight`).
    Rms {
        /// Per-feature scale.
        scale: Vec<f32>,
        /// Added to the mean square.
        eps: f32,
    },
}

impl HostNorm {
    /// Features per row.
    pub fn size(&self) -> usize {
        match self {
            Self::Layer { weight, .. } => weight.len(),
            Self::Rms { scale, .. } => scale.len(),
        }
    }

    /// The multiplier applied after normalising.
    fn gain(&self) -> &[f32] {
        match self {
            Self::Layer { weight, .. } => weight,
            Self::Rms { scale, .. } => scale,
        }
    }

    /// Normalises one row into `y` and writes the normalised values before the gain into
    /// `xhat`; returns the row's reciprocal standard deviation (or root mean square).
    fn forward_row(&self, x: &[f32], y: &mut [f32], xhat: &mut [f32]) -> f32 {
        let n = x.len() as f32;
        let (mean, rstd) = match self {
            Self::Layer { eps, .. } => {
                let mean = x.iter().sum::<f32>() / n;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                (mean, 1.0 / (var + eps).sqrt())
            }
            Self::Rms { eps, .. } => {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / n;
                (0.0, 1.0 / (ms + eps).sqrt())
            }
        };
        for (h, v) in xhat.iter_mut().zip(x) {
            *h = (v - mean) * rstd;
        }
        match self {
            Self::Layer { weight, bias, .. } => {
                for ((y, h), (w, b)) in y.iter_mut().zip(&*xhat).zip(weight.iter().zip(bias)) {
                    *y = h * w + b;
                }
            }
            Self::Rms { scale, .. } => {
                for ((y, h), s) in y.iter_mut().zip(&*xhat).zip(scale) {
                    *y = h * s;
                }
            }
        }
        rstd
    }

    /// The input's gradient for one row, in place over the output's gradient `g`:
    /// with `u = g·gain`, LayerNorm gives `rstd·(u − mean(u) − x̂·mean(u·x̂))` and RMSNorm
    /// `rstd·(u − x̂·mean(u·x̂))`.
    fn backward_row(&self, g: &mut [f32], xhat: &[f32], rstd: f32) {
        let n = g.len() as f32;
        for (g, w) in g.iter_mut().zip(self.gain()) {
            *g *= w;
        }
        let mean_u = match self {
            Self::Layer { .. } => g.iter().sum::<f32>() / n,
            Self::Rms { .. } => 0.0,
        };
        let mean_ux = g.iter().zip(xhat).map(|(u, h)| u * h).sum::<f32>() / n;
        for (g, h) in g.iter_mut().zip(xhat) {
            *g = rstd * (*g - mean_u - h * mean_ux);
        }
    }
}

/// What the backward pass needs: the normalised rows and their reciprocal deviations.
#[derive(Clone)]
struct Saved {
    norm: Arc<HostNorm>,
    xhat: Arc<Vec<f32>>,
    rstd: Arc<Vec<f32>>,
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Saved({} rows)", self.rstd.len())
    }
}

/// `norm` applied over the last dimension of `x`; the gradient reaches `x` only.
///
/// # Panics
/// When `B` is not the backend these paths serve (callers check [`super::serves`]), or the last
/// dimension is not the norm's size (a caller bug).
pub fn norm<B: Backend, const D: usize>(x: Tensor<B, D>, norm: &Arc<HostNorm>) -> Tensor<B, D> {
    cast(norm_cpu::<D>(cast(x), norm.clone()))
}

fn norm_cpu<const D: usize>(x: Tensor<Cpu, D>, norm: Arc<HostNorm>) -> Tensor<Cpu, D> {
    let x = x.into_primitive().tensor();
    let shape = x.primitive.layout().shape().clone();
    let n = norm.size();
    assert_eq!(shape[D - 1], n, "the norm's size is the last dimension");
    let input = host_values(&x.primitive);
    let rows = input.len() / n.max(1);
    let mut y = vec![0f32; input.len()];
    let mut xhat = vec![0f32; input.len()];
    let mut rstd = vec![0f32; rows];
    y.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(xhat.par_chunks_mut(n * ROWS_PER_TASK))
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .zip(input.par_chunks(n * ROWS_PER_TASK))
        .for_each(|(((y, xhat), rstd), x)| {
            for (((y, xhat), r), x) in y
                .chunks_mut(n)
                .zip(xhat.chunks_mut(n))
                .zip(rstd.iter_mut())
                .zip(x.chunks(n))
            {
                *r = norm.forward_row(x, y, xhat);
            }
        });
    Unary::new(&x).finish(flex_tensor(y, shape), || Saved {
        norm,
        xhat: Arc::new(xhat),
        rstd: Arc::new(rstd),
    })
}

impl InputGrad for Saved {
    fn input_grad(self, grad: FlexTensor) -> FlexTensor {
        let shape = grad.layout().shape().clone();
        let mut g = host_values(&grad).into_owned();
        let n = self.norm.size();
        g.par_chunks_mut(n * ROWS_PER_TASK)
            .zip(self.xhat.par_chunks(n * ROWS_PER_TASK))
            .zip(self.rstd.par_chunks(ROWS_PER_TASK))
            .for_each(|((g, xhat), rstd)| {
                for ((g, xhat), &r) in g.chunks_mut(n).zip(xhat.chunks(n)).zip(rstd) {
                    self.norm.backward_row(g, xhat, r);
                }
            });
        flex_tensor(g, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{host, max_diff, tensor, values};
    use super::*;

    /// Output and input gradient of the host norm and of the same norm in Burn operations.
    fn both(norm: HostNorm, burn: impl Fn(Tensor<Cpu, 3>) -> Tensor<Cpu, 3>) {
        let (b, t, n) = (3, 5, 70);
        let x: Vec<f32> = values(b * t * n, 1).iter().map(|v| v * 3.0 + 0.5).collect();
        let upstream = tensor(values(b * t * n, 2), [b, t, n]);
        let norm = Arc::new(norm);
        let run = |host_path: bool| {
            let x = tensor(x.clone(), [b, t, n]).require_grad();
            let y = if host_path {
                super::norm(x.clone(), &norm)
            } else {
                burn(x.clone())
            };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            (host(y.inner()), host(x.grad(&grads).unwrap()))
        };
        let ((y1, g1), (y2, g2)) = (run(true), run(false));
        assert!(max_diff(&y1, &y2) < 1e-5, "output {}", max_diff(&y1, &y2));
        assert!(max_diff(&g1, &g2) < 1e-5, "gradient {}", max_diff(&g1, &g2));
    }

    #[test]
    fn layer_norm_and_its_gradient_equal_burns() {
        let n = 70;
        let (w, b) = (values(n, 3), values(n, 4));
        let (wt, bt) = (tensor(w.clone(), [n]), tensor(b.clone(), [n]));
        both(
            HostNorm::Layer {
                weight: w,
                bias: b,
                eps: 1e-5,
            },
            |x| {
                let mean = x.clone().mean_dim(2);
                let centered = x - mean;
                let var = centered.clone().powi_scalar(2).mean_dim(2);
                let y = centered / (var + 1e-5).sqrt();
                y * wt.clone().unsqueeze::<3>() + bt.clone().unsqueeze::<3>()
            },
        );
    }

    #[test]
    fn rms_norm_and_its_gradient_equal_burns() {
        let n = 70;
        let s: Vec<f32> = values(n, 5).iter().map(|v| 1.0 + v).collect();
        let st = tensor(s.clone(), [n]);
        both(
            HostNorm::Rms {
                scale: s,
                eps: 1e-6,
            },
            |x| {
                let ms = x.clone().powi_scalar(2).mean_dim(2);
                (x / (ms + 1e-6).sqrt()) * st.clone().unsqueeze::<3>()
            },
        );
    }
}

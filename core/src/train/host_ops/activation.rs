//! GELU (the error-function form) on host values, with its derivative: Burn's version calls the
//! C library's `erff` once per value in the forward pass and again in the backward pass.

use super::{Cpu, InputGrad, Unary, cast, flex_tensor, host_values};
use crate::kernels::math::{gelu_erf, gelu_erf_derivative};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;
use std::sync::Arc;

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// The input, kept for the derivative.
#[derive(Clone)]
struct Input(Arc<Vec<f32>>);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Input({} values)", self.0.len())
    }
}

/// `x·Φ(x)` element-wise ([`gelu_erf`]); the backward pass multiplies the incoming gradient by
/// `Φ(x) + x·φ(x)`.
///
/// # Panics
/// When `B` is not the backend these paths serve (callers check [`super::serves`]).
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    cast(gelu_cpu::<D>(cast(x)))
}

fn gelu_cpu<const D: usize>(x: Tensor<Cpu, D>) -> Tensor<Cpu, D> {
    let x = x.into_primitive().tensor();
    let shape = x.primitive.layout().shape().clone();
    let input = host_values(&x.primitive);
    let mut y = vec![0f32; input.len()];
    y.par_chunks_mut(CHUNK)
        .zip(input.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = gelu_erf(x);
            }
        });
    Unary::new(&x).finish(flex_tensor(y, shape), || {
        Input(Arc::new(input.into_owned()))
    })
}

impl InputGrad for Input {
    /// The output's gradient times `Φ(x) + x·φ(x)`.
    fn input_grad(self, grad: FlexTensor) -> FlexTensor {
        let shape = grad.layout().shape().clone();
        let mut values = host_values(&grad).into_owned();
        values
            .par_chunks_mut(CHUNK)
            .zip(self.0.par_chunks(CHUNK))
            .for_each(|(g, x)| {
                for (g, &x) in g.iter_mut().zip(x) {
                    *g *= gelu_erf_derivative(x);
                }
            });
        flex_tensor(values, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{host, max_diff, tensor, values};
    use super::*;

    #[test]
    fn gelu_and_its_gradient_equal_burns() {
        let n = 3 * 5000;
        let x: Vec<f32> = values(n, 3).iter().map(|v| v * 6.0).collect();
        let upstream = tensor(values(n, 4), [3, 5000]);
        let run = |host_path: bool| {
            let t = tensor(x.clone(), [3, 5000]).require_grad();
            let y = if host_path {
                gelu(t.clone())
            } else {
                burn::tensor::activation::gelu(t.clone())
            };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            (host(y.inner()), host(t.grad(&grads).unwrap()))
        };
        let ((y1, g1), (y2, g2)) = (run(true), run(false));
        assert!(max_diff(&y1, &y2) < 2e-6, "{}", max_diff(&y1, &y2));
        assert!(max_diff(&g1, &g2) < 2e-6, "{}", max_diff(&g1, &g2));
    }
}

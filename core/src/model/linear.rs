//! A dense layer holding a Burn-layout `[in, out]` weight (PyTorch's `[out, in]` transposed at load).

use super::ModelError;
use super::weights::Weights;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

/// `y = x·W + b` with `W` stored `[in, out]`.
#[derive(Debug, Clone)]
pub struct Linear<B: Backend> {
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
}

impl<B: Backend> Linear<B> {
    /// Loads `{prefix}.weight` (`[out, in]` on disk) and, when `bias`, `{prefix}.bias`.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let weight = weights.linear_weight::<B>(
            &format!("{prefix}.weight"),
            out_features,
            in_features,
            dtype,
            device,
        )?;
        let bias = if bias {
            Some(weights.tensor::<B, 1>(
                &format!("{prefix}.bias"),
                [out_features],
                dtype,
                device,
            )?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// Applies the layer to `[..., in]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        burn::tensor::module::linear(x, self.weight.clone(), self.bias.clone())
    }
}

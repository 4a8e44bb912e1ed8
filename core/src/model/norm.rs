//! Normalisation layers, computed in f32 and cast back to the compute dtype as `transformers` does.

use super::ModelError;
use super::weights::Weights;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};

/// LayerNorm with weight and bias over the last dimension (GPT-NeoX).
#[derive(Debug, Clone)]
pub struct LayerNorm<B: Backend> {
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `{prefix}.weight` and `{prefix}.bias` (kept in f32).
    pub fn load(
        weights: &Weights,
        prefix: &str,
        size: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            gamma: weights.tensor(&format!("{prefix}.weight"), [size], DType::F32, device)?,
            beta: weights.tensor(&format!("{prefix}.bias"), [size], DType::F32, device)?,
            eps,
        })
    }

    /// Normalises `[B, T, H]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let var = (centered.clone() * centered.clone()).mean_dim(2);
        let y = centered * (var + self.eps).sqrt().recip();
        let y = y * self.gamma.clone().unsqueeze::<3>() + self.beta.clone().unsqueeze::<3>();
        y.cast(dtype)
    }
}

/// Gemma's RMSNorm: `x · rsqrt(mean(x²) + eps) · (1 + w)` in f32 (zero-centred weights).
#[derive(Debug, Clone)]
pub struct GemmaRmsNorm<B: Backend> {
    scale: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend> GemmaRmsNorm<B> {
    /// Loads `{prefix}.weight` and stores `1 + w` in f32.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        size: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let w = weights.read_f32(&format!("{prefix}.weight"), &[size])?;
        let scale: Vec<f32> = w.iter().map(|v| 1.0 + v).collect();
        Ok(Self {
            scale: Tensor::from_data(TensorData::new(scale, [size]), (device, DType::F32)),
            eps,
        })
    }

    /// Normalises the last dimension of a tensor of any rank.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let ms = (x.clone() * x.clone()).mean_dim(D - 1);
        let y = x * (ms + self.eps).sqrt().recip();
        let y = y * self.scale.clone().unsqueeze::<D>();
        y.cast(dtype)
    }
}

//! Normalisation layers, computed in f32 and cast back to the compute dtype as `transformers` does.
//! On the CPU backend they run on host rows in parallel: Flex broadcasts the `[H]` weights over
//! `[B, T, H]` through a slow strided path.

use super::ModelError;
use super::linear::{host_f32, uses_host_kernels};
use super::weights::Weights;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use rayon::prelude::*;

/// LayerNorm with weight and bias over the last dimension (GPT-NeoX).
#[derive(Debug, Clone)]
pub struct LayerNorm<B: Backend> {
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    /// `gamma` and `beta` on the host, for the host forward pass and the CPU backend.
    host: (Vec<f32>, Vec<f32>),
    /// Whether tensors are normalised on the host (the CPU backend).
    on_host: bool,
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
        let (w, b) = (format!("{prefix}.weight"), format!("{prefix}.bias"));
        Ok(Self {
            gamma: weights.tensor(&w, [size], DType::F32, device)?,
            beta: weights.tensor(&b, [size], DType::F32, device)?,
            host: (
                weights.read_f32(&w, &[size])?,
                weights.read_f32(&b, &[size])?,
            ),
            on_host: uses_host_kernels::<B>(device),
            eps,
        })
    }

    /// Normalises every row of `x` (rows of the layer's width) in place, rows in parallel.
    pub fn forward_rows(&self, x: &mut [f32]) {
        let (gamma, beta) = &self.host;
        let eps = self.eps as f32;
        for_each_row(x, gamma.len(), |row| {
            let n = row.len() as f32;
            let mean = row.iter().sum::<f32>() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        });
    }

    /// Normalises `[B, T, H]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if self.on_host {
            return on_host_rows(x, |rows| self.forward_rows(rows));
        }
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
    /// `scale` on the host, for the host forward pass and the CPU backend.
    host: Vec<f32>,
    /// Whether tensors are normalised on the host (the CPU backend).
    on_host: bool,
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
            host: scale.clone(),
            scale: Tensor::from_data(TensorData::new(scale, [size]), (device, DType::F32)),
            on_host: uses_host_kernels::<B>(device),
            eps,
        })
    }

    /// Normalises every row of `x` (rows of the layer's width) in place, rows in parallel.
    pub fn forward_rows(&self, x: &mut [f32]) {
        let eps = self.eps as f32;
        for_each_row(x, self.host.len(), |row| {
            let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            for (v, s) in row.iter_mut().zip(&self.host) {
                *v = *v * inv * s;
            }
        });
    }

    /// Normalises the last dimension of a tensor of any rank.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if self.on_host {
            return on_host_rows(x, |rows| self.forward_rows(rows));
        }
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let ms = (x.clone() * x.clone()).mean_dim(D - 1);
        let y = x * (ms + self.eps).sqrt().recip();
        let y = y * self.scale.clone().unsqueeze::<D>();
        y.cast(dtype)
    }
}

/// Applies `f` to every `width`-long row of `x`, rows in parallel.
fn for_each_row(x: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
    x.par_chunks_mut(width).with_min_len(16).for_each(f);
}

/// Applies `normalise` to the values of `x` on the host (in f32) and returns a tensor of `x`'s
/// shape and dtype.
fn on_host_rows<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    normalise: impl Fn(&mut [f32]),
) -> Tensor<B, D> {
    let (dims, device, dtype) = (x.dims(), x.device(), x.dtype());
    let mut values = host_f32(x);
    normalise(&mut values);
    Tensor::from_data(TensorData::new(values, dims), (&device, dtype))
}

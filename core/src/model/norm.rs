//! Normalisation layers, computed in f32 and cast back to the compute dtype as `transformers` does.
//! On the CPU backend they run on host rows in parallel: Flex broadcasts the `[H]` weights over
//! `[B, T, H]` through a slow strided path.

use super::ModelError;
use super::linear::{host_f32, uses_host_kernels};
use super::weights::Weights;
use crate::kernels::math::{LANES, sum_lanes};
use crate::kernels::with_widest_vectors;
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
            let (mean, inv) = layer_norm_stats(row, eps);
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        });
    }

    /// Writes the normalised rows of `x` to `out` (the same length), rows in parallel.
    pub fn forward_rows_into(&self, x: &[f32], out: &mut [f32]) {
        let (gamma, beta) = &self.host;
        let eps = self.eps as f32;
        for_each_row_into(x, out, gamma.len(), |row, out| {
            let (mean, inv) = layer_norm_stats(row, eps);
            for (((o, v), g), b) in out.iter_mut().zip(row).zip(gamma).zip(beta) {
                *o = (*v - mean) * inv * g + b;
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
            let inv = rms_norm_inverse(row, eps);
            for (v, s) in row.iter_mut().zip(&self.host) {
                *v = *v * inv * s;
            }
        });
    }

    /// Writes the normalised rows of `x` to `out` (the same length), rows in parallel.
    pub fn forward_rows_into(&self, x: &[f32], out: &mut [f32]) {
        let eps = self.eps as f32;
        for_each_row_into(x, out, self.host.len(), |row, out| {
            let inv = rms_norm_inverse(row, eps);
            for ((o, v), s) in out.iter_mut().zip(row).zip(&self.host) {
                *o = *v * inv * s;
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

/// Applies `f(row, out_row)` to every `width`-long row of `x` and the same row of `out`, rows
/// in parallel.
fn for_each_row_into(
    x: &[f32],
    out: &mut [f32],
    width: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync + Send,
) {
    assert_eq!(x.len(), out.len(), "a norm's output has its input's length");
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .with_min_len(16)
        .for_each(|(out, row)| f(row, out));
}

with_widest_vectors! {
    /// LayerNorm's mean and `1/√(var + eps)` of one row (two passes, sums in vector lanes).
    fn layer_norm_stats(row: &[f32], eps: f32) -> (f32, f32) = layer_norm_stats_lanes;
}

#[inline(always)]
fn layer_norm_stats_lanes(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum_lanes(row) / n;
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for l in 0..LANES {
            lanes[l] += (c[l] - mean) * (c[l] - mean);
        }
    }
    let var = (lanes.iter().sum::<f32>() + tail) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

with_widest_vectors! {
    /// RMSNorm's `1/√(mean(x²) + eps)` of one row (sums in vector lanes).
    fn rms_norm_inverse(row: &[f32], eps: f32) -> f32 = rms_norm_inverse_lanes;
}

#[inline(always)]
fn rms_norm_inverse_lanes(row: &[f32], eps: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for l in 0..LANES {
            lanes[l] += c[l] * c[l];
        }
    }
    let ms = (lanes.iter().sum::<f32>() + tail) / row.len() as f32;
    1.0 / (ms + eps).sqrt()
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Flex, flex::FlexDevice};

    /// A Pythia-wide row far from zero (so a one-pass variance would cancel), a short row
    /// (only the tail loop) and a row of one repeated value.
    fn rows(width: usize) -> Vec<f32> {
        let mut x: Vec<f32> = (0..width)
            .map(|i| 100.0 + ((i * 37 % 101) as f32 - 50.0) * 0.03)
            .collect();
        x.extend((0..width).map(|i| (i as f32 * 0.7).sin()));
        x.extend(std::iter::repeat_n(3.5f32, width));
        x
    }

    fn layer_norm(width: usize) -> LayerNorm<Flex> {
        let gamma: Vec<f32> = (0..width).map(|i| 1.0 + 0.01 * i as f32).collect();
        let beta: Vec<f32> = (0..width).map(|i| 0.1 - 0.002 * i as f32).collect();
        let tensor =
            |v: &[f32]| Tensor::from_data(TensorData::new(v.to_vec(), [width]), &FlexDevice);
        LayerNorm {
            gamma: tensor(&gamma),
            beta: tensor(&beta),
            host: (gamma, beta),
            on_host: true,
            eps: 1e-5,
        }
    }

    #[test]
    fn layer_norm_rows_match_an_f64_reference_in_place_and_into_a_buffer() {
        for width in [768, 10] {
            let norm = layer_norm(width);
            let x = rows(width);
            let mut in_place = x.clone();
            norm.forward_rows(&mut in_place);
            let mut into = vec![f32::NAN; x.len()];
            norm.forward_rows_into(&x, &mut into);
            assert_eq!(in_place, into, "width {width}");
            for (r, row) in x.chunks(width).enumerate() {
                let n = width as f64;
                let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
                let var = row
                    .iter()
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>()
                    / n;
                for (i, &v) in row.iter().enumerate() {
                    let (g, b) = (f64::from(norm.host.0[i]), f64::from(norm.host.1[i]));
                    let expected = (f64::from(v) - mean) / (var + 1e-5).sqrt() * g + b;
                    let got = f64::from(into[r * width + i]);
                    assert!(
                        (got - expected).abs() < 2e-4 * (1.0 + expected.abs()),
                        "width {width} row {r} col {i}: {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn rms_norm_rows_match_an_f64_reference_in_place_and_into_a_buffer() {
        for width in [640, 7] {
            let host: Vec<f32> = (0..width).map(|i| 1.0 + 0.02 * i as f32).collect();
            let norm = GemmaRmsNorm::<Flex> {
                scale: Tensor::from_data(TensorData::new(host.clone(), [width]), &FlexDevice),
                host,
                on_host: true,
                eps: 1e-6,
            };
            let x = rows(width);
            let mut in_place = x.clone();
            norm.forward_rows(&mut in_place);
            let mut into = vec![f32::NAN; x.len()];
            norm.forward_rows_into(&x, &mut into);
            assert_eq!(in_place, into, "width {width}");
            for (r, row) in x.chunks(width).enumerate() {
                let ms = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / width as f64;
                for (i, &v) in row.iter().enumerate() {
                    let expected = f64::from(v) / (ms + 1e-6).sqrt() * f64::from(norm.host[i]);
                    let got = f64::from(into[r * width + i]);
                    assert!(
                        (got - expected).abs() < 1e-5 * (1.0 + expected.abs()),
                        "width {width} row {r} col {i}: {got} vs {expected}"
                    );
                }
            }
        }
    }
}

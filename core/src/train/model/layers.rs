//! Building blocks of the trainable models: frozen dense layers with an optional LoRA branch,
//! the norms, the attention mask and softmax attention, all as plain Burn tensor operations so
//! the autodiff backend differentiates them.

use crate::model::ModelError;
use crate::model::weights::Weights;
use crate::train::host_ops::{self, HostWeight};
use crate::train::params::LoraTensors;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Int, Tensor, TensorData};
use std::sync::Arc;

/// The adapters of one forward pass.
#[derive(Debug, Clone)]
pub struct Adapters<'a, B: Backend> {
    /// The factors on the device, in module order.
    pub tensors: &'a LoraTensors<B>,
    /// `alpha / r` (or `alpha / √r`).
    pub scale: f64,
    /// Dropout probability on the adapters' input (0 when evaluating).
    pub dropout: f64,
}

/// A weight that full fine-tuning updates, and how the model stores it.
pub enum Slot<'a, B: Backend> {
    /// Stored as on disk (an embedding table).
    Matrix(&'a mut Tensor<B, 2>),
    /// A linear weight: `[out, in]` on disk, stored transposed (`[in, out]`).
    Transposed(&'a mut Tensor<B, 2>),
    /// A vector (a bias or a norm's weight), stored as on disk.
    Vector(&'a mut Tensor<B, 1>),
}

/// A weight's Hugging Face name and its slot.
pub type NamedSlot<'a, B> = (String, Slot<'a, B>);

/// A frozen `nn.Linear`: on the CPU training backend packed for the kernels
/// ([`host_ops::HostWeight`]), elsewhere (and for full fine-tuning) weight `[in, out]` and
/// optional bias as Burn tensors; neither tracks gradients (except in full fine-tuning, which
/// replaces them through [`Self::slots`]).
#[derive(Debug, Clone)]
pub enum Frozen<B: Backend> {
    /// Burn tensors.
    Device {
        /// `[in, out]`.
        weight: Tensor<B, 2>,
        /// `[out]`.
        bias: Option<Tensor<B, 1>>,
    },
    /// Packed for the CPU kernels.
    Host(Arc<HostWeight>),
}

impl<B: Backend> Frozen<B> {
    /// Loads `{prefix}.weight` (`[out, in]` on disk) and, when `bias`, `{prefix}.bias`; packed
    /// for the CPU kernels when `host` and the backend is the one they serve.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        host: bool,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        if host && host_ops::serves::<B>() {
            return Ok(Self::Host(Arc::new(HostWeight::load(
                weights,
                prefix,
                in_features,
                out_features,
                bias,
            )?)));
        }
        Ok(Self::Device {
            weight: weights.linear_weight::<B>(
                &format!("{prefix}.weight"),
                out_features,
                in_features,
                DType::F32,
                device,
            )?,
            bias: if bias {
                Some(weights.tensor::<B, 1>(
                    &format!("{prefix}.bias"),
                    [out_features],
                    DType::F32,
                    device,
                )?)
            } else {
                None
            },
        })
    }

    /// `{prefix}.weight` and `{prefix}.bias`, for full fine-tuning (none for packed layers,
    /// which a full run does not load).
    pub fn slots(&mut self, prefix: &str) -> Vec<NamedSlot<'_, B>> {
        let Self::Device { weight, bias } = self else {
            return Vec::new();
        };
        let mut out = vec![(format!("{prefix}.weight"), Slot::Transposed(weight))];
        if let Some(b) = bias {
            out.push((format!("{prefix}.bias"), Slot::Vector(b)));
        }
        out
    }

    /// The packed weight, when the layer runs on the CPU kernels.
    pub fn host(&self) -> Option<&Arc<HostWeight>> {
        match self {
            Self::Host(w) => Some(w),
            Self::Device { .. } => None,
        }
    }

    /// `x·W + b` for `x` `[B, T, in]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Self::Device { weight, bias } => {
                let y = x.matmul(weight.clone().unsqueeze::<3>());
                match bias {
                    Some(b) => y + b.clone().unsqueeze::<3>(),
                    None => y,
                }
            }
            Self::Host(w) => {
                let [b, t, inp] = x.dims();
                host_ops::linear(x.reshape([b * t, inp]), w).reshape([b, t, w.out_features()])
            }
        }
    }
}

/// A projection: the frozen layer, plus `scale · (dropout(x)·Aᵀ)·Bᵀ` when it carries adapter
/// number `lora`. The dense delta `B·A` is never formed.
#[derive(Debug, Clone)]
pub struct Projection<B: Backend> {
    /// The frozen layer.
    pub base: Frozen<B>,
    /// Index of this projection's adapter in [`LoraTensors::pairs`].
    pub lora: Option<usize>,
}

impl<B: Backend> Projection<B> {
    /// Applies the layer and its adapter.
    pub fn forward(&self, x: Tensor<B, 3>, adapters: Option<&Adapters<B>>) -> Tensor<B, 3> {
        let (Some(i), Some(ad)) = (self.lora, adapters) else {
            return self.base.forward(x);
        };
        let (a, b) = &ad.tensors.pairs[i];
        let input = if ad.dropout > 0.0 {
            let keep = Tensor::<B, 3>::random(
                x.shape(),
                Distribution::Bernoulli(1.0 - ad.dropout),
                &x.device(),
            );
            x.clone() * keep / (1.0 - ad.dropout)
        } else {
            x.clone()
        };
        let low = input.matmul(a.clone().transpose().unsqueeze::<3>());
        let delta = low.matmul(b.clone().transpose().unsqueeze::<3>());
        self.base.forward(x) + delta.mul_scalar(ad.scale)
    }
}

/// LayerNorm with weight and bias over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm<B: Backend> {
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `{prefix}.weight` and `{prefix}.bias`.
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

    /// `{prefix}.weight` and `{prefix}.bias`, for full fine-tuning.
    pub fn slots(&mut self, prefix: &str) -> Vec<NamedSlot<'_, B>> {
        vec![
            (format!("{prefix}.weight"), Slot::Vector(&mut self.gamma)),
            (format!("{prefix}.bias"), Slot::Vector(&mut self.beta)),
        ]
    }

    /// Normalises `[B, T, H]` (biased variance, as `torch.nn.LayerNorm`).
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let var = centered.clone().powi_scalar(2).mean_dim(2);
        let y = centered / (var + self.eps).sqrt();
        y * self.gamma.clone().unsqueeze::<3>() + self.beta.clone().unsqueeze::<3>()
    }
}

/// Gemma's zero-centred RMSNorm: `x · rsqrt(mean(x²) + eps) · (1 + w)`.
#[derive(Debug, Clone)]
pub struct GemmaRmsNorm<B: Backend> {
    scale: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend> GemmaRmsNorm<B> {
    /// Loads `{prefix}.weight` and keeps `1 + w`.
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
            scale: Tensor::from_data(TensorData::new(scale, [size]), device),
            eps,
        })
    }

    /// Normalises the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let ms = x.clone().powi_scalar(2).mean_dim(D - 1);
        (x / (ms + self.eps).sqrt()) * self.scale.clone().unsqueeze::<D>()
    }
}

/// Embedding lookup `[rows, seq] → [rows, seq, H]` from a frozen table.
pub fn embed<B: Backend>(
    table: &Tensor<B, 2>,
    ids: &[u32],
    rows: usize,
    seq: usize,
) -> Tensor<B, 3> {
    let device = table.device();
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [rows * seq]), &device);
    let h = table.dims()[1];
    table.clone().select(0, ids).reshape([rows, seq, h])
}

/// The additive attention mask `[rows, 1, seq, seq]`: 0 where query `q` may see key `k`
/// (`k ≤ q`, `k` not padding, and within `window` when given), `f32::MIN` elsewhere, as
/// `transformers`' eager attention adds it.
pub fn mask_bias<B: Backend>(
    valid: &[bool],
    rows: usize,
    seq: usize,
    window: Option<usize>,
    device: &B::Device,
) -> Tensor<B, 4> {
    let mut bias = vec![0f32; rows * seq * seq];
    for r in 0..rows {
        for q in 0..seq {
            for k in 0..seq {
                let visible = k <= q && valid[r * seq + k] && window.is_none_or(|w| q - k < w);
                if !visible {
                    bias[(r * seq + q) * seq + k] = f32::MIN;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(bias, [rows, 1, seq, seq]), device)
}

/// Softmax attention over `q` `[B, H, T, D]` and `k`, `v` `[B, KV, T, D]` (each key/value head
/// serves `H / KV` consecutive query heads): `softmax(cap(q·kᵀ·scale) + bias)·v` with the heads
/// merged, `[B, T, H·D]`. On the CPU training backend it runs on host values
/// ([`host_ops::attention`]).
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    scale: f64,
    softcap: Option<f64>,
    bias: &Tensor<B, 4>,
) -> Tensor<B, 3> {
    if host_ops::serves::<B>() {
        return host_ops::attention(q, k, v, scale, softcap, bias);
    }
    let [b, h, t, d] = q.dims();
    let kv = k.dims()[1];
    let (k, v) = if kv == h {
        (k, v)
    } else {
        let g = h / kv;
        let repeat = |x: Tensor<B, 4>| {
            x.reshape([b, kv, 1, t, d])
                .repeat_dim(2, g)
                .reshape([b, h, t, d])
        };
        (repeat(k), repeat(v))
    };
    let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    if let Some(cap) = softcap {
        scores = scores.div_scalar(cap).tanh().mul_scalar(cap);
    }
    softmax(scores + bias.clone(), 3)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([b, t, h * d])
}

/// GELU (the error-function form); on the CPU training backend on host values
/// ([`host_ops::gelu`]).
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if host_ops::serves::<B>() {
        host_ops::gelu(x)
    } else {
        burn::tensor::activation::gelu(x)
    }
}

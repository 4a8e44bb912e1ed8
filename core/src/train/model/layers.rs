//! Building blocks of the trainable models: frozen dense layers with an optional LoRA branch,
//! the norms, the attention mask and softmax attention, all as plain Burn tensor operations so
//! the autodiff backend differentiates them.

use crate::kernels::WeightFormat;
use crate::model::ModelError;
use crate::model::rope::{HostRope, Rope, RopeTables};
use crate::model::weights::Weights;
use crate::train::host_ops::{self, HostNorm, HostWeight, QkvLayout};
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
    /// for the CPU kernels in `host`'s format when given and the backend is the one they serve.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        host: Option<WeightFormat>,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        if let Some(format) = host.filter(|_| host_ops::serves::<B>()) {
            return Ok(Self::Host(Arc::new(HostWeight::load(
                weights,
                prefix,
                in_features,
                out_features,
                bias,
                format,
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
        // Dropout's factors on the branch's input: 0 or 1 / (1 − p).
        let keep = (ad.dropout > 0.0).then(|| {
            Tensor::<B, 3>::random(
                x.shape(),
                Distribution::Bernoulli(1.0 - ad.dropout),
                &x.device(),
            ) / (1.0 - ad.dropout)
        });
        if let Frozen::Host(w) = &self.base {
            let [rows, seq, inp] = x.dims();
            let flat = |t: Tensor<B, 3>| t.reshape([rows * seq, inp]);
            return host_ops::lora_linear(
                flat(x),
                w,
                a.clone(),
                b.clone(),
                keep.map(flat),
                ad.scale,
            )
            .reshape([rows, seq, w.out_features()]);
        }
        let input = match keep {
            Some(keep) => x.clone() * keep,
            None => x.clone(),
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
    /// The same norm on host values (frozen, on the CPU training backend).
    host: Option<Arc<HostNorm>>,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `{prefix}.weight` and `{prefix}.bias`; with `host` (a frozen norm) it runs on host
    /// values where the backend is the one they serve.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        size: usize,
        eps: f64,
        host: bool,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let weight = weights.read_f32(&format!("{prefix}.weight"), &[size])?;
        let bias = weights.read_f32(&format!("{prefix}.bias"), &[size])?;
        let tensor = |v: &[f32]| Tensor::from_data(TensorData::new(v.to_vec(), [size]), device);
        Ok(Self {
            gamma: tensor(&weight),
            beta: tensor(&bias),
            eps,
            host: (host && host_ops::serves::<B>()).then(|| {
                Arc::new(HostNorm::Layer {
                    weight,
                    bias,
                    eps: eps as f32,
                })
            }),
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
        if let Some(norm) = &self.host {
            return host_ops::norm(x, norm);
        }
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
    /// `w` as on disk (the norm multiplies by `1 + w`).
    weight: Tensor<B, 1>,
    eps: f64,
    /// The same norm on host values (frozen, on the CPU training backend).
    host: Option<Arc<HostNorm>>,
}

impl<B: Backend> GemmaRmsNorm<B> {
    /// Loads `{prefix}.weight`; with `host` (a frozen norm) it runs on host values where the
    /// backend is the one they serve.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        size: usize,
        eps: f64,
        host: bool,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let w = weights.read_f32(&format!("{prefix}.weight"), &[size])?;
        let host = (host && host_ops::serves::<B>()).then(|| {
            Arc::new(HostNorm::Rms {
                scale: w.iter().map(|v| 1.0 + v).collect(),
                eps: eps as f32,
            })
        });
        Ok(Self {
            weight: Tensor::from_data(TensorData::new(w, [size]), device),
            eps,
            host,
        })
    }

    /// `{prefix}.weight`, for full fine-tuning.
    pub fn slots(&mut self, prefix: &str) -> Vec<NamedSlot<'_, B>> {
        vec![(format!("{prefix}.weight"), Slot::Vector(&mut self.weight))]
    }

    /// Normalises the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if let Some(norm) = &self.host {
            return host_ops::norm(x, norm);
        }
        let ms = x.clone().powi_scalar(2).mean_dim(D - 1);
        (x / (ms + self.eps).sqrt()) * (self.weight.clone() + 1.0).unsqueeze::<D>()
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

/// The rotary embedding of one forward pass's tokens: Burn tables, or host tables where the
/// attention runs on host values ([`host_ops::serves`]).
pub enum Rotary<B: Backend> {
    /// `[B, 1, T, rotary_dim]` tables.
    Device(RopeTables<B>),
    /// Per-token tables on the host.
    Host(Arc<HostRope>),
}

impl<B: Backend> Rotary<B> {
    /// The tables of `rope` for `positions` (row-major `[rows, seq]`).
    pub fn new(
        rope: &Rope,
        positions: &[i64],
        rows: usize,
        seq: usize,
        device: &B::Device,
    ) -> Self {
        if host_ops::serves::<B>() {
            Self::Host(Arc::new(rope.host_tables(positions)))
        } else {
            Self::Device(rope.tables(positions, rows, seq, DType::F32, device))
        }
    }
}

/// Softmax attention over the heads of a fused projection's output `qkv` `[B, T, width]`
/// (placed as `layout` says; each key/value head serves `H / KV` consecutive query heads),
/// queries and keys rotated: `softmax(cap(q·kᵀ·scale) + bias)·v` with the heads merged,
/// `[B, T, H·D]`. On the CPU training backend it runs on host values
/// ([`host_ops::attention`]).
pub fn attention<B: Backend>(
    qkv: Tensor<B, 3>,
    layout: QkvLayout,
    rotary: &Rotary<B>,
    scale: f64,
    softcap: Option<f64>,
    bias: &Tensor<B, 4>,
) -> Tensor<B, 3> {
    match rotary {
        Rotary::Host(rope) => {
            let [b, t, width] = qkv.dims();
            host_ops::attention(
                qkv.reshape([b * t, width]),
                layout,
                rope,
                b,
                t,
                scale,
                softcap,
                bias,
            )
        }
        Rotary::Device(tables) => attention_burn(qkv, layout, tables, scale, softcap, bias),
    }
}

/// [`attention`] in Burn operations (every backend but the CPU training one; its tests
/// compare the host path with this).
pub(crate) fn attention_burn<B: Backend>(
    qkv: Tensor<B, 3>,
    layout: QkvLayout,
    tables: &RopeTables<B>,
    scale: f64,
    softcap: Option<f64>,
    bias: &Tensor<B, 4>,
) -> Tensor<B, 3> {
    let [b, t, _] = qkv.dims();
    let (h, kv, d) = (layout.heads(), layout.kv_heads(), layout.head_dim());
    let (q, k, v) = match layout {
        QkvLayout::Interleaved { .. } => {
            let x = qkv.reshape([b, t, h, 3 * d]).swap_dims(1, 2);
            (
                x.clone().narrow(3, 0, d),
                x.clone().narrow(3, d, d),
                x.narrow(3, 2 * d, d),
            )
        }
        QkvLayout::Stacked { .. } => {
            let part = |first: usize, n: usize| {
                qkv.clone()
                    .narrow(2, first * d, n * d)
                    .reshape([b, t, n, d])
                    .swap_dims(1, 2)
            };
            (part(0, h), part(h, kv), part(h + kv, kv))
        }
    };
    let (q, k) = (tables.apply(q), tables.apply(k));
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

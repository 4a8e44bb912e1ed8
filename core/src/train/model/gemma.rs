//! The trainable Gemma-2 / Gemma-3 text decoder: `transformers`' `Gemma2ForCausalLM` and
//! `Gemma3ForCausalLM` (eager attention) as plain Burn operations over frozen weights, with LoRA
//! on the projections named by the config: `√H`-scaled embeddings, zero-centred RMSNorms, GQA,
//! attention and final soft-capping (Gemma-2), q/k norms and per-layer-type RoPE (Gemma-3),
//! sliding-window layers, and the LM head tied to the embedding unless the checkpoint has its own.

use super::layers::{
    Adapters, Frozen, GemmaRmsNorm, NamedSlot, Projection, Rotary, Slot, attention, embed, gelu,
    mask_bias,
};
use crate::kernels::WeightFormat;
use crate::model::ModelError;
use crate::model::Step;
use crate::model::config::{Activation, GemmaConfig, GemmaVersion, LayerKind};
use crate::model::rope::Rope;
use crate::model::weights::Weights;
use crate::train::config::LoraConfig;
use crate::train::host_ops::{self, HostWeight, QkvLayout};
use crate::train::params::ModuleSpec;
use burn::tensor::activation::{gelu_approximate, relu};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use std::sync::Arc;

struct Layer<B: Backend> {
    kind: LayerKind,
    input_layernorm: GemmaRmsNorm<B>,
    post_attention_layernorm: GemmaRmsNorm<B>,
    pre_feedforward_layernorm: GemmaRmsNorm<B>,
    post_feedforward_layernorm: GemmaRmsNorm<B>,
    q_proj: Projection<B>,
    k_proj: Projection<B>,
    v_proj: Projection<B>,
    o_proj: Projection<B>,
    q_norm: Option<GemmaRmsNorm<B>>,
    k_norm: Option<GemmaRmsNorm<B>>,
    gate_proj: Projection<B>,
    up_proj: Projection<B>,
    down_proj: Projection<B>,
}

/// A Gemma-2 / Gemma-3 text decoder with frozen weights and LoRA slots.
pub struct TrainableGemma<B: Backend> {
    config: GemmaConfig,
    /// Where the decoder's keys live (`model.`, `model.language_model.`, …).
    prefix: String,
    /// An untied head's weight prefix.
    head_name: Option<String>,
    embed_tokens: Tensor<B, 2>,
    layers: Vec<Layer<B>>,
    norm: GemmaRmsNorm<B>,
    lm_head: Option<Frozen<B>>,
    rope_global: Rope,
    rope_local: Rope,
    modules: Vec<ModuleSpec>,
}

impl<B: Backend> TrainableGemma<B> {
    /// Loads the frozen decoder found under `prefix` (`model.`, `model.language_model.`, …);
    /// `lm_head` names an untied head's weight prefix.
    pub fn load(
        config: GemmaConfig,
        weights: &Weights,
        prefix: &str,
        lm_head: Option<&str>,
        lora: &LoraConfig,
        host: Option<WeightFormat>,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let h = config.hidden_size;
        let inter = config.intermediate_size;
        let dh = config.head_dim;
        let eps = config.rms_norm_eps;
        let q_out = config.num_heads * dh;
        let kv_out = config.num_kv_heads * dh;
        let bias = config.attention_bias;
        let embed_name = format!("{prefix}embed_tokens.weight");
        let vocab_rows = weights
            .shape(&embed_name)
            .map(|s| s[0])
            .unwrap_or(config.vocab_size);
        let embed_tokens = weights.tensor(&embed_name, [vocab_rows, h], DType::F32, device)?;
        let norm = |name: String, size: usize| {
            GemmaRmsNorm::load(weights, &name, size, eps, host.is_some(), device)
        };
        let mut modules = Vec::new();
        let mut projection = |path: String, name: &str, i: usize, o: usize, bias: bool| {
            let base = Frozen::load(weights, &path, i, o, bias, host, device)?;
            let lora = lora.targets(name).then(|| {
                modules.push(ModuleSpec {
                    path,
                    in_features: i,
                    out_features: o,
                });
                modules.len() - 1
            });
            Ok::<_, ModelError>(Projection { base, lora })
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for (l, kind) in config.layer_kinds.iter().enumerate() {
            let p = format!("{prefix}layers.{l}");
            let qk_norm = config.version == GemmaVersion::Gemma3;
            let q_proj = projection(format!("{p}.self_attn.q_proj"), "q_proj", h, q_out, bias)?;
            let k_proj = projection(format!("{p}.self_attn.k_proj"), "k_proj", h, kv_out, bias)?;
            let v_proj = projection(format!("{p}.self_attn.v_proj"), "v_proj", h, kv_out, bias)?;
            let o_proj = projection(format!("{p}.self_attn.o_proj"), "o_proj", q_out, h, bias)?;
            let gate_proj = projection(format!("{p}.mlp.gate_proj"), "gate_proj", h, inter, false)?;
            let up_proj = projection(format!("{p}.mlp.up_proj"), "up_proj", h, inter, false)?;
            let down_proj = projection(format!("{p}.mlp.down_proj"), "down_proj", inter, h, false)?;
            layers.push(Layer {
                kind: *kind,
                input_layernorm: norm(format!("{p}.input_layernorm"), h)?,
                post_attention_layernorm: norm(format!("{p}.post_attention_layernorm"), h)?,
                pre_feedforward_layernorm: norm(format!("{p}.pre_feedforward_layernorm"), h)?,
                post_feedforward_layernorm: norm(format!("{p}.post_feedforward_layernorm"), h)?,
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                q_norm: if qk_norm {
                    Some(norm(format!("{p}.self_attn.q_norm"), dh)?)
                } else {
                    None
                },
                k_norm: if qk_norm {
                    Some(norm(format!("{p}.self_attn.k_norm"), dh)?)
                } else {
                    None
                },
                gate_proj,
                up_proj,
                down_proj,
            });
        }
        let final_norm = norm(format!("{prefix}norm"), h)?;
        let head_name = lm_head.map(str::to_string);
        let lm_head = match lm_head {
            Some(name) => Some(Frozen::load(
                weights, name, h, vocab_rows, false, host, device,
            )?),
            // A tied head on the CPU kernels: the embedding table packed as the head's weight,
            // so the loss is fused with it instead of forming `[rows, seq, V]` logits.
            None => match host.filter(|_| host_ops::serves::<B>()) {
                Some(format) => Some(Frozen::Host(Arc::new(HostWeight::load(
                    weights,
                    &format!("{prefix}embed_tokens"),
                    h,
                    vocab_rows,
                    false,
                    format,
                )?))),
                None => None,
            },
        };
        Ok(Self {
            prefix: prefix.to_string(),
            head_name,
            rope_global: Rope::new(dh, config.rope_global),
            rope_local: Rope::new(dh, config.rope_local),
            config,
            embed_tokens,
            layers,
            norm: final_norm,
            lm_head,
            modules,
        })
    }

    /// The projections with adapters, in the order of the LoRA factors.
    pub fn modules(&self) -> &[ModuleSpec] {
        &self.modules
    }

    /// True when the frozen layers are packed for the CPU kernels (a LoRA load on the CPU).
    pub fn packed(&self) -> bool {
        self.layers
            .first()
            .is_some_and(|l| l.o_proj.base.host().is_some())
            || self.host_head().is_some()
    }

    /// Every weight with its Hugging Face name, in a fixed order (full fine-tuning). A tied
    /// head is the embedding table itself.
    pub fn slots(&mut self) -> Vec<NamedSlot<'_, B>> {
        let p = self.prefix.clone();
        let mut out = vec![(
            format!("{p}embed_tokens.weight"),
            Slot::Matrix(&mut self.embed_tokens),
        )];
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let at = |name: &str| format!("{p}layers.{l}.{name}");
            out.extend(layer.input_layernorm.slots(&at("input_layernorm")));
            out.extend(
                layer
                    .post_attention_layernorm
                    .slots(&at("post_attention_layernorm")),
            );
            out.extend(
                layer
                    .pre_feedforward_layernorm
                    .slots(&at("pre_feedforward_layernorm")),
            );
            out.extend(
                layer
                    .post_feedforward_layernorm
                    .slots(&at("post_feedforward_layernorm")),
            );
            out.extend(layer.q_proj.base.slots(&at("self_attn.q_proj")));
            out.extend(layer.k_proj.base.slots(&at("self_attn.k_proj")));
            out.extend(layer.v_proj.base.slots(&at("self_attn.v_proj")));
            out.extend(layer.o_proj.base.slots(&at("self_attn.o_proj")));
            if let Some(n) = &mut layer.q_norm {
                out.extend(n.slots(&at("self_attn.q_norm")));
            }
            if let Some(n) = &mut layer.k_norm {
                out.extend(n.slots(&at("self_attn.k_norm")));
            }
            out.extend(layer.gate_proj.base.slots(&at("mlp.gate_proj")));
            out.extend(layer.up_proj.base.slots(&at("mlp.up_proj")));
            out.extend(layer.down_proj.base.slots(&at("mlp.down_proj")));
        }
        out.extend(self.norm.slots(&format!("{p}norm")));
        if let (Some(head), Some(name)) = (&mut self.lm_head, &self.head_name) {
            out.extend(head.slots(name));
        }
        out
    }

    /// The final hidden states `[rows, seq, H]` (after the final norm).
    pub fn hidden(&self, step: &Step, adapters: Option<&Adapters<B>>) -> Tensor<B, 3> {
        let c = &self.config;
        let (b, t) = (step.batch, step.seq);
        let dh = c.head_dim;
        let device = self.embed_tokens.device();
        let mut x = embed(&self.embed_tokens, step.ids, b, t)
            .mul_scalar((c.hidden_size as f64).sqrt() as f32);
        let full_bias = mask_bias::<B>(step.valid, b, t, None, &device);
        let sliding_bias = mask_bias::<B>(step.valid, b, t, Some(c.sliding_window), &device);
        let rope_global = Rotary::new(&self.rope_global, step.positions, b, t, &device);
        let rope_local = Rotary::new(&self.rope_local, step.positions, b, t, &device);
        let layout = QkvLayout::Stacked {
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            head_dim: dh,
        };
        let scale = c.query_pre_attn_scalar.powf(-0.5);
        for layer in &self.layers {
            let (bias, rope) = match layer.kind {
                LayerKind::Full => (&full_bias, &rope_global),
                LayerKind::Sliding => (&sliding_bias, &rope_local),
            };
            let hn = layer.input_layernorm.forward(x.clone());
            let project = |p: &Projection<B>| p.forward(hn.clone(), adapters);
            // Gemma-3 normalises each query and key head before the rotation.
            let head_norm = |x: Tensor<B, 3>, norm: &Option<GemmaRmsNorm<B>>| match norm {
                Some(n) => {
                    let width = x.dims()[2];
                    n.forward(x.reshape([b, t, width / dh, dh]))
                        .reshape([b, t, width])
                }
                None => x,
            };
            let q = head_norm(project(&layer.q_proj), &layer.q_norm);
            let k = head_norm(project(&layer.k_proj), &layer.k_norm);
            let qkv = Tensor::cat(vec![q, k, project(&layer.v_proj)], 2);
            let attn = attention(qkv, layout, rope, scale, c.attn_softcap, bias);
            let attn = layer
                .post_attention_layernorm
                .forward(layer.o_proj.forward(attn, adapters));
            x = x + attn;
            let hn = layer.pre_feedforward_layernorm.forward(x.clone());
            let gate = layer.gate_proj.forward(hn.clone(), adapters);
            let gate = match c.hidden_act {
                Activation::Gelu => gelu(gate),
                Activation::GeluTanh => gelu_approximate(gate),
                Activation::Relu => relu(gate),
            };
            let mlp = layer
                .down_proj
                .forward(gate * layer.up_proj.forward(hn, adapters), adapters);
            x = x + layer.post_feedforward_layernorm.forward(mlp);
        }
        self.norm.forward(x)
    }

    /// Logits `[rows, seq, V]` from the final hidden states (soft-capped when the config says
    /// so).
    pub fn logits(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let c = &self.config;
        let logits = match &self.lm_head {
            Some(head) => head.forward(h),
            None => h.matmul(self.embed_tokens.clone().transpose().unsqueeze::<3>()),
        };
        match c.final_softcap {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        }
    }

    /// The head, when it is packed for the CPU kernels (a tied one is the embedding table,
    /// packed again as the head).
    pub fn host_head(&self) -> Option<&Arc<HostWeight>> {
        self.lm_head.as_ref().and_then(Frozen::host)
    }

    /// The final logits' soft cap.
    pub fn final_softcap(&self) -> Option<f64> {
        self.config.final_softcap
    }
}

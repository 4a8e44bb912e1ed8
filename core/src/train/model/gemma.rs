//! The trainable Gemma-2 / Gemma-3 text decoder: `transformers`' `Gemma2ForCausalLM` and
//! `Gemma3ForCausalLM` (eager attention) as plain Burn operations over frozen weights, with LoRA
//! on the projections named by the config: `√H`-scaled embeddings, zero-centred RMSNorms, GQA,
//! attention and final soft-capping (Gemma-2), q/k norms and per-layer-type RoPE (Gemma-3),
//! sliding-window layers, and the LM head tied to the embedding unless the checkpoint has its own.

use super::layers::{
    Adapters, Frozen, GemmaRmsNorm, Projection, attention, embed, gelu, mask_bias,
};
use crate::model::ModelError;
use crate::model::Step;
use crate::model::config::{Activation, GemmaConfig, GemmaVersion, LayerKind};
use crate::model::rope::Rope;
use crate::model::weights::Weights;
use crate::train::config::LoraConfig;
use crate::train::host_ops::HostWeight;
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
        host: bool,
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
        let norm =
            |name: String, size: usize| GemmaRmsNorm::load(weights, &name, size, eps, device);
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
        let lm_head = match lm_head {
            Some(name) => Some(Frozen::load(
                weights, name, h, vocab_rows, false, host, device,
            )?),
            None => None,
        };
        Ok(Self {
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
        let rope_global = self
            .rope_global
            .tables::<B>(step.positions, b, t, DType::F32, &device);
        let rope_local = self
            .rope_local
            .tables::<B>(step.positions, b, t, DType::F32, &device);
        let scale = c.query_pre_attn_scalar.powf(-0.5);
        for layer in &self.layers {
            let (bias, rope) = match layer.kind {
                LayerKind::Full => (&full_bias, &rope_global),
                LayerKind::Sliding => (&sliding_bias, &rope_local),
            };
            let hn = layer.input_layernorm.forward(x.clone());
            let heads = |p: &Projection<B>, n: usize| {
                p.forward(hn.clone(), adapters).reshape([b, t, n, dh])
            };
            let q = heads(&layer.q_proj, c.num_heads);
            let k = heads(&layer.k_proj, c.num_kv_heads);
            let v = heads(&layer.v_proj, c.num_kv_heads).swap_dims(1, 2);
            let q = match &layer.q_norm {
                Some(n) => n.forward(q),
                None => q,
            };
            let k = match &layer.k_norm {
                Some(n) => n.forward(k),
                None => k,
            };
            let q = rope.apply(q.swap_dims(1, 2));
            let k = rope.apply(k.swap_dims(1, 2));
            let attn = attention(q, k, v, scale, c.attn_softcap, bias);
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

    /// The untied head, when it is packed for the CPU kernels (a tied head is the embedding
    /// table, not packed).
    pub fn host_head(&self) -> Option<&Arc<HostWeight>> {
        self.lm_head.as_ref().and_then(Frozen::host)
    }

    /// The final logits' soft cap.
    pub fn final_softcap(&self) -> Option<f64> {
        self.config.final_softcap
    }
}

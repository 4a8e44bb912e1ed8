//! Gemma-2 and Gemma-3 text decoders (C2S-Scale-Gemma), matching `transformers`'
//! `Gemma2ForCausalLM`, `Gemma3ForCausalLM` and the text part of `Gemma3ForConditionalGeneration`.
//!
//! Shared: `h = E[ids]·√H` (rounded to the compute dtype), zero-centred RMSNorm `(1 + w)` in f32,
//! four norms per layer (`x += post_attn(attn(in(x)))`, `x += post_ff(mlp(pre_ff(x)))`), GQA,
//! `gelu_tanh(gate)·up` MLP, attention scale `query_pre_attn_scalar^-0.5`, sliding layers that
//! see keys with `q − kv < sliding_window`, LM head tied to the embedding.
//! Gemma-2 adds attention and final-logit soft-capping. Gemma-3 adds q/k RMSNorms before RoPE
//! and a separate RoPE (base, scaling) for local and global layers.

use super::attention::build_mask;
use super::config::{GemmaConfig, GemmaVersion, LayerKind};
use super::host_attention::{AttentionShape, AttentionSpec, Heads};
use super::kv_cache::KvCache;
use super::linear::host_f32;
use super::linear::{Linear, uses_host_kernels};
use super::norm::GemmaRmsNorm;
use super::rope::HostRope;
use super::rope::Rope;
use super::weights::Weights;
use super::{ModelError, Precision, Step, activate, embed, rows_tensor, runs_on_host};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, bf16, f16};
use rayon::prelude::*;

/// Key prefixes under which checkpoints store the Gemma text decoder, most specific first.
const PREFIXES: [&str; 3] = ["model.language_model.", "language_model.model.", "model."];

/// One decoder block.
#[derive(Debug, Clone)]
struct Layer<B: Backend> {
    kind: LayerKind,
    input_layernorm: GemmaRmsNorm<B>,
    post_attention_layernorm: GemmaRmsNorm<B>,
    pre_feedforward_layernorm: GemmaRmsNorm<B>,
    post_feedforward_layernorm: GemmaRmsNorm<B>,
    q_proj: Linear<B>,
    k_proj: Linear<B>,
    v_proj: Linear<B>,
    o_proj: Linear<B>,
    q_norm: Option<GemmaRmsNorm<B>>,
    k_norm: Option<GemmaRmsNorm<B>>,
    gate_proj: Linear<B>,
    up_proj: Linear<B>,
    down_proj: Linear<B>,
}

/// A loaded Gemma-2 / Gemma-3 text model.
#[derive(Debug, Clone)]
pub struct Gemma<B: Backend> {
    config: GemmaConfig,
    embed_tokens: Tensor<B, 2>,
    layers: Vec<Layer<B>>,
    norm: GemmaRmsNorm<B>,
    /// Present when the checkpoint has an untied `lm_head`.
    lm_head: Option<Linear<B>>,
    rope_global: Rope,
    rope_local: Rope,
    embed_scale: f64,
    dtype: DType,
    vocab_rows: usize,
    prefix: &'static str,
}

impl<B: Backend> Gemma<B> {
    /// Finds the decoder's key prefix in a checkpoint.
    pub fn detect_prefix(weights: &Weights) -> Result<&'static str, ModelError> {
        PREFIXES
            .iter()
            .copied()
            .find(|p| weights.contains(&format!("{p}embed_tokens.weight")))
            .ok_or_else(|| ModelError::Weights {
                message: "no Gemma embedding found (looked for `model.embed_tokens.weight`, \
                          `model.language_model.embed_tokens.weight` and \
                          `language_model.model.embed_tokens.weight`)"
                    .into(),
            })
    }

    /// Keys that belong to other parts of a multimodal checkpoint (vision tower, projector).
    pub fn is_ignored_key(name: &str) -> bool {
        name.contains("vision_tower.")
            || name.contains("multi_modal_projector.")
            || name.ends_with("rotary_emb.inv_freq")
            || name == "lm_head.weight"
            || name == "language_model.lm_head.weight"
    }

    /// The untied LM head's key prefix (`lm_head` or `language_model.lm_head`, as plain and
    /// multimodal checkpoints store it); `None` for a tied head.
    fn head_name(
        weights: &Weights,
        tie_word_embeddings: bool,
        prefix: &str,
    ) -> Result<Option<&'static str>, ModelError> {
        if tie_word_embeddings {
            return Ok(None);
        }
        ["lm_head", "language_model.lm_head"]
            .into_iter()
            .find(|name| weights.contains(&format!("{name}.weight")))
            .map(Some)
            .ok_or_else(|| ModelError::Weights {
                message: format!(
                    "config.json says the LM head is not tied to the embedding \
                     (`tie_word_embeddings: false`) but the checkpoint has no `lm_head.weight` \
                     or `language_model.lm_head.weight` beside `{prefix}embed_tokens.weight`"
                ),
            })
    }

    /// Loads the decoder from `weights`.
    pub fn load(
        config: GemmaConfig,
        weights: &Weights,
        tie_word_embeddings: bool,
        precision: Precision,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let dtype = precision.dtype;
        let prefix = Self::detect_prefix(weights)?;
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
        let embed_tokens = weights.tensor(&embed_name, [vocab_rows, h], dtype, device)?;
        let norm =
            |name: String, size: usize| GemmaRmsNorm::load(weights, &name, size, eps, device);
        let linear = |name: String, i: usize, o: usize, bias: bool| {
            Linear::load(weights, &name, i, o, bias, precision, device)
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for (l, kind) in config.layer_kinds.iter().enumerate() {
            let p = format!("{prefix}layers.{l}");
            let qk_norm = config.version == GemmaVersion::Gemma3;
            layers.push(Layer {
                kind: *kind,
                input_layernorm: norm(format!("{p}.input_layernorm"), h)?,
                post_attention_layernorm: norm(format!("{p}.post_attention_layernorm"), h)?,
                pre_feedforward_layernorm: norm(format!("{p}.pre_feedforward_layernorm"), h)?,
                post_feedforward_layernorm: norm(format!("{p}.post_feedforward_layernorm"), h)?,
                q_proj: linear(format!("{p}.self_attn.q_proj"), h, q_out, bias)?,
                k_proj: linear(format!("{p}.self_attn.k_proj"), h, kv_out, bias)?,
                v_proj: linear(format!("{p}.self_attn.v_proj"), h, kv_out, bias)?,
                o_proj: linear(format!("{p}.self_attn.o_proj"), q_out, h, bias)?,
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
                gate_proj: linear(format!("{p}.mlp.gate_proj"), h, inter, false)?,
                up_proj: linear(format!("{p}.mlp.up_proj"), h, inter, false)?,
                down_proj: linear(format!("{p}.mlp.down_proj"), inter, h, false)?,
            });
        }
        let norm = norm(format!("{prefix}norm"), h)?;
        let head_name = Self::head_name(weights, tie_word_embeddings, prefix)?;
        // A tied head on the CPU gets its own packed copy of the embedding (the kernels need
        // their layout); on a GPU it multiplies by the embedding itself.
        let lm_head = match head_name {
            Some(name) => Some(Linear::load(
                weights, name, h, vocab_rows, false, precision, device,
            )?),
            None if uses_host_kernels::<B>(device) => Some(Linear::load(
                weights,
                &format!("{prefix}embed_tokens"),
                h,
                vocab_rows,
                false,
                precision,
                device,
            )?),
            None => None,
        };
        // `torch.tensor(sqrt(H), dtype=compute dtype)`: the scale is rounded to the compute dtype.
        let sqrt_h = (h as f64).sqrt() as f32;
        let embed_scale = match dtype {
            DType::BF16 => bf16::from_f32(sqrt_h).to_f32(),
            DType::F16 => f16::from_f32(sqrt_h).to_f32(),
            _ => sqrt_h,
        } as f64;
        Ok(Self {
            rope_global: Rope::new(dh, config.rope_global),
            rope_local: Rope::new(dh, config.rope_local),
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            embed_scale,
            dtype,
            vocab_rows,
            prefix,
        })
    }

    /// Hyper-parameters.
    pub fn config(&self) -> &GemmaConfig {
        &self.config
    }

    /// Rows of the LM head (the logits width).
    pub fn vocab_rows(&self) -> usize {
        self.vocab_rows
    }

    /// Number of layers (KV cache slots).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The checkpoint prefix the decoder was found under.
    pub fn prefix(&self) -> &str {
        self.prefix
    }

    /// Runs the decoder over one step; returns the final-normed hidden states `[B, T, H]`.
    pub fn forward(
        &self,
        step: &Step,
        cache: &mut KvCache<B>,
        mut trace: Option<&mut Vec<Tensor<B, 3>>>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let c = &self.config;
        let device = self.embed_tokens.device();
        if runs_on_host::<B>(&device, self.dtype) {
            return self.forward_rows(step, cache, trace);
        }
        let (b, t) = (step.batch, step.seq);
        let dh = c.head_dim;
        let mut x = embed(&self.embed_tokens, step, &device)?.mul_scalar(self.embed_scale);
        if let Some(trace) = trace.as_deref_mut() {
            trace.push(x.clone());
        }
        let past = cache.len();
        cache.begin_step(step.valid, t)?;
        let full_mask = build_mask::<B>(cache.key_valid(), past, t, None, &device);
        let sliding_mask =
            build_mask::<B>(cache.key_valid(), past, t, Some(c.sliding_window), &device);
        let rope_global = self
            .rope_global
            .tables::<B>(step.positions, b, t, self.dtype, &device);
        let rope_local = if c.rope_local == c.rope_global {
            rope_global.clone()
        } else {
            self.rope_local
                .tables::<B>(step.positions, b, t, self.dtype, &device)
        };
        let scale = c.query_pre_attn_scalar.powf(-0.5);
        for (l, layer) in self.layers.iter().enumerate() {
            let (mask, rope) = match layer.kind {
                LayerKind::Full => (&full_mask, &rope_global),
                LayerKind::Sliding => (&sliding_mask, &rope_local),
            };
            let h = layer.input_layernorm.forward(x.clone());
            let q = layer
                .q_proj
                .forward(h.clone())
                .reshape([b, t, c.num_heads, dh])
                .swap_dims(1, 2);
            let k = layer
                .k_proj
                .forward(h.clone())
                .reshape([b, t, c.num_kv_heads, dh])
                .swap_dims(1, 2);
            let v = layer
                .v_proj
                .forward(h)
                .reshape([b, t, c.num_kv_heads, dh])
                .swap_dims(1, 2);
            let q = match &layer.q_norm {
                Some(n) => n.forward(q),
                None => q,
            };
            let k = match &layer.k_norm {
                Some(n) => n.forward(k),
                None => k,
            };
            let q = rope.apply(q);
            let k = rope.apply(k);
            let spec = AttentionSpec {
                scale,
                softcap: c.attn_softcap,
                window: (layer.kind == LayerKind::Sliding).then_some(c.sliding_window),
            };
            let attn = cache
                .attend(l, q, k, v, mask, spec)
                .swap_dims(1, 2)
                .reshape([b, t, c.num_heads * dh]);
            let attn = layer
                .post_attention_layernorm
                .forward(layer.o_proj.forward(attn));
            x = x + attn;
            let h = layer.pre_feedforward_layernorm.forward(x.clone());
            let mlp = layer.down_proj.forward(
                activate(layer.gate_proj.forward(h.clone()), c.hidden_act)
                    * layer.up_proj.forward(h),
            );
            x = x + layer.post_feedforward_layernorm.forward(mlp);
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(x.clone());
            }
        }
        cache.end_step(t);
        Ok(self.norm.forward(x))
    }

    /// [`Self::forward`] on host rows (the CPU backend): activations stay in one `Vec` per
    /// step, every product runs on the CPU kernels and attention reads the host-side cache.
    fn forward_rows(
        &self,
        step: &Step,
        cache: &mut KvCache<B>,
        mut trace: Option<&mut Vec<Tensor<B, 3>>>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let c = &self.config;
        let device = self.embed_tokens.device();
        let (b, t) = (step.batch, step.seq);
        let m = b * t;
        let dh = c.head_dim;
        let mut push = |x: &[f32]| {
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(rows_tensor(x.to_vec(), step, &device, self.dtype));
            }
        };
        let mut x = host_f32(embed(&self.embed_tokens, step, &device)?);
        let embed_scale = self.embed_scale as f32;
        x.par_iter_mut().for_each(|v| *v *= embed_scale);
        push(&x);
        cache.begin_step(step.valid, t)?;
        let rope_global = self.rope_global.host_tables(step.positions);
        let rope_local = self.rope_local.host_tables(step.positions);
        let shape = AttentionShape {
            rows: b,
            tokens: t,
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            dim: dh,
        };
        let scale = c.query_pre_attn_scalar.powf(-0.5);
        // The normalised input of each block, rewritten in place by every norm.
        let mut h = vec![0.0f32; x.len()];
        for (l, layer) in self.layers.iter().enumerate() {
            let rope = match layer.kind {
                LayerKind::Full => &rope_global,
                LayerKind::Sliding => &rope_local,
            };
            layer.input_layernorm.forward_rows_into(&x, &mut h);
            let mut q = layer.q_proj.forward_rows(&h, m);
            let mut k = layer.k_proj.forward_rows(&h, m);
            let v = layer.v_proj.forward_rows(&h, m);
            prepare_heads(&mut q, m, dh, layer.q_norm.as_ref(), rope);
            prepare_heads(&mut k, m, dh, layer.k_norm.as_ref(), rope);
            let spec = AttentionSpec {
                scale,
                softcap: c.attn_softcap,
                window: (layer.kind == LayerKind::Sliding).then_some(c.sliding_window),
            };
            let attn = cache.attend_rows(
                l,
                Heads::contiguous(&q, c.num_heads, dh),
                Heads::contiguous(&k, c.num_kv_heads, dh),
                Heads::contiguous(&v, c.num_kv_heads, dh),
                shape,
                spec,
            );
            let mut attn = layer.o_proj.forward_rows(&attn, m);
            layer.post_attention_layernorm.forward_rows(&mut attn);
            x.par_iter_mut().zip(&attn).for_each(|(x, a)| *x += a);
            layer
                .pre_feedforward_layernorm
                .forward_rows_into(&x, &mut h);
            let mut gate = layer.gate_proj.forward_rows_activated(&h, m, c.hidden_act);
            let up = layer.up_proj.forward_rows(&h, m);
            gate.par_iter_mut().zip(&up).for_each(|(g, u)| *g *= u);
            let mut mlp = layer.down_proj.forward_rows(&gate, m);
            layer.post_feedforward_layernorm.forward_rows(&mut mlp);
            x.par_iter_mut().zip(&mlp).for_each(|(x, f)| *x += f);
            push(&x);
        }
        cache.end_step(t);
        self.norm.forward_rows(&mut x);
        Ok(rows_tensor(x, step, &device, self.dtype))
    }

    /// Logits `[B, T, V]`: `h·Eᵀ`, soft-capped when the config says so.
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => hidden.matmul(self.embed_tokens.clone().transpose().unsqueeze::<3>()),
        };
        match self.config.final_softcap {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        }
    }
}

/// Normalises (Gemma-3's q/k norms) and rotates every head vector of `x` (`[tokens, heads, dh]`)
/// in place.
fn prepare_heads<B: Backend>(
    x: &mut [f32],
    tokens: usize,
    dh: usize,
    norm: Option<&GemmaRmsNorm<B>>,
    rope: &HostRope,
) {
    if let Some(norm) = norm {
        norm.forward_rows(x);
    }
    let width = x.len() / tokens;
    x.par_chunks_mut(width)
        .enumerate()
        .for_each(|(token, heads)| {
            for head in heads.chunks_exact_mut(dh) {
                rope.apply(token, head);
            }
        });
}

//! GPT-NeoX / Pythia (all C2S-Pythia models), matching `transformers`' `GPTNeoXForCausalLM`.
//!
//! Per layer: `h = x + attn(ln1(x)) + mlp(ln2(x))` with `use_parallel_residual`, otherwise
//! `a = x + attn(ln1(x)); h = a + mlp(ln2(a))`. The fused QKV projection is interleaved per
//! head (`[h0: q k v | h1: q k v | ...]`), RoPE covers the first `rotary_pct` of each head.

use super::attention::build_mask;
use super::config::{Activation, GptNeoxConfig};
use super::host_attention::{AttentionShape, AttentionSpec, Heads};
use super::kv_cache::KvCache;
use super::linear::host_f32;
use super::linear::{Linear, uses_host_kernels};
use super::norm::LayerNorm;
use super::rope::{Rope, RopeTables};
use super::weights::Weights;
use super::{ModelError, Precision, Step, activate, embed, rows_tensor, runs_on_host};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

/// One transformer block.
#[derive(Debug, Clone)]
struct Layer<B: Backend> {
    input_layernorm: LayerNorm<B>,
    post_attention_layernorm: LayerNorm<B>,
    query_key_value: Linear<B>,
    dense: Linear<B>,
    dense_h_to_4h: Linear<B>,
    dense_4h_to_h: Linear<B>,
}

/// A loaded GPT-NeoX causal language model.
#[derive(Debug, Clone)]
pub struct GptNeox<B: Backend> {
    config: GptNeoxConfig,
    embed_in: Tensor<B, 2>,
    layers: Vec<Layer<B>>,
    final_layer_norm: LayerNorm<B>,
    /// `None` when tied to `embed_in`.
    embed_out: Option<Linear<B>>,
    rope: Rope,
    dtype: DType,
    vocab_rows: usize,
}

impl<B: Backend> GptNeox<B> {
    /// Loads the weights (`gpt_neox.*`, `embed_out.weight`).
    pub fn load(
        config: GptNeoxConfig,
        weights: &Weights,
        precision: Precision,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let dtype = precision.dtype;
        let h = config.hidden_size;
        let i = config.intermediate_size;
        let eps = config.layer_norm_eps;
        // The embedding's row count is authoritative (Pythia pads V to 50,304).
        let vocab_rows = weights
            .shape("gpt_neox.embed_in.weight")
            .map(|s| s[0])
            .unwrap_or(config.vocab_size);
        let embed_in =
            weights.tensor("gpt_neox.embed_in.weight", [vocab_rows, h], dtype, device)?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for l in 0..config.num_layers {
            let p = format!("gpt_neox.layers.{l}");
            let bias = config.attention_bias;
            layers.push(Layer {
                input_layernorm: LayerNorm::load(
                    weights,
                    &format!("{p}.input_layernorm"),
                    h,
                    eps,
                    device,
                )?,
                post_attention_layernorm: LayerNorm::load(
                    weights,
                    &format!("{p}.post_attention_layernorm"),
                    h,
                    eps,
                    device,
                )?,
                query_key_value: Linear::load(
                    weights,
                    &format!("{p}.attention.query_key_value"),
                    h,
                    3 * h,
                    bias,
                    precision,
                    device,
                )?,
                dense: Linear::load(
                    weights,
                    &format!("{p}.attention.dense"),
                    h,
                    h,
                    bias,
                    precision,
                    device,
                )?,
                dense_h_to_4h: Linear::load(
                    weights,
                    &format!("{p}.mlp.dense_h_to_4h"),
                    h,
                    i,
                    true,
                    precision,
                    device,
                )?,
                dense_4h_to_h: Linear::load(
                    weights,
                    &format!("{p}.mlp.dense_4h_to_h"),
                    i,
                    h,
                    true,
                    precision,
                    device,
                )?,
            });
        }
        let final_layer_norm =
            LayerNorm::load(weights, "gpt_neox.final_layer_norm", h, eps, device)?;
        let tied = config.tie_word_embeddings && !weights.contains("embed_out.weight");
        // A tied head on the CPU gets its own packed copy of the embedding (the kernels need
        // their layout); on a GPU it multiplies by the embedding itself.
        let embed_out = match (tied, uses_host_kernels::<B>(device)) {
            (true, false) => None,
            (true, true) => Some(Linear::load(
                weights,
                "gpt_neox.embed_in",
                h,
                vocab_rows,
                false,
                precision,
                device,
            )?),
            (false, _) => Some(Linear::load(
                weights,
                "embed_out",
                h,
                vocab_rows,
                false,
                precision,
                device,
            )?),
        };
        let rope = Rope::new(config.rotary_dim(), config.rope);
        Ok(Self {
            config,
            embed_in,
            layers,
            final_layer_norm,
            embed_out,
            rope,
            dtype,
            vocab_rows,
        })
    }

    /// Checkpoint keys that are buffers, not parameters, in older checkpoints.
    pub fn is_ignored_key(name: &str) -> bool {
        name.ends_with("attention.bias")
            || name.ends_with("attention.masked_bias")
            || name.ends_with("rotary_emb.inv_freq")
    }

    /// Hyper-parameters.
    pub fn config(&self) -> &GptNeoxConfig {
        &self.config
    }

    /// Rows of the output projection (the logits width).
    pub fn vocab_rows(&self) -> usize {
        self.vocab_rows
    }

    /// Number of layers (KV cache slots).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Runs the decoder over one step; returns the final-normed hidden states `[B, T, H]`. When
    /// `trace` is given, every layer's output (before the final norm) is pushed to it.
    pub fn forward(
        &self,
        step: &Step,
        cache: &mut KvCache<B>,
        mut trace: Option<&mut Vec<Tensor<B, 3>>>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let device = self.embed_in.device();
        if runs_on_host::<B>(&device, self.dtype) {
            return self.forward_rows(step, cache, trace);
        }
        let (b, t) = (step.batch, step.seq);
        let heads = self.config.num_heads;
        let dh = self.config.head_dim();
        let hidden = self.config.hidden_size;
        let mut x = embed(&self.embed_in, step, &device)?;
        if let Some(trace) = trace.as_deref_mut() {
            trace.push(x.clone());
        }
        let past = cache.len();
        cache.begin_step(step.valid, t)?;
        let mask = build_mask::<B>(cache.key_valid(), past, t, None, &device);
        let rope: RopeTables<B> = self.rope.tables(step.positions, b, t, self.dtype, &device);
        let scale = (dh as f64).powf(-0.5);
        for (l, layer) in self.layers.iter().enumerate() {
            let qkv = layer
                .query_key_value
                .forward(layer.input_layernorm.forward(x.clone()))
                .reshape([b, t, heads, 3 * dh])
                .swap_dims(1, 2);
            let q = rope.apply(qkv.clone().narrow(3, 0, dh));
            let k = rope.apply(qkv.clone().narrow(3, dh, dh));
            let v = qkv.narrow(3, 2 * dh, dh);
            let spec = AttentionSpec {
                scale,
                softcap: None,
                window: None,
            };
            let attn = cache
                .attend(l, q, k, v, &mask, spec)
                .swap_dims(1, 2)
                .reshape([b, t, hidden]);
            let attn = layer.dense.forward(attn);
            x = if self.config.use_parallel_residual {
                let mlp = self.mlp(layer, layer.post_attention_layernorm.forward(x.clone()));
                mlp + attn + x
            } else {
                let a = attn + x;
                let mlp = self.mlp(layer, layer.post_attention_layernorm.forward(a.clone()));
                mlp + a
            };
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(x.clone());
            }
        }
        cache.end_step(t);
        Ok(self.final_layer_norm.forward(x))
    }

    /// [`Self::forward`] on host rows (the CPU backend): activations stay in one `Vec` per
    /// step, every product runs on the CPU kernels and attention reads the host-side cache.
    fn forward_rows(
        &self,
        step: &Step,
        cache: &mut KvCache<B>,
        mut trace: Option<&mut Vec<Tensor<B, 3>>>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let device = self.embed_in.device();
        let (b, t) = (step.batch, step.seq);
        let m = b * t;
        let heads = self.config.num_heads;
        let dh = self.config.head_dim();
        let mut push = |x: &[f32]| {
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(rows_tensor(x.to_vec(), step, &device, self.dtype));
            }
        };
        let mut x = host_f32(embed(&self.embed_in, step, &device)?);
        push(&x);
        cache.begin_step(step.valid, t)?;
        let rope = self.rope.host_tables(step.positions);
        let shape = AttentionShape {
            rows: b,
            tokens: t,
            heads,
            kv_heads: heads,
            dim: dh,
        };
        let spec = AttentionSpec {
            scale: (dh as f64).powf(-0.5),
            softcap: None,
            window: None,
        };
        // The normalised input of each block, rewritten in place by every norm.
        let mut h = vec![0.0f32; x.len()];
        for (l, layer) in self.layers.iter().enumerate() {
            layer.input_layernorm.forward_rows_into(&x, &mut h);
            let mut qkv = layer.query_key_value.forward_rows(&h, m);
            rotate_fused(&mut qkv, heads, dh, |token, head| rope.apply(token, head));
            let [q, k, v] = [0, 1, 2].map(|part| Heads::fused(&qkv, heads, dh, part));
            let attn = cache.attend_rows(l, q, k, v, shape, spec);
            let attn = layer.dense.forward_rows(&attn, m);
            if self.config.use_parallel_residual {
                layer.post_attention_layernorm.forward_rows_into(&x, &mut h);
                let mlp = self.mlp_rows(layer, &h, m);
                x.par_iter_mut()
                    .zip(&mlp)
                    .zip(&attn)
                    .for_each(|((x, f), a)| *x += f + a);
            } else {
                x.par_iter_mut().zip(&attn).for_each(|(x, a)| *x += a);
                layer.post_attention_layernorm.forward_rows_into(&x, &mut h);
                let mlp = self.mlp_rows(layer, &h, m);
                x.par_iter_mut().zip(&mlp).for_each(|(x, f)| *x += f);
            }
            push(&x);
        }
        cache.end_step(t);
        self.final_layer_norm.forward_rows(&mut x);
        Ok(rows_tensor(x, step, &device, self.dtype))
    }

    fn mlp_rows(&self, layer: &Layer<B>, x: &[f32], m: usize) -> Vec<f32> {
        let up = layer
            .dense_h_to_4h
            .forward_rows_activated(x, m, self.config.hidden_act);
        layer.dense_4h_to_h.forward_rows(&up, m)
    }

    fn mlp(&self, layer: &Layer<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let act: Activation = self.config.hidden_act;
        layer
            .dense_4h_to_h
            .forward(activate(layer.dense_h_to_4h.forward(x), act))
    }

    /// Logits `[B, T, V]` from final hidden states.
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.embed_out {
            Some(head) => head.forward(hidden),
            None => hidden.matmul(self.embed_in.clone().transpose().unsqueeze::<3>()),
        }
    }
}

/// Applies `rotate(token, vector)` in place to every query and key head vector of the fused
/// projection (per token: `[head: q k v]`, each `dh` values), tokens in parallel.
fn rotate_fused(
    qkv: &mut [f32],
    heads: usize,
    dh: usize,
    rotate: impl Fn(usize, &mut [f32]) + Sync,
) {
    qkv.par_chunks_mut(3 * heads * dh)
        .enumerate()
        .for_each(|(token, fused)| {
            for part in fused.chunks_exact_mut(3 * dh) {
                let (qk, _) = part.split_at_mut(2 * dh);
                let (q, k) = qk.split_at_mut(dh);
                rotate(token, q);
                rotate(token, k);
            }
        });
}

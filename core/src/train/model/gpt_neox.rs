//! The trainable GPT-NeoX: `transformers`' `GPTNeoXForCausalLM` (eager attention) as plain Burn
//! operations over frozen weights, with LoRA on the projections named by the config. The fused
//! QKV adapter acts on the head-interleaved `3H` output, before the q/k/v split, as in peft.

use super::layers::{
    Adapters, Frozen, LayerNorm, NamedSlot, Projection, Rotary, Slot, attention, embed, gelu,
    mask_bias,
};
use crate::kernels::WeightFormat;
use crate::model::ModelError;
use crate::model::Step;
use crate::model::config::{Activation, GptNeoxConfig};
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
    input_layernorm: LayerNorm<B>,
    post_attention_layernorm: LayerNorm<B>,
    query_key_value: Projection<B>,
    dense: Projection<B>,
    dense_h_to_4h: Projection<B>,
    dense_4h_to_h: Projection<B>,
}

/// A GPT-NeoX with frozen weights and LoRA slots.
pub struct TrainableGptNeox<B: Backend> {
    config: GptNeoxConfig,
    embed_in: Tensor<B, 2>,
    layers: Vec<Layer<B>>,
    final_layer_norm: LayerNorm<B>,
    embed_out: Option<Frozen<B>>,
    rope: Rope,
    modules: Vec<ModuleSpec>,
}

impl<B: Backend> TrainableGptNeox<B> {
    /// Loads the frozen weights and numbers the projections `lora` targets, in layer order.
    pub fn load(
        config: GptNeoxConfig,
        weights: &Weights,
        lora: &LoraConfig,
        host: Option<WeightFormat>,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let h = config.hidden_size;
        let inter = config.intermediate_size;
        let eps = config.layer_norm_eps;
        let vocab_rows = weights
            .shape("gpt_neox.embed_in.weight")
            .map(|s| s[0])
            .unwrap_or(config.vocab_size);
        let embed_in = weights.tensor(
            "gpt_neox.embed_in.weight",
            [vocab_rows, h],
            DType::F32,
            device,
        )?;
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
        for l in 0..config.num_layers {
            let p = format!("gpt_neox.layers.{l}");
            let bias = config.attention_bias;
            let query_key_value = projection(
                format!("{p}.attention.query_key_value"),
                "query_key_value",
                h,
                3 * h,
                bias,
            )?;
            let dense = projection(format!("{p}.attention.dense"), "dense", h, h, bias)?;
            let dense_h_to_4h = projection(
                format!("{p}.mlp.dense_h_to_4h"),
                "dense_h_to_4h",
                h,
                inter,
                true,
            )?;
            let dense_4h_to_h = projection(
                format!("{p}.mlp.dense_4h_to_h"),
                "dense_4h_to_h",
                inter,
                h,
                true,
            )?;
            layers.push(Layer {
                input_layernorm: LayerNorm::load(
                    weights,
                    &format!("{p}.input_layernorm"),
                    h,
                    eps,
                    host.is_some(),
                    device,
                )?,
                post_attention_layernorm: LayerNorm::load(
                    weights,
                    &format!("{p}.post_attention_layernorm"),
                    h,
                    eps,
                    host.is_some(),
                    device,
                )?,
                query_key_value,
                dense,
                dense_h_to_4h,
                dense_4h_to_h,
            });
        }
        let final_layer_norm = LayerNorm::load(
            weights,
            "gpt_neox.final_layer_norm",
            h,
            eps,
            host.is_some(),
            device,
        )?;
        let tied = config.tie_word_embeddings && !weights.contains("embed_out.weight");
        let packed_tied = host.filter(|_| tied && host_ops::serves::<B>());
        let embed_out = if let Some(format) = packed_tied {
            // A tied head on the CPU kernels: the embedding table packed as the head's weight.
            Some(Frozen::Host(Arc::new(HostWeight::load(
                weights,
                "gpt_neox.embed_in",
                h,
                vocab_rows,
                false,
                format,
            )?)))
        } else if tied {
            None
        } else {
            Some(Frozen::load(
                weights,
                "embed_out",
                h,
                vocab_rows,
                false,
                host,
                device,
            )?)
        };
        let rope = Rope::new(config.rotary_dim(), config.rope);
        Ok(Self {
            config,
            embed_in,
            layers,
            final_layer_norm,
            embed_out,
            rope,
            modules,
        })
    }

    /// The projections with adapters, in the order of the LoRA factors.
    pub fn modules(&self) -> &[ModuleSpec] {
        &self.modules
    }

    /// Every weight with its Hugging Face name, in a fixed order (full fine-tuning). A tied
    /// head is the embedding table itself.
    pub fn slots(&mut self) -> Vec<NamedSlot<'_, B>> {
        let mut out = vec![(
            "gpt_neox.embed_in.weight".to_string(),
            Slot::Matrix(&mut self.embed_in),
        )];
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let p = format!("gpt_neox.layers.{l}");
            out.extend(layer.input_layernorm.slots(&format!("{p}.input_layernorm")));
            out.extend(
                layer
                    .post_attention_layernorm
                    .slots(&format!("{p}.post_attention_layernorm")),
            );
            out.extend(
                layer
                    .query_key_value
                    .base
                    .slots(&format!("{p}.attention.query_key_value")),
            );
            out.extend(layer.dense.base.slots(&format!("{p}.attention.dense")));
            out.extend(
                layer
                    .dense_h_to_4h
                    .base
                    .slots(&format!("{p}.mlp.dense_h_to_4h")),
            );
            out.extend(
                layer
                    .dense_4h_to_h
                    .base
                    .slots(&format!("{p}.mlp.dense_4h_to_h")),
            );
        }
        out.extend(self.final_layer_norm.slots("gpt_neox.final_layer_norm"));
        if let Some(head) = &mut self.embed_out {
            out.extend(head.slots("embed_out"));
        }
        out
    }

    /// The final hidden states `[rows, seq, H]` (after the final layer norm).
    pub fn hidden(&self, step: &Step, adapters: Option<&Adapters<B>>) -> Tensor<B, 3> {
        let c = &self.config;
        let (b, t) = (step.batch, step.seq);
        let (heads, dh) = (c.num_heads, c.head_dim());
        let device = self.embed_in.device();
        let mut x = embed(&self.embed_in, step.ids, b, t);
        let bias = mask_bias::<B>(step.valid, b, t, None, &device);
        let rotary = Rotary::new(&self.rope, step.positions, b, t, &device);
        let layout = QkvLayout::Interleaved {
            heads,
            head_dim: dh,
        };
        let scale = (dh as f64).powf(-0.5);
        for layer in &self.layers {
            let qkv = layer
                .query_key_value
                .forward(layer.input_layernorm.forward(x.clone()), adapters);
            let attn = attention(qkv, layout, &rotary, scale, None, &bias);
            let attn = layer.dense.forward(attn, adapters);
            x = if c.use_parallel_residual {
                let mlp = self.mlp(
                    layer,
                    layer.post_attention_layernorm.forward(x.clone()),
                    adapters,
                );
                mlp + attn + x
            } else {
                let a = attn + x;
                let mlp = self.mlp(
                    layer,
                    layer.post_attention_layernorm.forward(a.clone()),
                    adapters,
                );
                mlp + a
            };
        }
        self.final_layer_norm.forward(x)
    }

    /// Logits `[rows, seq, V]` from the final hidden states.
    pub fn logits(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.embed_out {
            Some(head) => head.forward(h),
            None => h.matmul(self.embed_in.clone().transpose().unsqueeze::<3>()),
        }
    }

    /// True when the frozen layers are packed for the CPU kernels (a LoRA load on the CPU).
    pub fn packed(&self) -> bool {
        self.layers
            .first()
            .is_some_and(|l| l.dense.base.host().is_some())
            || self.host_head().is_some()
    }

    /// The head, when it is packed for the CPU kernels.
    pub fn host_head(&self) -> Option<&Arc<HostWeight>> {
        self.embed_out.as_ref().and_then(Frozen::host)
    }

    fn mlp(
        &self,
        layer: &Layer<B>,
        x: Tensor<B, 3>,
        adapters: Option<&Adapters<B>>,
    ) -> Tensor<B, 3> {
        let up = layer.dense_h_to_4h.forward(x, adapters);
        let up = match self.config.hidden_act {
            Activation::Gelu => gelu(up),
            Activation::GeluTanh => gelu_approximate(up),
            Activation::Relu => relu(up),
        };
        layer.dense_4h_to_h.forward(up, adapters)
    }
}

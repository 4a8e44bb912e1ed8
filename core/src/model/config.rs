//! `config.json` parsing: dispatch on `model_type` and normalise the spellings that changed across
//! `transformers` versions (`rotary_pct` ↔ `partial_rotary_factor`, `rotary_emb_base` ↔
//! `rope_theta` ↔ `rope_parameters`, a nested `text_config`).

use super::ModelError;
use serde_json::Value;
use std::path::Path;

/// The architecture of a checkpoint with its normalised hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// GPT-NeoX / Pythia (`model_type: gpt_neox`).
    GptNeox(GptNeoxConfig),
    /// Gemma-2 or Gemma-3 text (`gemma2`, `gemma3_text`, `gemma3` with `text_config`).
    Gemma(GemmaConfig),
}

impl ModelConfig {
    /// Reads and parses `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| ModelError::Config {
            message: format!("{} is not valid JSON: {e}", path.display()),
        })?;
        Self::from_json(&value)
    }

    /// Parses an already loaded `config.json` value.
    pub fn from_json(value: &Value) -> Result<Self, ModelError> {
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::Config {
                message: "config.json has no `model_type`; is this a Hugging Face model directory?"
                    .into(),
            })?;
        match model_type {
            "gpt_neox" => Ok(Self::GptNeox(GptNeoxConfig::from_json(value)?)),
            "gemma2" => Ok(Self::Gemma(GemmaConfig::from_json(
                value,
                GemmaVersion::Gemma2,
            )?)),
            "gemma3_text" => Ok(Self::Gemma(GemmaConfig::from_json(
                value,
                GemmaVersion::Gemma3,
            )?)),
            "gemma3" => {
                let text = value.get("text_config").ok_or_else(|| ModelError::Config {
                    message: "a `gemma3` config.json needs a nested `text_config`".into(),
                })?;
                Ok(Self::Gemma(GemmaConfig::from_json(
                    text,
                    GemmaVersion::Gemma3,
                )?))
            }
            other => Err(ModelError::UnsupportedArchitecture {
                model_type: other.to_string(),
            }),
        }
    }

    /// Vocabulary size declared by the config (the weight shape is authoritative).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::GptNeox(c) => c.vocab_size,
            Self::Gemma(c) => c.vocab_size,
        }
    }

    /// Context length (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        match self {
            Self::GptNeox(c) => c.max_position_embeddings,
            Self::Gemma(c) => c.max_position_embeddings,
        }
    }

    /// A short human-readable architecture name.
    pub fn architecture_name(&self) -> &'static str {
        match self {
            Self::GptNeox(_) => "gpt_neox",
            Self::Gemma(c) => match c.version {
                GemmaVersion::Gemma2 => "gemma2",
                GemmaVersion::Gemma3 => "gemma3",
            },
        }
    }

    /// Token ids from `config.json` (`bos`, `eos` list, `pad`).
    pub fn special_ids(&self) -> &SpecialIds {
        match self {
            Self::GptNeox(c) => &c.special,
            Self::Gemma(c) => &c.special,
        }
    }
}

/// Special token ids as declared in a config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// `bos_token_id`.
    pub bos: Option<u32>,
    /// `eos_token_id` (an int or a list).
    pub eos: Vec<u32>,
    /// `pad_token_id`.
    pub pad: Option<u32>,
}

impl SpecialIds {
    /// Reads `bos_token_id`, `eos_token_id` and `pad_token_id` from a config object.
    pub fn from_json(value: &Value) -> Self {
        let id = |key: &str| value.get(key).and_then(Value::as_u64).map(|v| v as u32);
        let eos = match value.get("eos_token_id") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_u64)
                .map(|v| v as u32)
                .collect(),
            Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            None => Vec::new(),
        };
        Self {
            bos: id("bos_token_id"),
            eos,
            pad: id("pad_token_id"),
        }
    }
}

/// How a model scales rotary frequencies for long contexts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// `inv_freq /= factor` (position interpolation).
    Linear {
        /// The interpolation factor.
        factor: f32,
    },
}

/// Rotary embedding parameters of one attention type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    /// `rope_theta`.
    pub theta: f32,
    /// Frequency scaling.
    pub scaling: RopeScaling,
}

/// The hidden activation of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU: `gelu`.
    Gelu,
    /// Tanh-approximated GELU: `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`.
    GeluTanh,
    /// `relu`.
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self, ModelError> {
        match name {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => Err(ModelError::Config {
                message: format!("unsupported hidden activation `{other}`"),
            }),
        }
    }
}

/// GPT-NeoX hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct GptNeoxConfig {
    /// Vocabulary rows of the embedding.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_layers: usize,
    /// Number of attention heads.
    pub num_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Fraction of each head's dimensions that gets rotary embeddings.
    pub rotary_pct: f32,
    /// RoPE base and scaling.
    pub rope: RopeConfig,
    /// Context length.
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// `x + attn(ln1 x) + mlp(ln2 x)` when true, sequential otherwise.
    pub use_parallel_residual: bool,
    /// MLP activation.
    pub hidden_act: Activation,
    /// Whether `attention.query_key_value` / `attention.dense` carry biases.
    pub attention_bias: bool,
    /// Whether `embed_out` is tied to `embed_in`.
    pub tie_word_embeddings: bool,
    /// Special token ids.
    pub special: SpecialIds,
}

impl GptNeoxConfig {
    /// Head dimension `hidden / heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Rotary dimensions per head: `int(head_dim * rotary_pct)`.
    pub fn rotary_dim(&self) -> usize {
        (self.head_dim() as f64 * self.rotary_pct as f64) as usize
    }

    fn from_json(v: &Value) -> Result<Self, ModelError> {
        let r = Reader(v);
        let rope_params = v.get("rope_parameters");
        let theta = r
            .f64_opt("rotary_emb_base")
            .or_else(|| r.f64_opt("rope_theta"))
            .or_else(|| {
                rope_params
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(Value::as_f64)
            })
            .unwrap_or(10000.0);
        let rotary_pct = r
            .f64_opt("rotary_pct")
            .or_else(|| r.f64_opt("partial_rotary_factor"))
            .or_else(|| {
                rope_params
                    .and_then(|p| p.get("partial_rotary_factor"))
                    .and_then(Value::as_f64)
            })
            .unwrap_or(0.25);
        let scaling = parse_rope_scaling(v.get("rope_scaling").or(rope_params))?;
        let c = Self {
            vocab_size: r.usize("vocab_size")?,
            hidden_size: r.usize("hidden_size")?,
            num_layers: r.usize("num_hidden_layers")?,
            num_heads: r.usize("num_attention_heads")?,
            intermediate_size: r.usize("intermediate_size")?,
            rotary_pct: rotary_pct as f32,
            rope: RopeConfig {
                theta: theta as f32,
                scaling,
            },
            max_position_embeddings: r.usize_or("max_position_embeddings", 2048),
            layer_norm_eps: r.f64_opt("layer_norm_eps").unwrap_or(1e-5),
            use_parallel_residual: r.bool_or("use_parallel_residual", true),
            hidden_act: Activation::parse(r.str_or("hidden_act", "gelu"))?,
            attention_bias: r.bool_or("attention_bias", true),
            tie_word_embeddings: r.bool_or("tie_word_embeddings", false),
            special: SpecialIds::from_json(v),
        };
        if c.num_heads == 0 || !c.hidden_size.is_multiple_of(c.num_heads) {
            return Err(ModelError::Config {
                message: format!(
                    "hidden_size {} is not divisible by num_attention_heads {}",
                    c.hidden_size, c.num_heads
                ),
            });
        }
        if !c.rotary_dim().is_multiple_of(2) {
            return Err(ModelError::Config {
                message: format!("rotary dimension {} must be even", c.rotary_dim()),
            });
        }
        Ok(c)
    }
}

/// Which Gemma generation a config describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmaVersion {
    /// Gemma-2: attention and final logit soft-capping, alternating sliding layers.
    Gemma2,
    /// Gemma-3 text: q/k norms, per-layer-type RoPE, usually no soft-capping.
    Gemma3,
}

/// The attention span of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Attends to every earlier token.
    Full,
    /// Attends to keys with `q_idx - kv_idx < sliding_window`.
    Sliding,
}

/// Gemma-2 / Gemma-3 text hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmaConfig {
    /// Which generation.
    pub version: GemmaVersion,
    /// Vocabulary rows of the embedding.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (GQA).
    pub num_kv_heads: usize,
    /// Per-head dimension.
    pub head_dim: usize,
    /// Attention scale is `query_pre_attn_scalar^-0.5`.
    pub query_pre_attn_scalar: f64,
    /// Sliding window of local layers.
    pub sliding_window: usize,
    /// Kind of each layer.
    pub layer_kinds: Vec<LayerKind>,
    /// RoPE of full-attention layers.
    pub rope_global: RopeConfig,
    /// RoPE of sliding layers.
    pub rope_local: RopeConfig,
    /// Attention soft-cap (`attn_logit_softcapping`).
    pub attn_softcap: Option<f64>,
    /// Final logit soft-cap.
    pub final_softcap: Option<f64>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// MLP activation.
    pub hidden_act: Activation,
    /// Context length.
    pub max_position_embeddings: usize,
    /// Whether q/k/v/o projections have biases.
    pub attention_bias: bool,
    /// Special token ids.
    pub special: SpecialIds,
}

impl GemmaConfig {
    fn from_json(v: &Value, version: GemmaVersion) -> Result<Self, ModelError> {
        let r = Reader(v);
        let num_layers = r.usize("num_hidden_layers")?;
        let num_heads = r.usize("num_attention_heads")?;
        let hidden_size = r.usize("hidden_size")?;
        let head_dim = r.usize_or("head_dim", hidden_size / num_heads.max(1));
        let layer_kinds = match v.get("layer_types").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .map(|t| match t.as_str() {
                    Some("sliding_attention") => Ok(LayerKind::Sliding),
                    Some("full_attention") => Ok(LayerKind::Full),
                    other => Err(ModelError::Config {
                        message: format!("unknown layer type {other:?} in `layer_types`"),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => {
                let pattern = match version {
                    GemmaVersion::Gemma2 => 2,
                    GemmaVersion::Gemma3 => r
                        .usize_opt("sliding_window_pattern")
                        .or_else(|| r.usize_opt("_sliding_window_pattern"))
                        .unwrap_or(6),
                };
                (0..num_layers)
                    .map(|i| {
                        if (i + 1) % pattern.max(1) != 0 {
                            LayerKind::Sliding
                        } else {
                            LayerKind::Full
                        }
                    })
                    .collect()
            }
        };
        if layer_kinds.len() != num_layers {
            return Err(ModelError::Config {
                message: format!(
                    "`layer_types` has {} entries for {} layers",
                    layer_kinds.len(),
                    num_layers
                ),
            });
        }
        let (rope_global, rope_local) = gemma_ropes(v, version)?;
        let default_softcap = |key: &str, gemma2_default: f64| -> Option<f64> {
            match v.get(key) {
                Some(Value::Null) => None,
                Some(x) => x.as_f64(),
                None => match version {
                    GemmaVersion::Gemma2 => Some(gemma2_default),
                    GemmaVersion::Gemma3 => None,
                },
            }
        };
        let c = Self {
            version,
            vocab_size: r.usize("vocab_size")?,
            hidden_size,
            intermediate_size: r.usize("intermediate_size")?,
            num_layers,
            num_heads,
            num_kv_heads: r.usize_or("num_key_value_heads", num_heads),
            head_dim,
            query_pre_attn_scalar: r
                .f64_opt("query_pre_attn_scalar")
                .unwrap_or(head_dim as f64),
            sliding_window: r.usize_or("sliding_window", 4096),
            layer_kinds,
            rope_global,
            rope_local,
            attn_softcap: default_softcap("attn_logit_softcapping", 50.0),
            final_softcap: default_softcap("final_logit_softcapping", 30.0),
            rms_norm_eps: r.f64_opt("rms_norm_eps").unwrap_or(1e-6),
            hidden_act: Activation::parse(
                v.get("hidden_activation")
                    .and_then(Value::as_str)
                    .or_else(|| v.get("hidden_act").and_then(Value::as_str))
                    .unwrap_or("gelu_pytorch_tanh"),
            )?,
            max_position_embeddings: r.usize_or("max_position_embeddings", 8192),
            attention_bias: r.bool_or("attention_bias", false),
            special: SpecialIds::from_json(v),
        };
        if c.num_kv_heads == 0 || !c.num_heads.is_multiple_of(c.num_kv_heads) {
            return Err(ModelError::Config {
                message: format!(
                    "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                    c.num_heads, c.num_kv_heads
                ),
            });
        }
        if !c.head_dim.is_multiple_of(2) {
            return Err(ModelError::Config {
                message: format!("head_dim {} must be even for RoPE", c.head_dim),
            });
        }
        Ok(c)
    }
}

/// RoPE of (full, sliding) layers for both config spellings.
fn gemma_ropes(v: &Value, version: GemmaVersion) -> Result<(RopeConfig, RopeConfig), ModelError> {
    // transformers >= 5: `rope_parameters` keyed by layer type (or one flat dict).
    if let Some(params) = v.get("rope_parameters").filter(|p| p.is_object()) {
        let one = |p: &Value, default_theta: f64| -> Result<RopeConfig, ModelError> {
            Ok(RopeConfig {
                theta: p
                    .get("rope_theta")
                    .and_then(Value::as_f64)
                    .unwrap_or(default_theta) as f32,
                scaling: parse_rope_scaling(Some(p))?,
            })
        };
        if let (Some(full), Some(sliding)) = (
            params.get("full_attention"),
            params.get("sliding_attention"),
        ) {
            return Ok((one(full, 1_000_000.0)?, one(sliding, 10_000.0)?));
        }
        let flat = one(params, 10_000.0)?;
        return Ok((flat, flat));
    }
    let theta = v
        .get("rope_theta")
        .and_then(Value::as_f64)
        .unwrap_or(10_000.0) as f32;
    let scaling = parse_rope_scaling(v.get("rope_scaling"))?;
    let global = RopeConfig { theta, scaling };
    let local = match version {
        GemmaVersion::Gemma2 => global,
        GemmaVersion::Gemma3 => RopeConfig {
            theta: v
                .get("rope_local_base_freq")
                .and_then(Value::as_f64)
                .unwrap_or(10_000.0) as f32,
            scaling: RopeScaling::None,
        },
    };
    Ok((global, local))
}

fn parse_rope_scaling(v: Option<&Value>) -> Result<RopeScaling, ModelError> {
    let Some(v) = v.filter(|v| v.is_object()) else {
        return Ok(RopeScaling::None);
    };
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => {
            let factor = v.get("factor").and_then(Value::as_f64).unwrap_or(1.0) as f32;
            if factor <= 0.0 {
                return Err(ModelError::Config {
                    message: format!("rope scaling factor must be positive, got {factor}"),
                });
            }
            Ok(RopeScaling::Linear { factor })
        }
        other => Err(ModelError::Config {
            message: format!(
                "RoPE scaling type `{other}` is not supported yet (supported: default, linear)"
            ),
        }),
    }
}

/// Typed field access with errors that name the missing key.
struct Reader<'a>(&'a Value);

impl Reader<'_> {
    fn usize_opt(&self, key: &str) -> Option<usize> {
        self.0.get(key).and_then(Value::as_u64).map(|v| v as usize)
    }
    fn usize(&self, key: &str) -> Result<usize, ModelError> {
        self.usize_opt(key).ok_or_else(|| ModelError::Config {
            message: format!("config.json is missing the integer field `{key}`"),
        })
    }
    fn usize_or(&self, key: &str, default: usize) -> usize {
        self.usize_opt(key).unwrap_or(default)
    }
    fn f64_opt(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(Value::as_f64)
    }
    fn bool_or(&self, key: &str, default: bool) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(default)
    }
    fn str_or<'b>(&'b self, key: &str, default: &'b str) -> &'b str {
        self.0.get(key).and_then(Value::as_str).unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn neox_spellings_are_normalised() {
        let old = json!({"model_type":"gpt_neox","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
            "num_attention_heads":2,"intermediate_size":16,"rotary_pct":0.5,"rotary_emb_base":500});
        let new = json!({"model_type":"gpt_neox","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
            "num_attention_heads":2,"intermediate_size":16,
            "rope_parameters":{"rope_theta":500.0,"partial_rotary_factor":0.5,"rope_type":"default"}});
        let (ModelConfig::GptNeox(a), ModelConfig::GptNeox(b)) = (
            ModelConfig::from_json(&old).unwrap(),
            ModelConfig::from_json(&new).unwrap(),
        ) else {
            panic!("expected gpt_neox");
        };
        assert_eq!(a.rotary_dim(), 2);
        assert_eq!(a.rope, b.rope);
        assert_eq!(a.rotary_pct, b.rotary_pct);
    }

    #[test]
    fn unknown_architecture_is_a_clear_error() {
        let err = ModelConfig::from_json(&json!({"model_type":"llama"})).unwrap_err();
        assert!(err.to_string().contains("llama"), "{err}");
    }

    #[test]
    fn gemma3_layer_pattern_defaults_to_five_local_one_global() {
        let v = json!({"model_type":"gemma3_text","vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":6,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":4});
        let ModelConfig::Gemma(c) = ModelConfig::from_json(&v).unwrap() else {
            panic!("expected gemma");
        };
        assert_eq!(c.layer_kinds[5], LayerKind::Full);
        assert!(c.layer_kinds[..5].iter().all(|k| *k == LayerKind::Sliding));
        assert_eq!(c.attn_softcap, None);
        assert_eq!(c.rope_local.theta, 10_000.0);
    }
}

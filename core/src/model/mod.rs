//! Causal language models for C2S checkpoints, written against Burn and kept generic over the
//! backend: GPT-NeoX (C2S-Pythia) and Gemma-2 / Gemma-3 text (C2S-Scale-Gemma).
//!
//! [`LanguageModel::load`] reads a Hugging Face model directory (`config.json` +
//! `model.safetensors` or shards), dispatching on `model_type`. [`LanguageModel::forward`] runs
//! one step (a prefill or a decode step) against a [`kv_cache::KvCache`] and returns final-normed
//! hidden states; [`LanguageModel::logits`] applies the LM head. Numerics follow `transformers`'
//! eager implementations (norms and RoPE tables in f32).

pub mod attention;
pub mod config;
pub mod gemma;
pub mod gpt_neox;
pub mod host_attention;
pub mod kv_cache;
pub mod linear;
pub mod low_rank;
pub mod norm;
pub mod rope;
pub mod weights;

use crate::kernels::WeightFormat;
use burn::tensor::activation::{gelu, gelu_approximate, relu};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};
use config::{Activation, ModelConfig};
use kv_cache::KvCache;
use std::path::{Path, PathBuf};
use weights::Weights;

/// Errors from loading or running a model. Messages name the problem and, where possible, the fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// `config.json` is malformed or inconsistent.
    #[error("invalid model config: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The `model_type` is not one the engine implements.
    #[error(
        "unsupported architecture `{model_type}`: C2S Studio runs gpt_neox (C2S-Pythia), gemma2 \
         and gemma3 (C2S-Scale-Gemma) checkpoints"
    )]
    UnsupportedArchitecture {
        /// `config.json`'s `model_type`.
        model_type: String,
    },
    /// Weights missing, malformed, or not matching the config.
    #[error("invalid weights: {message}")]
    Weights {
        /// What is wrong.
        message: String,
    },
    /// Loading stopped because it was cancelled.
    #[error("loading the model was cancelled")]
    Cancelled,
    /// Bad inputs to a forward pass (token ids out of range, too long, ...).
    #[error("{message}")]
    Input {
        /// What is wrong.
        message: String,
    },
}

/// The precision a model is loaded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    /// Compute dtype; also the storage dtype of every tensor on GPU backends.
    pub dtype: DType,
    /// How dense-layer weights are stored for the CPU kernels (the Flex backend only).
    pub cpu_weights: WeightFormat,
}

impl From<DType> for Precision {
    /// `dtype` with exact (f32) CPU weights.
    fn from(dtype: DType) -> Self {
        Self {
            dtype,
            cpu_weights: WeightFormat::F32,
        }
    }
}

/// The inputs of one forward step: `batch × seq` new tokens, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Token ids.
    pub ids: &'a [u32],
    /// Position of each token (per-row positions make left padding work).
    pub positions: &'a [i64],
    /// False for padding tokens (never attended to).
    pub valid: &'a [bool],
    /// Rows.
    pub batch: usize,
    /// New tokens per row.
    pub seq: usize,
}

/// A loaded model of any supported architecture.
#[derive(Debug, Clone)]
pub enum LanguageModel<B: Backend> {
    /// GPT-NeoX / Pythia.
    GptNeox(gpt_neox::GptNeox<B>),
    /// Gemma-2 / Gemma-3 text.
    Gemma(gemma::Gemma<B>),
}

impl<B: Backend> LanguageModel<B> {
    /// Loads `config.json` and the safetensors weights from `dir` in `dtype` onto `device`.
    pub fn load(
        dir: &Path,
        precision: impl Into<Precision>,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        if !config_path.exists() {
            return Err(ModelError::Io {
                path: config_path,
                message: "not found; a model directory needs config.json, model.safetensors and \
                          tokenizer.json"
                    .into(),
            });
        }
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|e| {
                ModelError::Io {
                    path: config_path.clone(),
                    message: e.to_string(),
                }
            })?)
            .map_err(|e| ModelError::Config {
                message: format!("{} is not valid JSON: {e}", config_path.display()),
            })?;
        let config = ModelConfig::from_json(&raw)?;
        let weights = Weights::open_dir(dir)?;
        Self::from_weights(config, &raw, &weights, precision.into(), device)
    }

    /// Builds a model from a parsed config and opened weights; rejects unexpected leftover keys.
    pub fn from_weights(
        config: ModelConfig,
        raw_config: &serde_json::Value,
        weights: &Weights,
        precision: Precision,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let model = match config {
            ModelConfig::GptNeox(c) => {
                Self::GptNeox(gpt_neox::GptNeox::load(c, weights, precision, device)?)
            }
            ModelConfig::Gemma(c) => {
                let tie = raw_config
                    .get("tie_word_embeddings")
                    .or_else(|| {
                        raw_config
                            .get("text_config")
                            .and_then(|t| t.get("tie_word_embeddings"))
                    })
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(true);
                Self::Gemma(gemma::Gemma::load(c, weights, tie, precision, device)?)
            }
        };
        let unused = weights.unused(|name| match &model {
            Self::GptNeox(_) => gpt_neox::GptNeox::<B>::is_ignored_key(name),
            Self::Gemma(_) => gemma::Gemma::<B>::is_ignored_key(name),
        });
        if !unused.is_empty() {
            let shown: Vec<_> = unused.iter().take(5).cloned().collect();
            return Err(ModelError::Weights {
                message: format!(
                    "{} checkpoint tensors are not used by the {} architecture (e.g. {}); the \
                     config and the weights do not belong together",
                    unused.len(),
                    model.architecture_name(),
                    shown.join(", ")
                ),
            });
        }
        Ok(model)
    }

    /// `gpt_neox`, `gemma2` or `gemma3`.
    pub fn architecture_name(&self) -> &'static str {
        match self {
            Self::GptNeox(_) => "gpt_neox",
            Self::Gemma(m) => match m.config().version {
                config::GemmaVersion::Gemma2 => "gemma2",
                config::GemmaVersion::Gemma3 => "gemma3",
            },
        }
    }

    /// Width of the logits (rows of the LM head), which can exceed the tokenizer's vocabulary.
    pub fn vocab_rows(&self) -> usize {
        match self {
            Self::GptNeox(m) => m.vocab_rows(),
            Self::Gemma(m) => m.vocab_rows(),
        }
    }

    /// Context length from the config.
    pub fn max_positions(&self) -> usize {
        match self {
            Self::GptNeox(m) => m.config().max_position_embeddings,
            Self::Gemma(m) => m.config().max_position_embeddings,
        }
    }

    /// Hidden size (embedding width).
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::GptNeox(m) => m.config().hidden_size,
            Self::Gemma(m) => m.config().hidden_size,
        }
    }

    /// An empty KV cache for `batch` rows and up to `capacity` tokens.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> KvCache<B> {
        let layers = match self {
            Self::GptNeox(m) => m.num_layers(),
            Self::Gemma(m) => m.num_layers(),
        };
        KvCache::new(layers, batch, capacity)
    }

    /// Runs one step; returns final-normed hidden states `[B, T, H]`.
    pub fn forward(&self, step: &Step, cache: &mut KvCache<B>) -> Result<Tensor<B, 3>, ModelError> {
        self.forward_traced(step, cache, None)
    }

    /// Like [`Self::forward`], also pushing the embedding output and every layer's output to
    /// `trace` (for bisecting mismatches against `transformers`' `hidden_states`).
    pub fn forward_traced(
        &self,
        step: &Step,
        cache: &mut KvCache<B>,
        trace: Option<&mut Vec<Tensor<B, 3>>>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        check_step(step, self.vocab_rows(), self.max_positions())?;
        match self {
            Self::GptNeox(m) => m.forward(step, cache, trace),
            Self::Gemma(m) => m.forward(step, cache, trace),
        }
    }

    /// Logits `[B, T, V]` from hidden states.
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Self::GptNeox(m) => m.logits(hidden),
            Self::Gemma(m) => m.logits(hidden),
        }
    }
}

/// Validates ids and positions before they reach the device, so bad input is an error, not a panic.
fn check_step(step: &Step, vocab_rows: usize, max_positions: usize) -> Result<(), ModelError> {
    let n = step.batch * step.seq;
    if n == 0 {
        return Err(ModelError::Input {
            message: "empty input: nothing to run the model on".into(),
        });
    }
    if step.ids.len() != n || step.positions.len() != n || step.valid.len() != n {
        return Err(ModelError::Input {
            message: format!(
                "step of {}x{} has {} ids, {} positions and {} validity flags",
                step.batch,
                step.seq,
                step.ids.len(),
                step.positions.len(),
                step.valid.len()
            ),
        });
    }
    if let Some(bad) = step.ids.iter().find(|&&id| id as usize >= vocab_rows) {
        return Err(ModelError::Input {
            message: format!(
                "token id {bad} is outside the model's vocabulary of {vocab_rows}; the \
                 tokenizer.json does not belong to this model"
            ),
        });
    }
    if let Some(p) = step
        .positions
        .iter()
        .find(|&&p| p < 0 || p as usize >= max_positions)
    {
        return Err(ModelError::Input {
            message: format!(
                "position {p} is beyond the model's context of {max_positions} tokens; shorten \
                 the prompt or lower --max-new-tokens"
            ),
        });
    }
    Ok(())
}

/// Embedding lookup `[B, T] → [B, T, H]`.
fn embed<B: Backend>(
    table: &Tensor<B, 2>,
    step: &Step,
    device: &B::Device,
) -> Result<Tensor<B, 3>, ModelError> {
    let ids: Vec<i64> = step.ids.iter().map(|&i| i as i64).collect();
    let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [step.batch * step.seq]), device);
    let h = table.dims()[1];
    Ok(table
        .clone()
        .select(0, ids)
        .reshape([step.batch, step.seq, h]))
}

/// Applies an MLP activation to host values in place, in parallel (as `transformers`:
/// `x·½·(1 + erf(x/√2))` (see [`crate::kernels::math::gelu_erf`]), the tanh form, or ReLU).
fn activate_rows(x: &mut [f32], act: Activation) {
    use rayon::prelude::*;
    x.par_chunks_mut(1 << 14)
        .for_each(|chunk| activate_chunk(chunk, act));
}

crate::kernels::with_widest_vectors! {
    /// One chunk of [`activate_rows`].
    fn activate_chunk(chunk: &mut [f32], act: Activation) = activate_chunk_lanes;
}

#[inline(always)]
fn activate_chunk_lanes(chunk: &mut [f32], act: Activation) {
    const SQRT_2_OVER_PI: f32 = std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
    match act {
        Activation::Gelu => {
            for v in chunk {
                *v = crate::kernels::math::gelu_erf(*v);
            }
        }
        Activation::GeluTanh => {
            for v in chunk {
                let x = *v;
                *v = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh());
            }
        }
        Activation::Relu => {
            for v in chunk {
                *v = v.max(0.0);
            }
        }
    }
}

/// `[B, T, H]` host values as a tensor (for traces and the forward pass's result).
fn rows_tensor<B: Backend>(
    values: Vec<f32>,
    step: &Step,
    device: &B::Device,
    dtype: DType,
) -> Tensor<B, 3> {
    let width = values.len() / (step.batch * step.seq);
    Tensor::from_data(
        TensorData::new(values, [step.batch, step.seq, width]),
        (device, dtype),
    )
}

/// Whether [`LanguageModel::forward`] runs on host rows (the CPU backend in f32): every layer
/// on the CPU kernels, no tensor round trips between operations.
fn runs_on_host<B: Backend>(device: &B::Device, dtype: DType) -> bool {
    linear::uses_host_kernels::<B>(device) && dtype == DType::F32
}

/// Applies an MLP activation.
fn activate<B: Backend, const D: usize>(x: Tensor<B, D>, act: Activation) -> Tensor<B, D> {
    match act {
        Activation::Gelu => gelu(x),
        Activation::GeluTanh => gelu_approximate(x),
        Activation::Relu => relu(x),
    }
}

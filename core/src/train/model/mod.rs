//! The trainable causal LM: the checkpoint's weights frozen on the device (no gradients, no
//! optimizer state) and LoRA factors as the only tensors that track gradients. One file per
//! architecture, written as plain Burn operations so any `AutodiffBackend` differentiates them
//! (the inference engine's CPU path runs on packed host matrices and is not differentiable).

pub mod gemma;
pub mod gpt_neox;
pub mod layers;

use super::TrainError;
use super::config::LoraConfig;
use super::data::Batch;
use super::params::ModuleSpec;
use super::{host_ops, loss};
use crate::kernels::WeightFormat;
use crate::model::config::ModelConfig;
use crate::model::weights::Weights;
use crate::model::{ModelError, Step};
use burn::backend::Flex;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use layers::Adapters;
use std::path::Path;

/// A trainable model of any supported architecture.
pub enum TrainableModel<B: Backend> {
    /// GPT-NeoX / Pythia.
    GptNeox(gpt_neox::TrainableGptNeox<B>),
    /// Gemma-2 / Gemma-3 text.
    Gemma(gemma::TrainableGemma<B>),
}

/// A base model on disk: its parsed config, raw `config.json` and opened weights.
pub struct BaseModel {
    /// The model directory.
    pub dir: std::path::PathBuf,
    /// Normalised hyper-parameters.
    pub config: ModelConfig,
    /// `config.json` as read.
    pub raw_config: serde_json::Value,
    /// The checkpoint.
    pub weights: Weights,
}

impl BaseModel {
    /// Opens `config.json` and the safetensors weights in `dir`.
    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Io {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        let raw_config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::Config {
                message: format!("{} is not valid JSON: {e}", config_path.display()),
            })?;
        let config = ModelConfig::from_json(&raw_config)?;
        let weights = Weights::open_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            raw_config,
            weights,
        })
    }

    /// Where the Gemma decoder's keys live in this checkpoint (`""` for GPT-NeoX, whose module
    /// paths are absolute).
    pub fn decoder_prefix(&self) -> Result<&'static str, TrainError> {
        match self.config {
            ModelConfig::GptNeox(_) => Ok(""),
            ModelConfig::Gemma(_) => Ok(crate::model::gemma::Gemma::<Flex>::detect_prefix(
                &self.weights,
            )?),
        }
    }

    fn tied(&self) -> bool {
        self.raw_config
            .get("tie_word_embeddings")
            .or_else(|| {
                self.raw_config
                    .get("text_config")
                    .and_then(|t| t.get("tie_word_embeddings"))
            })
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true)
    }
}

impl<B: Backend> TrainableModel<B> {
    /// Loads `base` onto `device` with adapter slots on the projections `lora` targets.
    ///
    /// With `host`, frozen dense layers are packed for the CPU kernels in that format where the
    /// backend is the one they serve ([`crate::train::host_ops`]); full fine-tuning, whose
    /// weights take gradients, loads without.
    pub fn load(
        base: &BaseModel,
        lora: &LoraConfig,
        host: Option<WeightFormat>,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        lora.validate(&base.config)?;
        let model = match &base.config {
            ModelConfig::GptNeox(c) => Self::GptNeox(gpt_neox::TrainableGptNeox::load(
                c.clone(),
                &base.weights,
                lora,
                host,
                device,
            )?),
            ModelConfig::Gemma(c) => {
                let prefix = base.decoder_prefix()?;
                let head = if base.tied() {
                    None
                } else {
                    ["lm_head", "language_model.lm_head"]
                        .into_iter()
                        .find(|n| base.weights.contains(&format!("{n}.weight")))
                };
                Self::Gemma(gemma::TrainableGemma::load(
                    c.clone(),
                    &base.weights,
                    prefix,
                    head,
                    lora,
                    host,
                    device,
                )?)
            }
        };
        Ok(model)
    }

    /// The projections with adapters, in the order of the LoRA factors.
    pub fn modules(&self) -> &[ModuleSpec] {
        match self {
            Self::GptNeox(m) => m.modules(),
            Self::Gemma(m) => m.modules(),
        }
    }

    /// Every weight with its Hugging Face name, in a fixed order, for full fine-tuning.
    pub fn slots(&mut self) -> Result<Vec<layers::NamedSlot<'_, B>>, TrainError> {
        let packed = match self {
            Self::GptNeox(m) => m.packed(),
            Self::Gemma(m) => m.packed(),
        };
        if packed {
            return Err(TrainError::InvalidConfig(
                "this model was loaded for LoRA (frozen layers packed for the CPU kernels); \
                 full fine-tuning loads it without"
                    .into(),
            ));
        }
        Ok(match self {
            Self::GptNeox(m) => m.slots(),
            Self::Gemma(m) => m.slots(),
        })
    }

    /// Logits `[rows, seq, V]` for a batch; `adapters` adds the LoRA branches.
    pub fn forward(&self, step: &Step, adapters: Option<&Adapters<B>>) -> Tensor<B, 3> {
        match self {
            Self::GptNeox(m) => m.logits(m.hidden(step, adapters)),
            Self::Gemma(m) => m.logits(m.hidden(step, adapters)),
        }
    }

    /// `Σ −log p(target)` over the counted targets of `batch` (see [`loss::summed_nll`]). A head
    /// packed for the CPU kernels is fused with the cross-entropy
    /// ([`host_ops::head_nll`]): no `[rows, seq, V]` logits are formed.
    pub fn summed_nll(&self, batch: &Batch, adapters: Option<&Adapters<B>>) -> Tensor<B, 1> {
        let step = batch.step();
        let (hidden, head, softcap) = match self {
            Self::GptNeox(m) => (m.hidden(&step, adapters), m.host_head(), None),
            Self::Gemma(m) => (m.hidden(&step, adapters), m.host_head(), m.final_softcap()),
        };
        let Some(head) = head else {
            return loss::summed_nll(self.logits(hidden), batch);
        };
        let [rows, seq, h] = hidden.dims();
        let targets = host_ops::Targets {
            seq,
            ids: &batch.targets,
            weights: &batch.weights,
        };
        host_ops::head_nll(hidden.reshape([rows * seq, h]), head, targets, softcap)
    }

    fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Self::GptNeox(m) => m.logits(hidden),
            Self::Gemma(m) => m.logits(hidden),
        }
    }
}

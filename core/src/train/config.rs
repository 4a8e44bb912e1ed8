//! LoRA hyper-parameters: rank, alpha, dropout, rsLoRA scaling and the projections that get
//! adapters (peft's defaults per architecture, or a list of attention and MLP projection names).

use super::TrainError;
use crate::model::config::ModelConfig;

/// Projections of a GPT-NeoX layer that can carry an adapter (peft module names).
pub const GPT_NEOX_PROJECTIONS: [&str; 4] =
    ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"];

/// Projections of a Gemma-2 / Gemma-3 layer that can carry an adapter (peft module names).
pub const GEMMA_PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The projection names of `config`'s architecture.
pub fn projections(config: &ModelConfig) -> &'static [&'static str] {
    match config {
        ModelConfig::GptNeox(_) => &GPT_NEOX_PROJECTIONS,
        ModelConfig::Gemma(_) => &GEMMA_PROJECTIONS,
    }
}

/// peft's default target modules (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`):
/// `query_key_value` for GPT-NeoX, `q_proj` and `v_proj` for Gemma-2 and Gemma-3.
pub fn default_targets(config: &ModelConfig) -> Vec<String> {
    match config {
        ModelConfig::GptNeox(_) => vec!["query_key_value".into()],
        ModelConfig::Gemma(_) => vec!["q_proj".into(), "v_proj".into()],
    }
}

/// LoRA settings of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of every adapter.
    pub rank: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// Dropout on the adapter's input (0 disables it).
    pub dropout: f64,
    /// rsLoRA: scale by `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
    /// Projection names that get adapters, in every layer.
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// peft's defaults for `model`: r = 8, alpha = 8, no dropout, the default targets.
    pub fn for_model(model: &ModelConfig) -> Self {
        Self {
            rank: 8,
            alpha: 8.0,
            dropout: 0.0,
            use_rslora: false,
            targets: default_targets(model),
        }
    }

    /// The factor applied to `B·A·x`: `alpha / r`, or `alpha / √r` with rsLoRA (as peft).
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// Checks ranges and that every target names a projection of `model`'s architecture.
    pub fn validate(&self, model: &ModelConfig) -> Result<(), TrainError> {
        if self.rank == 0 {
            return Err(TrainError::InvalidConfig(
                "LoRA rank must be at least 1 (--lora-r)".into(),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "LoRA alpha must be a positive number, got {} (--lora-alpha)",
                self.alpha
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TrainError::InvalidConfig(format!(
                "LoRA dropout must be in [0, 1), got {} (--lora-dropout)",
                self.dropout
            )));
        }
        if self.targets.is_empty() {
            return Err(TrainError::InvalidConfig(
                "no target modules: name at least one projection (--target-modules)".into(),
            ));
        }
        let known = projections(model);
        for target in &self.targets {
            if !known.contains(&target.as_str()) {
                return Err(TrainError::InvalidConfig(format!(
                    "`{target}` is not a projection of the {} architecture; choose from {}",
                    model.architecture_name(),
                    known.join(", ")
                )));
            }
        }
        let mut seen = self.targets.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.targets.len() {
            return Err(TrainError::InvalidConfig(
                "a target module is listed twice (--target-modules)".into(),
            ));
        }
        Ok(())
    }

    /// Whether the projection `name` gets an adapter.
    pub fn targets(&self, name: &str) -> bool {
        self.targets.iter().any(|t| t == name)
    }
}

/// Parses a comma-separated `--target-modules` list; `default` gives peft's defaults.
pub fn parse_targets(list: &str, model: &ModelConfig) -> Vec<String> {
    if list.trim() == "default" {
        return default_targets(model);
    }
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn neox() -> ModelConfig {
        ModelConfig::from_json(
            &json!({"model_type":"gpt_neox","vocab_size":10,"hidden_size":16,
            "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16}),
        )
        .unwrap()
    }

    fn gemma() -> ModelConfig {
        ModelConfig::from_json(
            &json!({"model_type":"gemma2","vocab_size":10,"hidden_size":8,
            "intermediate_size":16,"num_hidden_layers":2,"num_attention_heads":2,
            "num_key_value_heads":1,"head_dim":4}),
        )
        .unwrap()
    }

    #[test]
    fn defaults_follow_peft_per_architecture() {
        assert_eq!(default_targets(&neox()), vec!["query_key_value"]);
        assert_eq!(default_targets(&gemma()), vec!["q_proj", "v_proj"]);
        assert_eq!(parse_targets("default", &gemma()), vec!["q_proj", "v_proj"]);
        assert_eq!(
            parse_targets(" q_proj, down_proj ", &gemma()),
            vec!["q_proj", "down_proj"]
        );
    }

    #[test]
    fn scale_is_alpha_over_r_or_over_sqrt_r() {
        let mut c = LoraConfig::for_model(&neox());
        c.rank = 16;
        c.alpha = 32.0;
        assert_eq!(c.scale(), 2.0);
        c.use_rslora = true;
        assert_eq!(c.scale(), 8.0);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let ok = LoraConfig::for_model(&neox());
        assert!(ok.validate(&neox()).is_ok());
        let wrong_arch = LoraConfig {
            targets: vec!["q_proj".into()],
            ..ok.clone()
        };
        let e = wrong_arch.validate(&neox()).unwrap_err().to_string();
        assert!(e.contains("q_proj") && e.contains("query_key_value"), "{e}");
        let zero = LoraConfig {
            rank: 0,
            ..ok.clone()
        };
        assert!(
            zero.validate(&neox())
                .unwrap_err()
                .to_string()
                .contains("rank")
        );
        let drop = LoraConfig {
            dropout: 1.0,
            ..ok.clone()
        };
        assert!(
            drop.validate(&neox())
                .unwrap_err()
                .to_string()
                .contains("dropout")
        );
        let twice = LoraConfig {
            targets: vec!["dense".into(), "dense".into()],
            ..ok
        };
        assert!(
            twice
                .validate(&neox())
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}

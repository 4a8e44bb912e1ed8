//! What a run will cost, before it starts: memory from a stated formula, and time from two
//! trial steps timed in a scratch folder.

use c2s_core::model::config::ModelConfig;

use crate::gui::panels::status::duration_text;

/// The formula [`memory_bytes`] uses, as shown to the user.
pub const MEMORY_FORMULA: &str = "f32 weights (4 B × parameters) + activations (4 B × batch × L × \
     (layers × (12 × hidden + 2 × MLP width + heads × L) + 2 × vocabulary)), L = the longest \
     example; LoRA factors and optimizer state are small beside these";

/// Memory a training step needs, per [`MEMORY_FORMULA`]: `parameters` of the base model,
/// micro-batches of `batch` rows of up to `length` tokens.
pub fn memory_bytes(config: &ModelConfig, parameters: u64, batch: usize, length: usize) -> u64 {
    let (hidden, mlp, layers, heads, vocab) = match config {
        ModelConfig::GptNeox(c) => (
            c.hidden_size,
            c.intermediate_size,
            c.num_layers,
            c.num_heads,
            c.vocab_size,
        ),
        ModelConfig::Gemma(c) => (
            c.hidden_size,
            c.intermediate_size,
            c.num_layers,
            c.num_heads,
            c.vocab_size,
        ),
    };
    let per_token = layers * (12 * hidden + 2 * mlp + heads * length) + 2 * vocab;
    let activations = 4 * batch as u64 * length as u64 * per_token as u64;
    4 * parameters + activations
}

/// A duration in seconds, in words: "35 ms" under a second, "4.2 s" under ten, else as the
/// status bar writes durations ("14 s", "2 min 5 s", "2 h 1 min").
pub fn duration_words(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "unknown".into();
    }
    let seconds = seconds.max(0.0);
    if seconds < 1.0 {
        return format!("{:.0} ms", seconds * 1000.0);
    }
    if seconds < 10.0 {
        return format!("{seconds:.1} s");
    }
    duration_text(std::time::Duration::from_secs(seconds.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memory_is_weights_plus_activations_per_the_formula() {
        let config = ModelConfig::from_json(&json!({"model_type": "gpt_neox", "vocab_size": 10,
            "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64}))
        .unwrap();
        // Per token: 2 × (12·16 + 2·64 + 2·5) + 2·10 = 680 values; × 4 B × 3 rows × 5 tokens.
        assert_eq!(memory_bytes(&config, 1000, 3, 5), 4000 + 4 * 3 * 5 * 680);
        assert!(memory_bytes(&config, 1000, 6, 5) > memory_bytes(&config, 1000, 3, 5));
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(0.0351), "35 ms");
        assert_eq!(duration_words(4.24), "4.2 s");
        assert_eq!(duration_words(14.4), "14 s");
        assert_eq!(duration_words(125.0), "2 min 5 s");
        assert_eq!(duration_words(7260.0), "2 h 1 min");
        assert_eq!(duration_words(f64::NAN), "unknown");
    }
}

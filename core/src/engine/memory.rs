//! Will a model fit? An estimate of the memory a load needs (weights in the compute dtype plus
//! the key/value cache of one full-context sequence) against the memory the host has free, or
//! a CUDA device's memory, so a model too large is refused with a clear message before
//! anything is allocated.

use super::EngineError;
use crate::model::config::ModelConfig;

/// Bytes of the key/value cache of one sequence of the model's full context.
pub fn kv_cache_bytes(config: &ModelConfig, dtype_size: usize) -> u64 {
    let (layers, kv_width) = match config {
        ModelConfig::GptNeox(c) => (c.num_layers, c.hidden_size),
        ModelConfig::Gemma(c) => (c.num_layers, c.num_kv_heads * c.head_dim),
    };
    2 * (layers * kv_width * config.max_positions() * dtype_size) as u64
}

/// Bytes a load needs: the weights in the compute dtype and one full-context cache, plus a
/// tenth for activations and allocator slack.
pub fn load_bytes(config: &ModelConfig, parameters: u64, dtype_size: usize) -> u64 {
    let base = parameters * dtype_size as u64 + kv_cache_bytes(config, dtype_size);
    base + base / 10
}

/// Memory the host can still give (`MemAvailable` of `/proc/meminfo`), when known.
pub fn available_host_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a load of `needed` bytes when only `available` are free, naming both and the ways
/// out.
pub fn check_fits(needed: u64, available: Option<u64>, what: &str) -> Result<(), EngineError> {
    match available {
        Some(free) if needed > free => Err(EngineError::Input {
            message: format!(
                "{what} needs about {} of memory but only {} is free; close other programs, \
                 load it in a smaller precision (bf16 halves it), or pick a smaller model",
                gib(needed),
                gib(free)
            ),
        }),
        _ => Ok(()),
    }
}

/// Refuses a load of `needed` bytes onto `device`, whose memory is `total` bytes in all, when
/// it cannot hold it; names both and what would fit instead.
pub fn check_fits_device(
    needed: u64,
    total: Option<u64>,
    what: &str,
    device: &str,
) -> Result<(), EngineError> {
    match total {
        Some(total) if needed > total => Err(EngineError::Input {
            message: format!(
                "{what} needs about {} but {device} has {} in all; load it in a smaller \
                 precision (--dtype bf16 or f16 halves f32), on another device (--device cpu, \
                 given that much host memory), or pick a smaller model",
                gib(needed),
                gib(total)
            ),
        }),
        _ => Ok(()),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_and_large_models_are_refused() {
        let text = "MemTotal:  24000000 kB\nMemFree: 100 kB\nMemAvailable:   2097152 kB\n";
        assert_eq!(parse_mem_available(text), Some(2 << 30));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        let err = check_fits(3 << 30, Some(2 << 30), "this model")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs about 3.0 GiB") && err.contains("only 2.0 GiB is free"),
            "{err}"
        );
        assert!(check_fits(1 << 30, Some(2 << 30), "m").is_ok());
        assert!(
            check_fits(1 << 40, None, "m").is_ok(),
            "unknown: let it try"
        );
    }

    #[test]
    fn a_model_larger_than_the_gpu_is_refused_with_what_would_fit() {
        let err = check_fits_device(
            100 << 30,
            Some(80 << 30),
            "gemma-27b in F32",
            "CUDA device 0",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("gemma-27b in F32 needs about 100.0 GiB")
                && err.contains("CUDA device 0 has 80.0 GiB in all")
                && err.contains("--dtype bf16")
                && err.contains("--device cpu"),
            "{err}"
        );
        assert!(check_fits_device(50 << 30, Some(80 << 30), "m", "d").is_ok());
        assert!(check_fits_device(1 << 40, None, "m", "d").is_ok());
    }

    #[test]
    fn estimate_counts_weights_and_one_full_context_cache() {
        let config = ModelConfig::from_json(&serde_json::json!({
            "model_type": "gpt_neox", "vocab_size": 100, "hidden_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
            "max_position_embeddings": 32, "rotary_pct": 0.25
        }))
        .unwrap();
        // 2 (k, v) × 2 layers × 64 × 32 positions × 4 bytes.
        assert_eq!(kv_cache_bytes(&config, 4), 32_768);
        assert_eq!(load_bytes(&config, 1000, 4), (4_000 + 32_768) * 11 / 10);
    }
}

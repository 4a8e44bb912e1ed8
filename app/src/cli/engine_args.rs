//! Model and device flags shared by the engine subcommands.

use c2s_core::engine::{DTypeRequest, DeviceRequest, Engine, LoadOptions};

/// `--model`, `--device`, `--dtype`, `--no-fusion`.
#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    /// Model directory, or a Hugging Face id (org/name) already in the local cache.
    #[arg(long)]
    pub model: String,
    /// Backend: auto, cuda, wgpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Precision: auto, f32, f16, bf16, or q8 (CPU: 8-bit weights, f32 compute; log-probs within
    /// a stated tolerance of f32, see the README).
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// Disable Burn's kernel fusion on GPU backends.
    #[arg(long)]
    pub no_fusion: bool,
}

impl EngineArgs {
    /// Loads the model, reporting the device on stderr (quietly when `quiet`).
    pub fn load(&self, quiet: bool) -> Result<Engine, String> {
        let options = LoadOptions {
            device: self.device.parse::<DeviceRequest>()?,
            dtype: self.dtype.parse::<DTypeRequest>()?,
            fusion: !self.no_fusion && LoadOptions::default().fusion,
        };
        let engine = Engine::load(&self.model, &options).map_err(|e| e.to_string())?;
        let info = engine.info();
        for note in &info.device.notes {
            eprintln!("note: {note}");
        }
        if !quiet {
            let weights = info
                .cpu_weights
                .map(|w| format!(", {} weights", w.name()))
                .unwrap_or_default();
            eprintln!(
                "{} ({}) on {} [{:?}{weights}]",
                info.dir.display(),
                info.architecture,
                info.device.description,
                info.dtype
            );
        }
        Ok(engine)
    }
}

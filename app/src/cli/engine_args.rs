//! Model and device flags shared by the engine subcommands.

use c2s_core::Progress;
use c2s_core::engine::{DTypeRequest, DeviceRequest, Engine, LoadOptions};
use std::path::{Path, PathBuf};

/// `--model` and how it runs ([`DeviceArgs`]).
#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    /// Model directory, or a Hugging Face id (org/name) already in the local cache.
    #[arg(long)]
    pub model: String,
    /// A peft LoRA adapter folder (`adapter_config.json` + `adapter_model.safetensors`, from
    /// `finetune` or from peft) applied to the model's weights at load.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Backend and precision.
    #[command(flatten)]
    pub run: DeviceArgs,
}

impl EngineArgs {
    /// Loads `--model` (with `--adapter`), reporting the device on stderr (quietly when `quiet`).
    pub fn load(&self, quiet: bool) -> Result<Engine, String> {
        self.run
            .load_with_adapter(&self.model, self.adapter.as_deref(), quiet)
    }
}

/// `--device`, `--dtype`, `--no-fusion`: for commands whose model comes from elsewhere (a
/// screen spec, a benchmark's generated checkpoint).
#[derive(Debug, clap::Args)]
pub struct DeviceArgs {
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

impl DeviceArgs {
    /// `--device` and `--dtype` for `device` and `dtype` strings, with fusion on.
    pub fn new(device: &str, dtype: &str) -> Self {
        Self {
            device: device.to_string(),
            dtype: dtype.to_string(),
            no_fusion: false,
        }
    }

    /// Loads `model` (a directory or a cached Hugging Face id), reporting the device on stderr
    /// (quietly when `quiet`).
    pub fn load(&self, model: &str, quiet: bool) -> Result<Engine, String> {
        self.load_with_adapter(model, None, quiet)
    }

    /// [`Self::load`] with an optional peft LoRA adapter folder applied at load.
    pub fn load_with_adapter(
        &self,
        model: &str,
        adapter: Option<&Path>,
        quiet: bool,
    ) -> Result<Engine, String> {
        let options = LoadOptions {
            device: self.device.parse::<DeviceRequest>()?,
            dtype: self.dtype.parse::<DTypeRequest>()?,
            fusion: !self.no_fusion && LoadOptions::default().fusion,
        };
        let engine = Engine::load_with_adapter(model, adapter, &options, &Progress::new())
            .map_err(|e| e.to_string())?;
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
            if let Some(adapter) = adapter {
                eprintln!("with the adapter {}", adapter.display());
            }
        }
        Ok(engine)
    }
}

//! `c2s-studio merge`: a peft LoRA adapter merged into its base model (`W += scale · B·A`),
//! written as a full Hugging Face checkpoint that every command loads as an ordinary model.

use c2s_core::engine::locate::resolve_model;
use c2s_core::train::merge::merge_adapter;
use std::path::PathBuf;

/// Arguments of `merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base model directory, or a Hugging Face id already in the local cache.
    #[arg(long)]
    pub model: String,
    /// The peft adapter folder (adapter_config.json, adapter_model.safetensors).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Output folder for the merged checkpoint.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `merge`.
pub fn run(args: Args) -> Result<(), String> {
    let model_dir = resolve_model(&args.model).map_err(|e| e.to_string())?;
    let summary = merge_adapter(&model_dir, &args.adapter, &args.out).map_err(|e| e.to_string())?;
    eprintln!(
        "merged the adapter into {} projections; wrote {} tensors to {}",
        summary.merged,
        summary.tensors,
        args.out.display()
    );
    Ok(())
}

//! `c2s-studio models`: list models found in a directory or in the Hugging Face cache.

use c2s_core::engine::locate::{hf_hub_cache, list_models};
use std::path::PathBuf;

use crate::format::human_bytes;

/// Arguments of `models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to search (model directories up to two levels deep, or a hub cache); the
    /// Hugging Face cache when omitted.
    pub dir: Option<PathBuf>,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Runs `models`.
pub fn run(args: Args) -> Result<(), String> {
    let models = list_models(args.dir.as_deref()).map_err(|e| e.to_string())?;
    if args.json {
        let rows: Vec<_> = models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "dir": m.dir,
                    "model_type": m.model_type,
                    "weight_bytes": m.weight_bytes,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if models.is_empty() {
        let place = match &args.dir {
            Some(d) => d.display().to_string(),
            None => hf_hub_cache()
                .map(|p| format!("the Hugging Face cache ({})", p.display()))
                .unwrap_or_else(|| "the Hugging Face cache".into()),
        };
        println!("no models found in {place}");
        return Ok(());
    }
    for m in models {
        println!(
            "{:<48} {:<12} {:>10}  {}",
            m.name,
            m.model_type.as_deref().unwrap_or("?"),
            human_bytes(m.weight_bytes),
            m.dir.display()
        );
    }
    Ok(())
}

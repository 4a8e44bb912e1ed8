//! `c2s-studio embed`: the mean final hidden state of a text (the C2S cell embedding).

use super::engine_args::EngineArgs;

/// Arguments of `embed`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Text to embed (repeatable; all texts run as one batch).
    #[arg(long, required = true)]
    pub text: Vec<String>,
    /// Print one JSON object (`embedding` or `embeddings`, `dim`, `device`).
    #[arg(long)]
    pub json: bool,
}

/// Runs `embed`.
pub fn run(args: Args) -> Result<(), String> {
    let engine = args.engine.load(args.json)?;
    let texts: Vec<&str> = args.text.iter().map(String::as_str).collect();
    let vectors = engine.embed(&texts).map_err(|e| e.to_string())?;
    if args.json {
        let dim = vectors.first().map(Vec::len).unwrap_or(0);
        let device = engine.info().device.kind.to_string();
        let out = if vectors.len() == 1 {
            serde_json::json!({"embedding": vectors[0], "dim": dim, "device": device})
        } else {
            serde_json::json!({"embeddings": vectors, "dim": dim, "device": device})
        };
        println!("{out}");
    } else {
        for v in vectors {
            let line: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
            println!("{}", line.join(" "));
        }
    }
    Ok(())
}

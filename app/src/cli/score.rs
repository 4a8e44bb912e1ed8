//! `c2s-studio score`: per-token log-probabilities of a text under a local C2S model.

use super::engine_args::EngineArgs;

/// Arguments of `score`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Text to score (tokenized with the model's tokenizer.json).
    #[arg(long)]
    pub text: String,
    /// Print one JSON object (`token_ids`, `logprobs`, `total`, `device`).
    #[arg(long)]
    pub json: bool,
}

/// Runs `score`.
pub fn run(args: Args) -> Result<(), String> {
    let engine = args.engine.load(args.json)?;
    let mut scores = engine
        .score(&[args.text.as_str()])
        .map_err(|e| e.to_string())?;
    let s = scores.pop().ok_or("the engine returned no scores")?;
    if args.json {
        let out = serde_json::json!({
            "token_ids": s.token_ids,
            "logprobs": s.logprobs,
            "total": s.total(),
            "device": engine.info().device.kind.to_string(),
        });
        println!("{out}");
    } else {
        let tok = engine.tokenizer();
        for (i, id) in s.token_ids.iter().enumerate() {
            let piece = tok.inner().id_to_token(*id).unwrap_or_default();
            match i {
                0 => println!("{id:>8}  {piece:<24}  (first token, not scored)"),
                _ => println!("{id:>8}  {piece:<24}  {:>10.4}", s.logprobs[i - 1]),
            }
        }
        println!("total log-probability: {:.4}", s.total());
    }
    Ok(())
}

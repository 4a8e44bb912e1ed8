//! `c2s-studio generate`: continue a prompt with a local C2S model.

use super::engine_args::EngineArgs;
use c2s_core::engine::{GenerateOptions, SamplingParams};
use std::io::Write;

/// Arguments of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Prompt text (tokenized with the model's tokenizer.json, special tokens included).
    #[arg(long)]
    pub prompt: String,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Random seed for sampling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop when the text contains this string (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Print one JSON object (`text`, `token_ids`, `device`, ...) instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `generate`.
pub fn run(args: Args) -> Result<(), String> {
    let engine = args.engine.load(args.json)?;
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_strings: args.stop,
        ..Default::default()
    };
    options.sampling.validate()?;
    let stream = !args.json;
    let mut stdout = std::io::stdout();
    let mut on_token = |event: c2s_core::engine::TokenEvent<'_>| {
        if stream && !event.text_delta.is_empty() {
            let _ = stdout.write_all(event.text_delta.as_bytes());
            let _ = stdout.flush();
        }
    };
    let (mut rows, stats) = engine
        .generate(&[args.prompt.as_str()], &options, &mut on_token, None)
        .map_err(|e| e.to_string())?;
    let row = rows.pop().ok_or("the engine returned no generation")?;
    if args.json {
        let out = serde_json::json!({
            "text": row.text,
            "token_ids": row.token_ids,
            "prompt_tokens": row.prompt_tokens,
            "stop_reason": row.stop_reason.as_str(),
            "device": engine.info().device.kind.to_string(),
            "dtype": format!("{:?}", engine.info().dtype).to_lowercase(),
            "decode_tokens_per_s": if stats.decode_secs > 0.0 {
                stats.decode_steps as f64 / stats.decode_secs
            } else {
                0.0
            },
        });
        println!("{out}");
    } else {
        println!();
    }
    Ok(())
}

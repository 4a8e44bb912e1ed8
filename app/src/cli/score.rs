//! `c2s-studio score`: per-token log-probabilities of a text under a local C2S model, or of
//! every line of a JSON Lines file (whole texts, or continuations after a shared prompt).

use super::engine_args::EngineArgs;
use super::score_input::{ScoreItem, ScoreLine, read_score_lines};
use c2s_core::engine::Engine;
use c2s_core::io::atomic::{ensure_not_input, write_atomically};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `score`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Text to score (tokenized with the model's tokenizer.json).
    #[arg(long, required_unless_present = "input", conflicts_with = "input")]
    pub text: Option<String>,
    /// A JSON Lines file, one object per line: `{"id": ..., "text": "..."}` scores every token
    /// of the text; `{"id": ..., "prompt": "...", "continuations": ["...", ...]}` scores each
    /// continuation after the prompt (tokenized separately; the prompt runs once). Writes one
    /// JSON line per input line, in order: `id`, `tokens`, `total`, `logprobs` for a text;
    /// `id`, `tokens`, `totals` (one per continuation) for a prompt.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write the `--input` results to this new JSON Lines file (atomically) instead of stdout.
    #[arg(long, requires = "input")]
    pub out: Option<PathBuf>,
    /// Print one JSON object (`token_ids`, `logprobs`, `total`, `device`).
    #[arg(long)]
    pub json: bool,
}

/// Runs `score`.
pub fn run(args: Args) -> Result<(), String> {
    if let Some(input) = &args.input {
        return run_file(&args, input);
    }
    let text = args.text.as_deref().unwrap_or_default();
    let engine = args.engine.load(args.json)?;
    let mut scores = engine.score(&[text]).map_err(|e| e.to_string())?;
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

/// Lines scored per engine call (bounds the logits held at once, and paces progress).
const LINES_PER_CALL: usize = 64;

/// `score --input`: every line of the file, written as JSON lines in input order.
fn run_file(args: &Args, input: &Path) -> Result<(), String> {
    if let Some(out) = &args.out {
        ensure_not_input(out, &[input]).map_err(|e| e.to_string())?;
    }
    let lines = read_score_lines(input)?;
    let engine = args.engine.load(args.out.is_none())?;
    let results = score_lines(&engine, &lines, args.out.is_some())?;
    let text: String = results.iter().map(|r| format!("{r}\n")).collect();
    match &args.out {
        Some(out) => {
            write_atomically(out, |tmp| {
                std::fs::write(tmp, text.as_bytes()).map_err(|e| c2s_core::Error::Write {
                    path: out.to_path_buf(),
                    detail: e.to_string(),
                })
            })
            .map_err(|e| e.to_string())?;
            eprintln!("{} lines scored into {}", results.len(), out.display());
            Ok(())
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| e.to_string())
        }
    }
}

/// One JSON result per line. Texts are scored in length-sorted chunks (little padding); a line
/// longer than the model's context is refused with its line number.
fn score_lines(engine: &Engine, lines: &[ScoreLine], report: bool) -> Result<Vec<Value>, String> {
    let tok = engine.tokenizer();
    let context = engine.info().context;
    let fits = |l: &ScoreLine, n: usize| {
        if n > context {
            Err(format!(
                "line {}: {n} tokens exceed the model's context of {context}; shorten it",
                l.line
            ))
        } else {
            Ok(())
        }
    };
    let mut results = vec![Value::Null; lines.len()];
    let mut texts: Vec<(usize, Vec<u32>)> = Vec::new();
    let mut prompts: Vec<(usize, Vec<u32>, Vec<Vec<u32>>)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match &l.item {
            ScoreItem::Text(t) => {
                let ids = tok.encode(t).map_err(|e| e.to_string())?;
                fits(l, ids.len())?;
                texts.push((i, ids));
            }
            ScoreItem::Continuations {
                prompt,
                continuations,
            } => {
                let ids = tok.encode(prompt).map_err(|e| e.to_string())?;
                let conts = continuations
                    .iter()
                    .map(|c| tok.encode_plain(c))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let longest = conts.iter().map(Vec::len).max().unwrap_or(0);
                fits(l, ids.len() + longest)?;
                prompts.push((i, ids, conts));
            }
        }
    }
    texts.sort_by_key(|(_, ids)| ids.len());
    let mut done = 0;
    for chunk in texts.chunks(LINES_PER_CALL) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
        let scores = engine.score_ids(&rows).map_err(|e| e.to_string())?;
        for ((i, _), s) in chunk.iter().zip(scores) {
            results[*i] = json!({
                "id": lines[*i].id,
                "tokens": s.logprobs.len(),
                "total": s.total(),
                "logprobs": s.logprobs,
            });
        }
        done += chunk.len();
        if report {
            eprintln!("scored {done}/{} lines", lines.len());
        }
    }
    for chunk in prompts.chunks(LINES_PER_CALL) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|(_, p, _)| p.clone()).collect();
        let conts: Vec<Vec<Vec<u32>>> = chunk.iter().map(|(_, _, c)| c.clone()).collect();
        let totals = engine
            .score_continuations(&ids, &conts)
            .map_err(|e| e.to_string())?;
        for ((i, _, c), t) in chunk.iter().zip(totals) {
            results[*i] = json!({
                "id": lines[*i].id,
                "tokens": c.iter().map(Vec::len).collect::<Vec<_>>(),
                "totals": t,
            });
        }
        done += chunk.len();
        if report {
            eprintln!("scored {done}/{} lines", lines.len());
        }
    }
    Ok(results)
}

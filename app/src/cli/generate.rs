//! `c2s-studio generate`: continue a prompt, or every request of a JSON Lines file, with a local
//! C2S model.

use super::engine_args::EngineArgs;
use c2s_core::engine::generate::DEFAULT_MAX_BATCH_ROWS;
use c2s_core::engine::{
    Engine, GenerateOptions, GenerateRequest, Generation, SamplingParams, TokenEvent,
};
use c2s_core::io::atomic::{ensure_not_input, write_atomically};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Prompt text (tokenized with the model's tokenizer.json, special tokens included).
    #[arg(long, required_unless_present = "prompts", conflicts_with = "prompts")]
    pub prompt: Option<String>,
    /// A JSON Lines file of requests, one object per line: `{"id": ..., "prompt": "..."}`
    /// with optional `samples` (continuations, >= 1; they share one prefill of the prompt),
    /// `seed` (this request's own seed) and `max_new_tokens` (this request's own bound). Writes one JSON line per finished row (`id`,
    /// `sample` when samples > 1, `text`, `token_ids`, `stop_reason`) to stdout as rows finish,
    /// or to `--out` in request order.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Write the `--prompts` results to this new JSON Lines file (atomically) instead of stdout.
    #[arg(long, requires = "prompts")]
    pub out: Option<PathBuf>,
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
    /// Random seed for sampling (each request draws from its own stream derived from it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop when the text contains this string (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Print one JSON object (`text`, `token_ids`, `device`, ...) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Most rows (prompts × samples) decoded together in one batch.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH_ROWS)]
    pub max_batch_rows: usize,
    /// Key/value cache budget of one batch, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub kv_budget_mib: u64,
}

/// Runs `generate`.
pub fn run(args: Args) -> Result<(), String> {
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_strings: args.stop.clone(),
        max_batch_rows: args.max_batch_rows,
        kv_budget_bytes: args.kv_budget_mib.saturating_mul(1 << 20),
        ..Default::default()
    };
    options.validate()?;
    if let Some(path) = &args.prompts {
        if let Some(out) = &args.out {
            ensure_not_input(out, &[path]).map_err(|e| e.to_string())?;
        }
        let requests = read_requests(path)?;
        let engine = args.engine.load(true)?;
        return run_file(&engine, path, &requests, &options, args.out.as_deref());
    }
    let prompt = args.prompt.as_deref().ok_or("give --prompt or --prompts")?;
    let engine = args.engine.load(args.json)?;
    let stream = !args.json;
    let mut stdout = std::io::stdout();
    let mut on_token = |event: TokenEvent<'_>| {
        if stream && !event.text_delta.is_empty() {
            let _ = stdout.write_all(event.text_delta.as_bytes());
            let _ = stdout.flush();
        }
    };
    let (mut rows, stats) = engine
        .generate(&[prompt], &options, &mut on_token, None)
        .map_err(|e| e.to_string())?;
    let row = rows.pop().ok_or("the engine returned no generation")?;
    if args.json {
        let out = json!({
            "text": row.text,
            "token_ids": row.token_ids,
            "prompt_tokens": row.prompt_tokens,
            "stop_reason": row.stop_reason.as_str(),
            "device": engine.info().device.kind.to_string(),
            "dtype": format!("{:?}", engine.info().dtype).to_lowercase(),
            "decode_tokens_per_s": if stats.decode_secs > 0.0 {
                stats.decode_rows as f64 / stats.decode_secs
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

/// One line of a `--prompts` file.
#[derive(Debug, Clone, PartialEq)]
struct RequestLine {
    /// 1-based line number.
    line: usize,
    id: Value,
    prompt: String,
    samples: usize,
    seed: Option<u64>,
    max_new_tokens: Option<usize>,
}

/// Reads and checks a `--prompts` file (blank lines are skipped).
fn read_requests(path: &Path) -> Result<Vec<RequestLine>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out: Vec<RequestLine> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let request = parse_line(raw, i + 1)
            .map_err(|problem| format!("{} line {}: {problem}", path.display(), i + 1))?;
        if let Some(first) = out.iter().find(|r| r.id == request.id) {
            return Err(format!(
                "{} line {}: id {} was already used on line {}; give every request its own id",
                path.display(),
                request.line,
                request.id,
                first.line
            ));
        }
        out.push(request);
    }
    if out.is_empty() {
        return Err(format!(
            "{} has no requests; write one {{\"id\": ..., \"prompt\": \"...\"}} object per line",
            path.display()
        ));
    }
    Ok(out)
}

/// Parses one non-blank line; the error names the problem (the caller adds the line).
fn parse_line(raw: &str, line: usize) -> Result<RequestLine, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("not valid JSON ({e})"))?;
    let Value::Object(fields) = value else {
        return Err("expected a JSON object like {\"id\": 1, \"prompt\": \"...\"}".into());
    };
    if let Some(key) = fields
        .keys()
        .find(|k| !["id", "prompt", "samples", "seed", "max_new_tokens"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown key \"{key}\"; a request has id, prompt, samples, seed and max_new_tokens"
        ));
    }
    let id = match fields.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        Some(other) => return Err(format!("\"id\" must be a string or a number, got {other}")),
        None => return Err("missing \"id\" (a string or a number naming the request)".into()),
    };
    let prompt = match fields.get("prompt") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        Some(Value::String(_)) => return Err("\"prompt\" is empty; give some text".into()),
        Some(other) => return Err(format!("\"prompt\" must be a string, got {other}")),
        None => return Err("missing \"prompt\" (the text to continue)".into()),
    };
    Ok(RequestLine {
        line,
        id,
        prompt,
        samples: match optional_u64(&fields, "samples")? {
            None => 1,
            Some(0) => return Err("\"samples\" must be 1 or more, got 0".into()),
            Some(n) => usize::try_from(n).map_err(|_| format!("\"samples\" {n} is too large"))?,
        },
        seed: optional_u64(&fields, "seed")?,
        max_new_tokens: optional_u64(&fields, "max_new_tokens")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    })
}

/// A non-negative integer field, if present.
fn optional_u64(fields: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("\"{key}\" must be a non-negative integer, got {v}")),
    }
}

/// Runs every request of a `--prompts` file and writes the rows.
fn run_file(
    engine: &Engine,
    path: &Path,
    lines: &[RequestLine],
    options: &GenerateOptions,
    out: Option<&Path>,
) -> Result<(), String> {
    let context = engine.info().context;
    let mut ids = Vec::with_capacity(lines.len());
    for l in lines {
        let tokens = engine
            .tokenizer()
            .encode(&l.prompt)
            .map_err(|e| format!("{} line {}: {e}", path.display(), l.line))?;
        let problem = if tokens.is_empty() {
            Some("the prompt is empty after tokenization; give some text".to_string())
        } else if tokens.len() > context {
            Some(format!(
                "the prompt has {} tokens but the model's context is {context}; shorten it",
                tokens.len()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(format!("{} line {}: {problem}", path.display(), l.line));
        }
        ids.push(tokens);
    }
    let requests: Vec<GenerateRequest<'_>> = lines
        .iter()
        .zip(&ids)
        .map(|(l, p)| GenerateRequest {
            prompt: p,
            samples: l.samples,
            seed: l.seed,
            max_new_tokens: l.max_new_tokens,
            cancel: None,
        })
        .collect();
    // Row `k` of the results is sample `owner[k].1` of request `owner[k].0`.
    let owner: Vec<(usize, usize)> = lines
        .iter()
        .enumerate()
        .flat_map(|(r, l)| (0..l.samples).map(move |s| (r, s)))
        .collect();
    let record = |row: usize, g: &Generation| -> String {
        let (r, sample) = owner[row];
        let mut v = json!({ "id": lines[r].id });
        if lines[r].samples > 1 {
            v["sample"] = json!(sample);
        }
        v["text"] = json!(g.text);
        v["token_ids"] = json!(g.token_ids);
        v["stop_reason"] = json!(g.stop_reason.as_str());
        v.to_string()
    };
    // Locked per line: the callback runs on a thread of the engine's pool.
    let mut stdout = std::io::stdout();
    let mut write_error = None;
    let mut on_done = |row: usize, g: &Generation| {
        if out.is_none()
            && write_error.is_none()
            && let Err(e) = writeln!(stdout, "{}", record(row, g)).and_then(|()| stdout.flush())
        {
            write_error = Some(format!("cannot write to stdout: {e}"));
        }
    };
    let (rows, stats) = engine
        .generate_requests(&requests, options, &mut |_| {}, &mut on_done, None)
        .map_err(|e| e.to_string())?;
    if let Some(e) = write_error {
        return Err(e);
    }
    if let Some(out) = out {
        let mut text = String::new();
        for (row, g) in rows.iter().enumerate() {
            text.push_str(&record(row, g));
            text.push('\n');
        }
        write_atomically(out, |tmp| {
            std::fs::write(tmp, text.as_bytes()).map_err(|e| c2s_core::Error::Write {
                path: out.to_path_buf(),
                detail: e.to_string(),
            })
        })
        .map_err(|e| e.to_string())?;
    }
    eprintln!(
        "{} rows of {} requests in {} batches, {} refills ({:.1} tokens/s decoding){}",
        rows.len(),
        lines.len(),
        stats.batches,
        stats.refills,
        stats.decode_rows as f64 / stats.decode_secs.max(1e-9),
        out.map(|p| format!(" -> {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

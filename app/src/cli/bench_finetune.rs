//! `c2s-studio bench-finetune`: LoRA training throughput and peak memory of our trainer next to
//! peft + transformers on the same machine, threads and random Pythia-160M-sized checkpoint, in
//! one run. The Python side lives in `tools/lora/bench_peft.py` (run with the pinned venv).
//!
//! Both sides train the same rows: `--seq − 1` token ids spread over the vocabulary plus EOS,
//! `--batch` rows per step, loss on every token, LoRA on peft's default targets, AdamW with
//! clipping at 1.0. One warm-up step, then `--steps` timed steps.

use super::bench_engine::{peak_rss_mib, reference_json};
use c2s_core::Progress;
use c2s_core::engine::DeviceRequest;
use c2s_core::train::backend::train_on;
use c2s_core::train::data::{Example, LossMode};
use c2s_core::train::model::BaseModel;
use c2s_core::train::trainer::{Length, TrainSettings};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Arguments of `bench-finetune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rows per optimizer step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per row.
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Timed optimizer steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// LoRA rank (alpha equal to it).
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// Backend for our trainer: auto, cuda, wgpu or cpu.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The random checkpoint (written by tools/models/bench_transformers.py if absent).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Python with torch, transformers and peft (default: tools/lora/.venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the peft side.
    #[arg(long)]
    pub no_reference: bool,
    /// Our side's frozen base weights: f32 (as peft's) or q8 (8-bit, approximate).
    #[arg(long, default_value = "f32", value_parser = ["f32", "q8"])]
    pub frozen_weights: String,
}

/// Runs the benchmark and prints both sides and their ratios.
pub fn run(args: Args) -> Result<(), String> {
    if args.batch == 0 || args.seq < 2 || args.steps == 0 {
        return Err("--batch and --steps must be at least 1 and --seq at least 2".into());
    }
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools");
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| tools.join("lora/.venv/bin/python"));
    let model_dir = args
        .model_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("c2s-bench-pythia-160m-random"));
    if !model_dir.join("model.safetensors").exists() {
        make_checkpoint(
            &python,
            &tools.join("models/bench_transformers.py"),
            &model_dir,
        )?;
    }
    let scratch =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    let words_model = word_tokenized_copy(&model_dir, scratch.path())?;
    let base = BaseModel::open(&words_model).map_err(|e| e.to_string())?;
    let eos = base
        .config
        .special_ids()
        .eos
        .first()
        .copied()
        .ok_or("the benchmark checkpoint names no eos_token_id")?;
    if eos != 0 {
        return Err(format!(
            "the benchmark expects EOS id 0 (Pythia's); {} has {eos}",
            model_dir.display()
        ));
    }
    let examples: Vec<Example> = (0..args.batch * (args.steps + 1))
        .map(|r| bench_example(r, args.seq))
        .collect();
    let mut settings = TrainSettings::new(&base.config);
    settings.lora.rank = args.lora_r;
    settings.frozen_format = super::finetune::frozen_format(&args.frozen_weights);
    settings.lora.alpha = args.lora_r as f64;
    settings.length = Length::Steps(args.steps + 1);
    settings.batch = args.batch;
    settings.val_fraction = 0.0;
    settings.shuffle = false;
    settings.loss = LossMode::WholeText;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let device = args.device.parse::<DeviceRequest>()?;
    let mut times = Vec::new();
    let mut tokens = Vec::new();
    let out = scratch.path().join("run");
    let (_, selection) = train_on(
        device,
        &words_model,
        &examples,
        &out,
        &settings,
        &Progress::new(),
        &mut |r| {
            times.push(Instant::now());
            tokens.push(r.tokens);
        },
    )
    .map_err(|e| e.to_string())?;
    if tokens[1..].iter().any(|&t| t != args.batch * args.seq) {
        return Err(format!(
            "a step trained {tokens:?} tokens, not {} x {}",
            args.batch, args.seq
        ));
    }
    let secs = (times[args.steps] - times[0]).as_secs_f64();
    let ours = (args.steps * args.batch * args.seq) as f64 / secs;
    let peak = peak_rss_mib();
    println!(
        "LoRA r={} on {} ({}, {} frozen weights), batch {} x {} tokens, {} timed steps, \
         {threads} CPU threads",
        args.lora_r,
        model_dir.display(),
        selection.description,
        args.frozen_weights,
        args.batch,
        args.seq,
        args.steps
    );
    println!("ours:  {ours:>9.1} training tokens/s, peak RSS {peak:>7.0} MiB");
    if args.no_reference {
        return Ok(());
    }
    let r = peft_run(
        &python,
        &tools.join("lora/bench_peft.py"),
        &model_dir,
        &args,
        threads,
    )?;
    let theirs = r["tokens_per_s"].as_f64().unwrap_or(f64::NAN);
    let their_peak = r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN);
    println!(
        "peft:  {theirs:>9.1} training tokens/s, peak RSS {their_peak:>7.0} MiB (torch {}, \
         transformers {}, peft {})",
        r["torch"].as_str().unwrap_or("?"),
        r["transformers"].as_str().unwrap_or("?"),
        r["peft"].as_str().unwrap_or("?")
    );
    println!(
        "ratio: {:.2}x the tokens/s at {:.2}x the memory",
        ours / theirs,
        peak / their_peak
    );
    Ok(())
}

/// Example `r`: the words `t<id>` of the benchmark row (`seq − 1` ids) as the prompt's last
/// word and the rest; whole-text loss appends EOS, so it is `seq` tokens.
fn bench_example(r: usize, seq: usize) -> Example {
    let words: Vec<String> = (0..seq - 1)
        .map(|i| format!("t{}", 1 + (r * 7919 + i * 104_729) % 49_999))
        .collect();
    let (last, rest) = words
        .split_last()
        .map_or(("", &[][..]), |(l, r)| (l.as_str(), r));
    Example {
        model_input: rest.join(" "),
        response: last.to_string(),
    }
}

/// A folder in `scratch` with `model_dir`'s config and weights (linked, else copied) and its
/// word-level tokenizer given a whitespace pre-tokenizer, so that `t5 t17` is two tokens, as the
/// Python side's ids are.
fn word_tokenized_copy(model_dir: &Path, scratch: &Path) -> Result<PathBuf, String> {
    let dir = scratch.join("model");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for name in ["config.json", "model.safetensors"] {
        let (from, to) = (model_dir.join(name), dir.join(name));
        std::fs::hard_link(&from, &to)
            .or_else(|_| std::fs::copy(&from, &to).map(|_| ()))
            .map_err(|e| format!("{}: {e}", to.display()))?;
    }
    let path = model_dir.join("tokenizer.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tokenizer: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if tokenizer["model"]["type"] != "WordLevel" {
        return Err(format!(
            "{} is not the benchmark's word-level tokenizer; remove the folder to have it written \
             again",
            path.display()
        ));
    }
    tokenizer["pre_tokenizer"] = serde_json::json!({"type": "WhitespaceSplit"});
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn make_checkpoint(python: &Path, script: &Path, model_dir: &Path) -> Result<(), String> {
    if !python.exists() {
        return Err(format!(
            "{} not found; create the venv with tools/lora/run.sh, or pass --python",
            python.display()
        ));
    }
    eprintln!(
        "writing a random Pythia-160M-sized checkpoint to {}",
        model_dir.display()
    );
    let status = Command::new(python)
        .arg(script)
        .args(["make", "--out"])
        .arg(model_dir)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !status.success() {
        return Err("writing the benchmark checkpoint failed".into());
    }
    Ok(())
}

fn peft_run(
    python: &Path,
    script: &Path,
    model_dir: &Path,
    args: &Args,
    threads: usize,
) -> Result<serde_json::Value, String> {
    let mut command = Command::new(python);
    command.arg(script).arg("--model").arg(model_dir).args([
        "--batch",
        &args.batch.to_string(),
        "--seq",
        &args.seq.to_string(),
        "--steps",
        &args.steps.to_string(),
        "--rank",
        &args.lora_r.to_string(),
        "--threads",
        &threads.to_string(),
    ]);
    reference_json(&mut command, python, "peft")
}

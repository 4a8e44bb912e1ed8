//! `c2s-studio summarize` and `c2s-studio ask`: a multi-cell prompt from cells drawn (with a
//! seed) from the chosen cells, and the model's answer streamed to stdout. The cells used and
//! the exact prompt go to stderr, so the answer can be traced.

use super::data_args::DataArgs;
use super::engine_args::EngineArgs;
use super::task_args::{PromptArgs, TaskCells};
use c2s_core::engine::{GenerateOptions, SamplingParams, TokenEvent};
use c2s_core::tasks::Task;
use c2s_core::tasks::prompt::PromptBuilder;
use c2s_core::tasks::sample::sample_rows;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// Arguments shared by `summarize` and `ask`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// Input `.h5ad` file.
    pub input: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Cells in the prompt, drawn from the chosen cells with --sample-seed.
    #[arg(long, default_value_t = 5)]
    pub n_cells: usize,
    /// Seed of the draw of cells.
    #[arg(long, default_value_t = 0)]
    pub sample_seed: u64,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the token sampling (with --temperature above 0).
    #[arg(long)]
    pub sampling_seed: Option<u64>,
    /// Prompt flags.
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Matrix, gene names, preprocessing and tie-break.
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `ask`.
#[derive(Debug, clap::Args)]
pub struct AskArgs {
    /// The question.
    #[arg(long)]
    pub question: String,
    #[command(flatten)]
    pub describe: DescribeArgs,
}

/// Runs `summarize`.
pub fn summarize(args: DescribeArgs) -> Result<(), String> {
    run(&args, Task::NaturalLanguageInterpretation, &BTreeMap::new())
}

/// Runs `ask`.
pub fn ask(args: AskArgs) -> Result<(), String> {
    if args.question.trim().is_empty() {
        return Err("--question is empty; ask something about the cells".into());
    }
    let fields = BTreeMap::from([("question", args.question.trim())]);
    run(&args.describe, Task::Question, &fields)
}

fn run(args: &DescribeArgs, task: Task, fields: &BTreeMap<&str, &str>) -> Result<(), String> {
    if args.n_cells == 0 {
        return Err("--n-cells must be at least 1".into());
    }
    let settings = args.prompt.settings(task, args.data.seed)?;
    let cells = TaskCells::load(&args.input, &args.data, &args.prompt, &[], false)?;
    let rows = sample_rows(&cells.rows, args.n_cells, args.sample_seed);
    let ids = &cells.prepared.dataset.obs_names;
    let names: Vec<&str> = rows.iter().map(|&r| ids[r].as_str()).collect();
    let sentences: Vec<&str> = rows.iter().map(|&r| cells.sentences[r].as_str()).collect();
    let mut builder = PromptBuilder::new(settings).map_err(|e| e.to_string())?;
    let prompt = builder
        .multi(&names.join(";"), &sentences, fields)
        .map_err(|e| e.to_string())?
        .model_input;
    eprintln!(
        "cells ({} of {}, seed {}): {}",
        rows.len(),
        cells.rows.len(),
        args.sample_seed,
        names.join(", ")
    );
    eprintln!("prompt:\n{prompt}\n---");
    let engine = args.engine.load(false)?;
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.sampling_seed,
            ..Default::default()
        },
        ..Default::default()
    };
    options.sampling.validate()?;
    let mut stdout = std::io::stdout();
    let mut on_token = |event: TokenEvent<'_>| {
        if !event.text_delta.is_empty() {
            let _ = stdout.write_all(event.text_delta.as_bytes());
            let _ = stdout.flush();
        }
    };
    let (out, _) = engine
        .generate(&[prompt.as_str()], &options, &mut on_token, None)
        .map_err(|e| e.to_string())?;
    println!();
    if let Some(g) = out.first() {
        eprintln!(
            "{} tokens, stopped: {}",
            g.token_ids.len(),
            g.stop_reason.as_str()
        );
    }
    Ok(())
}

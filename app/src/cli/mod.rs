//! The headless command line: one module per subcommand, each with its own `Args` and `run`.

mod annotate;
mod bench_annotate;
pub mod bench_convert;
mod bench_engine;
mod bench_finetune;
mod bench_gui;
mod bench_kernels;
mod bench_sharing;
mod bench_ssgsea;
mod bench_umap;
mod convert;
mod data_args;
mod describe;
mod download;
mod embed;
mod embed_cells;
mod engine_args;
mod finetune;
mod generate;
mod generate_cells;
mod generated;
mod inspect;
mod interrupt;
mod merge;
mod models;
mod perturb;
mod prompt;
mod score;
mod score_input;
mod score_sets;
mod screen;
mod screen_flags;
mod task_args;

use c2s_core::dataset::MatrixChoice;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line arguments of `c2s-studio`.
#[derive(Debug, Parser)]
#[command(
    name = "c2s-studio",
    version,
    about = "Cell2Sentence workbench: GUI and headless CLI"
)]
pub struct Cli {
    /// Subcommand to run headless; without one the desktop app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `.h5ad` files to open in the desktop app.
    pub paths: Vec<PathBuf>,
}

/// Headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert an .h5ad file to cell sentences (Parquet or CSV).
    Convert(convert::Args),
    /// Build a C2S task's prompts for the cells of an .h5ad file (Parquet or CSV).
    Prompt(prompt::Args),
    /// Predict cell types with a C2S model (free generation or ranking candidate labels).
    Annotate(annotate::Args),
    /// Embed the cells of an .h5ad file with a C2S model into obsm X_c2s of a copy.
    EmbedCells(embed_cells::Args),
    /// Summarise chosen cells in prose with a C2S model (streamed to stdout).
    Summarize(describe::DescribeArgs),
    /// Ask a C2S model a question about chosen cells (streamed to stdout).
    Ask(describe::AskArgs),
    /// Generate cells of given types with a C2S model into a new .h5ad.
    GenerateCells(generate_cells::Args),
    /// Predict how control cells respond to perturbations with a C2S model.
    Perturb(perturb::Args),
    /// Print a summary of an .h5ad file.
    Inspect(inspect::Args),
    /// Benchmark conversion against the cell2sentence Python package on a generated file.
    BenchConvert(bench_convert::Args),
    /// Generate text with a local C2S model (GPT-NeoX, Gemma-2, Gemma-3).
    Generate(generate::Args),
    /// Per-token log-probabilities of a text under a local model.
    Score(score::Args),
    /// Mean final hidden state of a text (cell embedding).
    Embed(embed::Args),
    /// Score cells by gene sets of a GMT file (ssGSEA as gseapy, or scanpy's score_genes).
    ScoreSets(score_sets::Args),
    /// Fine-tune a model with LoRA (or fully, --full) on examples or labelled cells; writes a
    /// peft adapter (or a full checkpoint).
    Finetune(finetune::Args),
    /// Merge a peft LoRA adapter into its base model as a full Hugging Face checkpoint.
    Merge(merge::Args),
    /// List local models (a directory or the Hugging Face cache).
    Models(models::Args),
    /// Download a model from the Hugging Face hub into its cache (resumable, checksummed).
    Download(download::Args),
    /// Prefill/decode throughput of the engine vs. transformers on a Pythia-160M-sized model.
    BenchEngine(bench_engine::Args),
    /// LoRA training tokens/s and peak memory vs. peft + transformers (Pythia-160M-shaped model).
    BenchFinetune(bench_finetune::Args),
    /// The CPU engine's matrix products (f32, q8) vs. torch's F.linear on a Pythia-160M's shapes.
    BenchKernels(bench_kernels::Args),
    /// Cell-type annotation throughput vs. the cell2sentence package (Pythia-160M-shaped model).
    BenchAnnotate(bench_annotate::Args),
    /// kNN + UMAP time and quality vs. umap-learn on a generated clustered dataset.
    BenchUmap(bench_umap::Args),
    /// Frame times of the desktop app's embedding view on generated datasets (opens a window).
    BenchGui(bench_gui::Args),
    /// ssGSEA time vs. gseapy 1.3.1 on generated samples and gene sets.
    BenchSsgsea(bench_ssgsea::Args),
    /// Virtual perturbation screens: run a spec (resumable, shardable), merge shards, report.
    Screen(screen::Args),
}

/// Runs one subcommand; errors are printed as one `error:` line on stderr.
pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Convert(args) => convert::run(args),
        Command::Prompt(args) => prompt::run(args),
        Command::Annotate(args) => annotate::run(args),
        Command::EmbedCells(args) => embed_cells::run(args),
        Command::Summarize(args) => describe::summarize(args),
        Command::Ask(args) => describe::ask(args),
        Command::GenerateCells(args) => generate_cells::run(args),
        Command::Perturb(args) => perturb::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::BenchConvert(args) => bench_convert::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Score(args) => score::run(args),
        Command::Embed(args) => embed::run(args),
        Command::ScoreSets(args) => score_sets::run(args),
        Command::Finetune(args) => finetune::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Models(args) => models::run(args),
        Command::Download(args) => download::run(args),
        Command::BenchEngine(args) => bench_engine::run(args),
        Command::BenchFinetune(args) => bench_finetune::run(args),
        Command::BenchKernels(args) => bench_kernels::run(args),
        Command::BenchAnnotate(args) => bench_annotate::run(args),
        Command::BenchUmap(args) => bench_umap::run(args),
        Command::BenchGui(args) => bench_gui::run(args),
        Command::BenchSsgsea(args) => bench_ssgsea::run(args),
        Command::Screen(args) => screen::run(args),
    };
    if std::env::var_os(bench_convert::PEAK_RSS_ENV).is_some()
        && let Some(peak) = bench_convert::peak_rss_bytes()
    {
        eprintln!("peak-rss-bytes: {peak}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `x`, `raw` or `layer:NAME`.
pub fn parse_matrix(s: &str) -> Result<MatrixChoice, String> {
    match s {
        "x" | "X" => Ok(MatrixChoice::X),
        "raw" => Ok(MatrixChoice::Raw),
        _ => match s.strip_prefix("layer:") {
            Some(name) if !name.is_empty() => Ok(MatrixChoice::Layer(name.to_string())),
            _ => Err(format!("'{s}' is not a matrix; use x, raw or layer:NAME")),
        },
    }
}

/// The JSON object that a Python reference script printed as its last JSON line, or an error
/// with its stderr when it failed.
fn reference_json(run: std::process::Output) -> Result<serde_json::Value, String> {
    if !run.status.success() {
        return Err(format!(
            "reference run failed: {}",
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&run.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("reference printed no JSON: {text}"))
}

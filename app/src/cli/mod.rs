//! The headless command line: one module per subcommand, each with its own `Args` and `run`.

mod bench_engine;
mod embed;
mod engine_args;
mod generate;
mod models;
mod score;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line arguments of `c2s-studio`.
#[derive(Debug, Parser)]
#[command(name = "c2s-studio", version, about = "Cell2Sentence workbench: GUI and headless CLI")]
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
    /// Generate text with a local C2S model (GPT-NeoX, Gemma-2, Gemma-3).
    Generate(generate::Args),
    /// Per-token log-probabilities of a text under a local model.
    Score(score::Args),
    /// Mean final hidden state of a text (cell embedding).
    Embed(embed::Args),
    /// List local models (a directory or the Hugging Face cache).
    Models(models::Args),
    /// Prefill/decode throughput of the engine vs. transformers on a Pythia-160M-sized model.
    BenchEngine(bench_engine::Args),
}

/// Runs one subcommand; errors are printed as one `error:` line on stderr.
pub fn run(command: Command) -> ExitCode {
    let result: Result<(), String> = match command {
        Command::Generate(args) => generate::run(args),
        Command::Score(args) => score::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Models(args) => models::run(args),
        Command::BenchEngine(args) => bench_engine::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

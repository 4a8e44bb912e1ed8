//! The headless command line: one module per subcommand, each with its own `Args` and `run`.

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
pub enum Command {}

/// Runs one subcommand; errors are printed as one `error:` line on stderr.
pub fn run(command: Command) -> ExitCode {
    let result: Result<(), String> = match command {};
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

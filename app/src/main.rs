//! C2S Studio: a desktop workbench for Cell2Sentence models, and a headless CLI over the same core.
//!
//! Run without a subcommand to open the window (optionally with `.h5ad` paths to open);
//! run with a subcommand (`convert`, `inspect`, ...) for scriptable, headless use.

mod cli;
mod gui;

use clap::Parser;

/// mimalloc keeps freed memory for reuse: the chunked reader and sentence builder allocate and
/// free large buffers repeatedly, which with the system allocator costs a page fault and a
/// zeroed page per 4 KiB every time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match args.command {
        Some(command) => cli::run(command),
        None => gui::run(args.paths),
    }
}

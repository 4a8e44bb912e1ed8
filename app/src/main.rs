//! C2S Studio: a desktop workbench for Cell2Sentence models, and a headless CLI over the same core.
//!
//! Run without a subcommand to open the window (optionally with `.h5ad` paths to open);
//! run with a subcommand (`convert`, `inspect`, ...) for scriptable, headless use.

mod cli;
mod format;
mod gui;
mod memory;

use clap::Parser;

/// mimalloc keeps freed memory for reuse: the chunked reader and sentence builder allocate and
/// free large buffers repeatedly, which with the system allocator costs a page fault and a
/// zeroed page per 4 KiB every time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let converts = matches!(
        args.command,
        Some(cli::Command::Convert(_) | cli::Command::BenchConvert(_))
    );
    if converts {
        disable_transparent_huge_pages();
    }
    match args.command {
        Some(command) => {
            // A command's model work (and most others) frees buffers and allocates the same
            // sizes again; the converter streams and keeps the default (see above).
            let _memory = (!converts).then(memory::KeepFreedMemory::start);
            cli::run(command)
        }
        None => gui::run(args.paths),
    }
}

/// Turns transparent huge pages off for this process, for the converter only. mimalloc asks for
/// them on its arenas, and each first touch of a huge page zeroes 2 MiB; the converter streams
/// hundreds of MiB of short-lived buffers that are purged and faulted in again, so with huge
/// pages `convert` of 100,000 cells spent 2.3 s of system time zeroing pages (0.6 s without;
/// 4.5 s -> 3.3 s wall). Model inference wants them: its weights are read whole for every token,
/// and huge pages spare it TLB misses (the engine issue's report: decode of a Pythia-160M-shaped
/// model went from 9.5 to 12.2 tok/s with them), so every other command and the app keep them.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process; the call reads no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

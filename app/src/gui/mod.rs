//! The desktop front-end (eframe, wgpu renderer).

use std::path::PathBuf;
use std::process::ExitCode;

/// Opens the desktop window, loading `paths` (or offering the demo dataset when empty).
pub fn run(paths: Vec<PathBuf>) -> ExitCode {
    let _ = paths;
    ExitCode::SUCCESS
}

//! The desktop front-end (eframe, wgpu renderer).
//!
//! Follow a dataset from the drop to the pixels: [`panels::drop_overlay`] or File → Open gives a
//! path, [`loader`] reads it in a [`jobs`] worker, [`view::DatasetView`] holds it with its
//! colouring ([`coloring`], [`colormap`]) and selection ([`selection`]), and
//! [`panels::explorer`] draws it with the GPU scatter in [`render::scatter`], as one tab of the
//! [`workbench`]. Tool panels (Table, Summary, Model, Jobs) are tabs too, registered in
//! [`panels::registry`]; models live in [`models`].

pub mod actions;
pub mod app;
pub mod bench;
pub mod coloring;
pub mod colormap;
pub mod demo;
pub mod embedding;
pub mod export;
pub mod finetune;
pub mod generated;
pub mod jobs;
pub mod loader;
pub mod models;
pub mod panels;
pub mod render;
pub mod screen;
pub mod selection;
pub mod state;
pub mod table_model;
pub mod table_worker;
pub mod view;
pub mod workbench;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::ExitCode;

/// Identifier of the app for eframe's persistence (storage directory name).
pub const APP_ID: &str = "c2s-studio";

/// Window options shared by the app and the benchmark.
fn native_options() -> eframe::NativeOptions {
    eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("C2S Studio")
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true),
        ..Default::default()
    }
}

/// Opens the desktop window, loading `paths` (or offering the demo dataset when empty).
pub fn run(paths: Vec<PathBuf>) -> ExitCode {
    let result = eframe::run_native(
        APP_ID,
        native_options(),
        Box::new(move |cc| Ok(Box::new(app::StudioApp::from_creation_context(cc, paths)))),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot open the window: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the frame-time benchmark of `plan` in a window (see [`bench`]), sending a report per
/// size to `reports`; returns when the window closes. The user's saved state is neither read
/// nor written.
pub fn run_bench(
    plan: bench::BenchPlan,
    reports: std::sync::mpsc::Sender<bench::BenchMessage>,
) -> Result<(), String> {
    let scratch =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    let mut options = native_options();
    options.persistence_path = Some(scratch.path().to_path_buf());
    options.persist_window = false;
    // The benchmark measures rendering, not the display's refresh rate.
    options.wgpu_options.surface.present_mode = eframe::wgpu::PresentMode::AutoNoVsync;
    eframe::run_native(
        APP_ID,
        options,
        Box::new(move |cc| Ok(Box::new(app::StudioApp::for_benchmark(cc, plan, reports)))),
    )
    .map_err(|e| format!("cannot open the window: {e}"))
}

//! `c2s-studio embed-cells`: embed the cells of an `.h5ad` with a C2S model (masked mean of the
//! final hidden states over each cell's prompt, or with `--pooling compat` the `cell2sentence`
//! package's pad-inclusive batch mean) into obsm `X_c2s` of a copy of the file.

use super::data_args::DataArgs;
use super::engine_args::EngineArgs;
use super::task_args::{PromptArgs, TaskCells};
use c2s_core::dataset::Embedding;
use c2s_core::io::atomic::ensure_not_input;
use c2s_core::io::h5ad::{Additions, write_annotated_h5ad};
use c2s_core::tasks::Task;
use c2s_core::tasks::embed::{EmbedPooling, embed_cells};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Name of the model embedding in `obsm`.
pub const OBSM_KEY: &str = "X_c2s";

/// Arguments of `embed-cells`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input `.h5ad` file.
    pub input: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Prompts per batch [default: 16; with `--pooling compat`, 8, the package's
    /// `inference_batch_size`, which its embeddings depend on].
    #[arg(long)]
    pub batch: Option<usize>,
    /// How a cell's final hidden states are averaged: `masked` (over the prompt's own tokens;
    /// the same alone or batched) or `compat` (the cell2sentence package's mean over every
    /// position of the left-padded batch, padding included, so it depends on the batch; with
    /// `--dtype f32` it reproduces the package's numbers).
    #[arg(long, default_value_t = EmbedPooling::Masked)]
    pub pooling: EmbedPooling,
    /// Prompt flags (the cell-type-prediction template is used).
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Matrix, gene names, preprocessing and tie-break.
    #[command(flatten)]
    pub data: DataArgs,
    /// Output `.h5ad` (a copy of the input with obsm `X_c2s`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `embed-cells`.
pub fn run(args: Args) -> Result<(), String> {
    ensure_not_input(&args.out, &[&args.input]).map_err(|e| e.to_string())?;
    if !args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"))
    {
        return Err(format!(
            "{} is not an .h5ad file name; embed-cells writes a copy of the input",
            args.out.display()
        ));
    }
    let settings = args
        .prompt
        .settings(Task::CellTypePrediction, args.data.seed)?;
    let cells = TaskCells::load(&args.input, &args.data, &args.prompt, &[], false)?;
    let prompts = cells.model_inputs(settings)?;
    let engine = args.engine.load(false)?;
    let started = Instant::now();
    let total = prompts.len();
    let out = embed_cells(
        &engine,
        &prompts,
        args.batch.unwrap_or(args.pooling.default_batch()),
        args.pooling,
        &AtomicBool::new(false),
        &mut |done| {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprintln!("embedded {done}/{total} cells ({rate:.1} cells/s)");
        },
    )
    .map_err(|e| e.to_string())?;
    // One row per cell of the input file: NaN for cells filtered out or left out.
    let report = &cells.prepared.report;
    let width = out.width;
    let mut data = vec![f32::NAN; report.input_cells * width];
    for (i, &row) in cells.rows.iter().enumerate().take(out.rows) {
        let cell = report.kept_cells[row];
        data[cell * width..(cell + 1) * width]
            .copy_from_slice(&out.data[i * width..(i + 1) * width]);
    }
    let additions = Additions {
        obsm: vec![Embedding {
            name: OBSM_KEY.into(),
            n_cols: width,
            data,
        }],
        ..Default::default()
    };
    write_annotated_h5ad(&args.input, &args.out, &additions).map_err(|e| e.to_string())?;
    eprintln!(
        "embedded {} cells ({width} dimensions, {} mean) in {:.1} s -> obsm {OBSM_KEY} of {}",
        out.rows,
        args.pooling,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

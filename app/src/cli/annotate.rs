//! `c2s-studio annotate`: predict the cell type of each chosen cell with a C2S model, by free
//! generation or by ranking candidate labels, into a table (`cell_id`, `label`, `score`, and
//! `ll:<label>` per candidate when ranking) or a copy of the `.h5ad` with obs
//! `c2s_cell_type` and `c2s_cell_type_score`.

use super::data_args::DataArgs;
use super::engine_args::EngineArgs;
use super::task_args::{PromptArgs, TaskCells};
use c2s_core::dataset::{ColumnData, ObsColumn};
use c2s_core::engine::SamplingParams;
use c2s_core::io::atomic::ensure_not_input;
use c2s_core::io::export::write_table;
use c2s_core::io::h5ad::{Additions, write_annotated_h5ad};
use c2s_core::tasks::Task;
use c2s_core::tasks::annotate::{
    AnnotateMode, AnnotateRequest, Annotations, annotate, check_labels,
};
use polars::prelude::{Column, DataFrame};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Arguments of `annotate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input `.h5ad` file.
    pub input: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Rank these candidate labels (comma-separated) instead of generating freely.
    #[arg(long, value_delimiter = ',', conflicts_with = "labels_from")]
    pub labels: Vec<String>,
    /// Rank the values of this obs column as candidate labels.
    #[arg(long)]
    pub labels_from: Option<String>,
    /// Compare the labels with this obs column and print the accuracy.
    #[arg(long)]
    pub compare: Option<String>,
    /// Prompts per batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Longest generated answer, in tokens (free generation).
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Prompt flags.
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Matrix, gene names, preprocessing and tie-break.
    #[command(flatten)]
    pub data: DataArgs,
    /// Output: a table (`.parquet`, `.csv`) or a copy of the input (`.h5ad`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `annotate`.
pub fn run(args: Args) -> Result<(), String> {
    ensure_not_input(&args.out, &[&args.input]).map_err(|e| e.to_string())?;
    let to_h5ad = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"));
    if !to_h5ad {
        c2s_core::io::export::TableFormat::from_path(&args.out).map_err(|e| e.to_string())?;
    }
    let settings = args
        .prompt
        .settings(Task::CellTypePrediction, args.data.seed)?;
    let mut columns: Vec<String> = args.labels_from.iter().cloned().collect();
    columns.extend(args.compare.iter().cloned());
    let cells = TaskCells::load(&args.input, &args.data, &args.prompt, &columns, false)?;
    let ds = &cells.prepared.dataset;
    let mode = if let Some(col) = &args.labels_from {
        let labels = ds
            .obs_column(col)
            .map(|c| c.data.distinct_values())
            .unwrap_or_default();
        AnnotateMode::Rank { labels }
    } else if !args.labels.is_empty() {
        AnnotateMode::Rank {
            labels: args.labels.iter().map(|l| l.trim().to_string()).collect(),
        }
    } else {
        AnnotateMode::Generate {
            max_new_tokens: args.max_new_tokens,
            sampling: SamplingParams::default(),
        }
    };
    if let AnnotateMode::Rank { labels } = &mode {
        check_labels(labels)?;
    }
    let response = settings.template.response[0].clone();
    let prompts = cells.model_inputs(settings)?;
    let engine = args.engine.load(false)?;
    let total = prompts.len();
    let started = Instant::now();
    let cancel = AtomicBool::new(false);
    let request = AnnotateRequest {
        prompts: &prompts,
        response: &response,
        key: "cell_type",
        mode: &mode,
        batch: args.batch,
        genes_per_prompt: args.prompt.top_k_genes,
    };
    let result = annotate(&engine, &request, &cancel, &mut |done, _| {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "annotated {done}/{total} cells ({:.1} cells/s)",
            done as f64 / secs
        );
    })
    .map_err(|e| e.to_string())?;
    if let Some(col) = &args.compare {
        let truth: Vec<String> = cells.rows.iter().map(|&r| cells.obs_text(col, r)).collect();
        let right = result
            .cells
            .iter()
            .zip(&truth)
            .filter(|(a, t)| a.label == **t)
            .count();
        eprintln!(
            "accuracy against {col}: {right}/{} = {:.4}",
            result.cells.len(),
            right as f64 / result.cells.len().max(1) as f64
        );
    }
    if to_h5ad {
        write_h5ad(&args.input, &args.out, &cells, &result)?;
    } else {
        write_rows(&args.out, &cells, &result, &mode)?;
    }
    eprintln!(
        "annotated {} cells in {:.1} s -> {}",
        result.cells.len(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

fn write_rows(
    path: &Path,
    cells: &TaskCells,
    result: &Annotations,
    mode: &AnnotateMode,
) -> Result<(), String> {
    let ids = &cells.prepared.dataset.obs_names;
    let n = result.cells.len();
    let mut columns = vec![
        Column::new(
            "cell_id".into(),
            cells.rows[..n]
                .iter()
                .map(|&r| ids[r].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "label".into(),
            result
                .cells
                .iter()
                .map(|a| a.label.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "score".into(),
            result.cells.iter().map(|a| a.score).collect::<Vec<_>>(),
        ),
    ];
    if let AnnotateMode::Rank { labels } = mode {
        for (i, label) in labels.iter().enumerate() {
            columns.push(Column::new(
                format!("ll:{label}").into(),
                result.cells.iter().map(|a| a.loglik[i]).collect::<Vec<_>>(),
            ));
        }
    }
    let mut df = DataFrame::new(n, columns).map_err(|e| e.to_string())?;
    write_table(path, &mut df).map_err(|e| e.to_string())
}

/// A copy of the input with the labels and scores as obs columns (empty label and NaN score
/// for cells that were filtered out, not chosen, or not reached).
fn write_h5ad(
    input: &Path,
    output: &Path,
    cells: &TaskCells,
    result: &Annotations,
) -> Result<(), String> {
    let report = &cells.prepared.report;
    let mut labels = vec![String::new(); report.input_cells];
    let mut scores = vec![f64::NAN; report.input_cells];
    for (a, &row) in result.cells.iter().zip(&cells.rows) {
        let cell = report.kept_cells[row];
        labels[cell] = a.label.clone();
        scores[cell] = a.score;
    }
    let additions = Additions {
        obs: vec![
            ObsColumn {
                name: "c2s_cell_type".into(),
                data: ColumnData::Text(labels),
            },
            ObsColumn {
                name: "c2s_cell_type_score".into(),
                data: ColumnData::Numeric(scores),
            },
        ],
        ..Default::default()
    };
    write_annotated_h5ad(input, output, &additions).map_err(|e| e.to_string())
}

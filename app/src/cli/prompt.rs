//! `c2s-studio prompt`: a task's prompts for the cells of an `.h5ad`, as a table with
//! `cell_id`, `model_input` and `response` (Parquet or CSV).
//!
//! Single-cell tasks make one prompt per cell. Multi-cell tasks group the cells by
//! `--label-column` (groups in order of first appearance, cells in obs order; one group without
//! it) and make one prompt per `--cells-per-prompt` cells of a group; `cell_id` then lists the
//! group's ids joined by ";".

use super::data_args::DataArgs;
use super::task_args::{PromptArgs, TaskCells};
use c2s_core::io::atomic::ensure_not_input;
use c2s_core::io::export::write_table;
use c2s_core::tasks::Task;
use c2s_core::tasks::prompt::{Prompt, PromptBuilder};
use polars::prelude::{Column, DataFrame};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `prompt`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input `.h5ad` file.
    pub input: PathBuf,
    /// The task, as the cell2sentence package names it.
    #[arg(long)]
    pub task: Task,
    /// obs column with each cell's label (cell type, tissue): fills the response, or the
    /// input of a generation task.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Cells per prompt for multi-cell tasks.
    #[arg(long, default_value_t = 5)]
    pub cells_per_prompt: usize,
    /// Prompt flags.
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Matrix, gene names, preprocessing and tie-break.
    #[command(flatten)]
    pub data: DataArgs,
    /// Output table (`.parquet` or `.csv`).
    #[arg(long)]
    pub out: PathBuf,
}

/// The obs-backed value a task's label fills.
fn label_key(task: Task) -> Option<&'static str> {
    match task {
        Task::CellTypePrediction | Task::CellTypeGeneration => Some("cell_type"),
        Task::TissuePrediction | Task::TissueConditionalGeneration => Some("tissue"),
        Task::NaturalLanguageInterpretation
        | Task::PerturbationPrediction
        | Task::PerturbationDelta
        | Task::Question => None,
    }
}

/// Runs `prompt`.
pub fn run(args: Args) -> Result<(), String> {
    ensure_not_input(&args.out, &[&args.input]).map_err(|e| e.to_string())?;
    c2s_core::io::export::TableFormat::from_path(&args.out).map_err(|e| e.to_string())?;
    if matches!(
        args.task,
        Task::PerturbationPrediction | Task::PerturbationDelta
    ) {
        return Err(format!(
            "{} prompts pair perturbed cells with controls; `prompt` does not build them \
             (`finetune --task perturbation` does)",
            args.task.name()
        ));
    }
    if args.cells_per_prompt == 0 {
        return Err("--cells-per-prompt must be at least 1".into());
    }
    let settings = args.prompt.settings(args.task, args.data.seed)?;
    let key = label_key(args.task);
    if args.label_column.is_some() && key.is_none() {
        return Err(format!(
            "{} takes no label column; leave out --label-column",
            args.task.name()
        ));
    }
    let columns: Vec<String> = args.label_column.iter().cloned().collect();
    let cells = TaskCells::load(&args.input, &args.data, &args.prompt, &columns, false)?;
    let mut builder = PromptBuilder::new(settings).map_err(|e| e.to_string())?;
    let ids = &cells.prepared.dataset.obs_names;
    let label = |row: usize| args.label_column.as_deref().map(|c| cells.obs_text(c, row));
    let mut out_ids = Vec::new();
    let mut prompts: Vec<Prompt> = Vec::new();
    let multi = matches!(
        args.task,
        Task::TissuePrediction
            | Task::TissueConditionalGeneration
            | Task::NaturalLanguageInterpretation
            | Task::Question
    );
    if multi {
        for (value, rows) in groups(&cells.rows, |r| label(r).unwrap_or_default()) {
            for chunk in rows.chunks(args.cells_per_prompt) {
                let sentences: Vec<&str> =
                    chunk.iter().map(|&r| cells.sentences[r].as_str()).collect();
                let id: Vec<&str> = chunk.iter().map(|&r| ids[r].as_str()).collect();
                let id = id.join(";");
                let mut fields = BTreeMap::new();
                if let (Some(k), Some(_)) = (key, &args.label_column) {
                    fields.insert(k, value.as_str());
                }
                prompts.push(
                    builder
                        .multi(&id, &sentences, &fields)
                        .map_err(|e| e.to_string())?,
                );
                out_ids.push(id);
            }
        }
    } else {
        for &row in &cells.rows {
            let value = label(row);
            let mut fields = BTreeMap::new();
            if let (Some(k), Some(v)) = (key, value.as_deref()) {
                fields.insert(k, v);
            }
            prompts.push(
                builder
                    .single(&ids[row], Some(&cells.sentences[row]), &fields)
                    .map_err(|e| e.to_string())?,
            );
            out_ids.push(ids[row].clone());
        }
    }
    let n = prompts.len();
    let (inputs, responses): (Vec<String>, Vec<String>) = prompts
        .into_iter()
        .map(|p| (p.model_input, p.response))
        .unzip();
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("cell_id".into(), out_ids),
            Column::new("model_input".into(), inputs),
            Column::new("response".into(), responses),
        ],
    )
    .map_err(|e| e.to_string())?;
    write_table(&args.out, &mut df).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {n} {} prompts to {}",
        args.task.name(),
        args.out.display()
    );
    Ok(())
}

/// `rows` grouped by `key`: groups in order of first appearance, rows in their order.
fn groups(rows: &[usize], key: impl Fn(usize) -> String) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for &r in rows {
        let k = key(r);
        let at = *index.entry(k.clone()).or_insert_with(|| {
            out.push((k, Vec::new()));
            out.len() - 1
        });
        out[at].1.push(r);
    }
    out
}

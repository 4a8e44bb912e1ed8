//! `c2s-studio perturb`: predict how control cells respond to perturbations with a C2S model.
//! Each chosen control cell's sentence and a perturbation name make a prompt; the predicted
//! sentences become expression through the dataset's rank → expression fit; each gene's mean
//! against the controls' is its log-fold change. Writes the predicted cells as an `.h5ad` and,
//! with `--table`, every gene's change per perturbation; prints the top genes up and down.

use super::data_args::DataArgs;
use super::engine_args::EngineArgs;
use super::generated::{generate_with_progress, write_generated};
use super::task_args::{PromptArgs, TaskCells};
use c2s_core::dataset::{ColumnData, ObsColumn};
use c2s_core::engine::{GenerateOptions, SamplingParams};
use c2s_core::io::atomic::ensure_not_input;
use c2s_core::io::export::write_table;
use c2s_core::tasks::Task;
use c2s_core::tasks::generate::expression;
use c2s_core::tasks::perturb::gene_changes;
use c2s_core::tasks::postprocess::{GeneVocab, PostProcess};
use c2s_core::tasks::prompt::PromptBuilder;
use c2s_core::tasks::sample::sample_rows;
use polars::prelude::{Column, DataFrame};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `perturb`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input `.h5ad` file with the control cells.
    pub input: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Perturbation name (repeat for several), as the model was trained to read it.
    #[arg(long = "perturbation", required = true)]
    pub perturbations: Vec<String>,
    /// Control cells drawn from the chosen cells (--cells COL=VALUE), with --sample-seed.
    #[arg(long, default_value_t = 20)]
    pub n_controls: usize,
    /// Seed of the draw of control cells.
    #[arg(long, default_value_t = 0)]
    pub sample_seed: u64,
    /// Sampling temperature (the C2S-Scale screen used 0.3).
    #[arg(long, default_value_t = 0.3)]
    pub temperature: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub sampling_seed: u64,
    /// Longest predicted sentence in tokens (default: 4 per gene, plus 8).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Post-processing of the predicted sentences: clean or compat.
    #[arg(long, default_value = "clean")]
    pub post_process: PostProcess,
    /// Prompts per batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Genes listed up and down per perturbation.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Every gene's change per perturbation (`.parquet` or `.csv`).
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Prompt flags.
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Matrix, gene names, preprocessing and tie-break.
    #[command(flatten)]
    pub data: DataArgs,
    /// Output `.h5ad` of the predicted cells.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `perturb`.
pub fn run(args: Args) -> Result<(), String> {
    ensure_not_input(&args.out, &[&args.input]).map_err(|e| e.to_string())?;
    if let Some(t) = &args.table {
        ensure_not_input(t, &[&args.input]).map_err(|e| e.to_string())?;
        c2s_core::io::export::TableFormat::from_path(t).map_err(|e| e.to_string())?;
    }
    if args.perturbations.iter().any(|p| p.trim().is_empty()) {
        return Err("a --perturbation is empty; name each perturbation".into());
    }
    let settings = args
        .prompt
        .settings(Task::PerturbationPrediction, args.data.seed)?;
    let cells = TaskCells::load(&args.input, &args.data, &args.prompt, &[], true)?;
    let fit = cells
        .prepared
        .fit
        .clone()
        .ok_or("the rank → expression fit of the input could not be made")?;
    let controls = sample_rows(&cells.rows, args.n_controls.max(1), args.sample_seed);
    let ds = &cells.prepared.dataset;
    let mut builder = PromptBuilder::new(settings).map_err(|e| e.to_string())?;
    let mut prompts = Vec::new();
    let mut labels = Vec::new();
    for p in &args.perturbations {
        let fields = BTreeMap::from([("perturbation_name", p.trim())]);
        for &r in &controls {
            let prompt = builder
                .single(&ds.obs_names[r], Some(&cells.sentences[r]), &fields)
                .map_err(|e| e.to_string())?;
            prompts.push(prompt.model_input);
            labels.push((p.trim().to_string(), ds.obs_names[r].clone()));
        }
    }
    let engine = args.engine.load(false)?;
    let options = GenerateOptions {
        max_new_tokens: args
            .max_new_tokens
            .unwrap_or(4 * args.prompt.top_k_genes + 8),
        sampling: SamplingParams {
            temperature: args.temperature,
            seed: Some(args.sampling_seed),
            ..Default::default()
        },
        ..Default::default()
    };
    let vocab = GeneVocab::new(&ds.var_names);
    let out = generate_with_progress(
        &engine,
        &prompts,
        &options,
        args.batch,
        (&vocab, args.post_process),
        "predicted",
    )?;
    let predicted = expression(&out.cells, &ds.var_names, &fit);
    let mut table = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in &args.perturbations {
        let rows: Vec<usize> = (0..out.cells.len())
            .filter(|&i| labels[i].0 == p.trim())
            .collect();
        let changes = gene_changes(&predicted, &rows, &ds.expression, &controls);
        eprintln!(
            "{} ({} cells vs {} controls):",
            p.trim(),
            rows.len(),
            controls.len()
        );
        let name = |g: usize| ds.var_names[g].as_str();
        let up: Vec<String> = changes
            .iter()
            .take(args.top)
            .map(|c| format!("{} {:+.3}", name(c.gene), c.log_fold_change))
            .collect();
        let down: Vec<String> = changes
            .iter()
            .rev()
            .take(args.top)
            .map(|c| format!("{} {:+.3}", name(c.gene), c.log_fold_change))
            .collect();
        eprintln!("  up:   {}", up.join(", "));
        eprintln!("  down: {}", down.join(", "));
        for c in &changes {
            table.0.push(p.trim().to_string());
            table.1.push(name(c.gene).to_string());
            table.2.push(c.log_fold_change);
            table.3.push(c.predicted_mean);
            table.4.push(c.control_mean);
        }
    }
    if let Some(path) = &args.table {
        let n = table.0.len();
        let mut df = DataFrame::new(
            n,
            vec![
                Column::new("perturbation".into(), table.0),
                Column::new("gene".into(), table.1),
                Column::new("log_fold_change".into(), table.2),
                Column::new("predicted_mean".into(), table.3),
                Column::new("control_mean".into(), table.4),
            ],
        )
        .map_err(|e| e.to_string())?;
        write_table(path, &mut df).map_err(|e| e.to_string())?;
    }
    let n = out.cells.len();
    let obs = vec![
        ObsColumn {
            name: "perturbation".into(),
            data: ColumnData::Text(labels[..n].iter().map(|l| l.0.clone()).collect()),
        },
        ObsColumn {
            name: "control_cell".into(),
            data: ColumnData::Text(labels[..n].iter().map(|l| l.1.clone()).collect()),
        },
    ];
    write_generated(&args.out, "predicted", &ds.var_names, &out, obs, predicted)?;
    eprintln!("wrote {n} predicted cells to {}", args.out.display());
    Ok(())
}

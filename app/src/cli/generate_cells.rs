//! `c2s-studio generate-cells`: cells of given types written by a C2S model, as a new `.h5ad`
//! whose expression comes from each generated sentence through the rank → expression fit of a
//! real dataset (`--like`, or a fit saved by `convert --fit-out` with `--fit`).

use super::data_args::DataArgs;
use super::engine_args::EngineArgs;
use super::generated::{generate_with_progress, write_generated};
use c2s_core::Progress;
use c2s_core::convert::prepare_h5ad;
use c2s_core::dataset::{ColumnData, ObsColumn};
use c2s_core::engine::{GenerateOptions, SamplingParams};
use c2s_core::inverse::InverseFit;
use c2s_core::io::atomic::ensure_not_input;
use c2s_core::tasks::Task;
use c2s_core::tasks::generate::expression;
use c2s_core::tasks::postprocess::{GeneVocab, PostProcess};
use c2s_core::tasks::prompt::{PromptBuilder, PromptSettings};
use c2s_core::tasks::template::{PromptTemplate, TemplateChoice};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `generate-cells`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Cell type to generate (repeat for several).
    #[arg(long = "cell-type", required = true)]
    pub cell_types: Vec<String>,
    /// Cells per cell type.
    #[arg(long, default_value_t = 10)]
    pub n: usize,
    /// A real dataset whose genes and rank → expression fit the new cells take.
    #[arg(long)]
    pub like: PathBuf,
    /// A fit saved by `convert --fit-out` to use instead of fitting `--like` again.
    #[arg(long)]
    pub fit: Option<PathBuf>,
    /// Genes asked for per cell (`num_genes`).
    #[arg(long, default_value_t = 200)]
    pub top_k_genes: usize,
    /// Organism named in the prompt.
    #[arg(long, default_value = "Homo sapiens")]
    pub organism: String,
    /// A template file in the cell2sentence JSON format (default: the built-in template).
    #[arg(long)]
    pub template_file: Option<PathBuf>,
    /// Sampling temperature (0: greedy, every cell of a type the same).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub sampling_seed: u64,
    /// Longest sentence in tokens (default: 4 per gene asked for, plus 8).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Post-processing of the generated sentences: clean or compat (as the package).
    #[arg(long, default_value = "clean")]
    pub post_process: PostProcess,
    /// Prompts per batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Matrix, gene names and preprocessing of `--like`.
    #[command(flatten)]
    pub data: DataArgs,
    /// Output `.h5ad`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `generate-cells`.
pub fn run(args: Args) -> Result<(), String> {
    ensure_not_input(&args.out, &[&args.like]).map_err(|e| e.to_string())?;
    if args.n == 0 {
        return Err("--n must be at least 1".into());
    }
    let template = match &args.template_file {
        Some(path) => PromptTemplate::from_file(path).map_err(|e| e.to_string())?,
        None => Task::CellTypeGeneration.builtin_template(),
    };
    let mut builder = PromptBuilder::new(PromptSettings {
        task: Task::CellTypeGeneration,
        template,
        choice: TemplateChoice::Seeded,
        seed: args.sampling_seed,
        top_k: args.top_k_genes,
        organism: args.organism.clone(),
    })
    .map_err(|e| e.to_string())?;
    let mut prompts = Vec::new();
    let mut types = Vec::new();
    for t in &args.cell_types {
        for i in 0..args.n {
            let fields = BTreeMap::from([("cell_type", t.as_str())]);
            let p = builder
                .single(&format!("{t}#{i}"), None, &fields)
                .map_err(|e| e.to_string())?;
            prompts.push(p.model_input);
            types.push(t.clone());
        }
    }
    let options = args
        .data
        .convert_options(None, args.fit.is_none(), Vec::new());
    let prepared =
        prepare_h5ad(&args.like, &options, &Progress::new()).map_err(|e| e.to_string())?;
    let fit: InverseFit = match &args.fit {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{} is not a fit written by convert --fit-out: {e}",
                    path.display()
                )
            })?
        }
        None => prepared
            .fit
            .clone()
            .ok_or("the fit of --like could not be made")?,
    };
    let genes = prepared.dataset.var_names.clone();
    let vocab = GeneVocab::new(&genes);
    let engine = args.engine.load(false)?;
    let generate = GenerateOptions {
        max_new_tokens: args.max_new_tokens.unwrap_or(4 * args.top_k_genes + 8),
        sampling: SamplingParams {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: Some(args.sampling_seed),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = generate_with_progress(
        &engine,
        &prompts,
        &generate,
        args.batch,
        (&vocab, args.post_process),
        "generated",
    )?;
    let n = out.cells.len();
    let unknown: f64 = out.cells.iter().map(|c| c.genes.unknown as f64).sum();
    let obs = vec![ObsColumn {
        name: "cell_type".into(),
        data: ColumnData::Text(types[..n].to_vec()),
    }];
    let x = expression(&out.cells, &genes, &fit);
    write_generated(&args.out, "generated", &genes, &out, obs, x)?;
    eprintln!(
        "wrote {n} generated cells to {} ({:.1} unknown words per cell; fit slope {:.4}, \
         intercept {:.4})",
        args.out.display(),
        unknown / n.max(1) as f64,
        fit.slope,
        fit.intercept
    );
    Ok(())
}

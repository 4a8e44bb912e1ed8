//! `c2s-studio finetune`: LoRA fine-tuning of a C2S model on prepared examples
//! (`--examples FILE.jsonl|.parquet` with `model_input` and `response`) or on the cells of an
//! `.h5ad` (`--task cell-type|generation --label-column COL`, or `--task perturbation
//! --perturbation-column COL --control-value V`: perturbed cells paired with controls; prompts
//! from the task templates).
//! Writes a peft adapter folder plus `log.jsonl`, `split.json` and `checkpoints/` into `--out`.

use super::data_args::DataArgs;
use super::interrupt;
use super::task_args::{PromptArgs, TaskCells};
use c2s_core::Progress;
use c2s_core::engine::DeviceRequest;
use c2s_core::engine::locate::resolve_model;
use c2s_core::kernels::WeightFormat;
use c2s_core::model::config::ModelConfig;
use c2s_core::tasks::delta::{DeltaFit, FIT_FILE};
use c2s_core::tasks::prompt::PromptBuilder;
use c2s_core::train::backend::train_on;
use c2s_core::train::cells::{CellTask, Cells, Pairing, cell_examples};
use c2s_core::train::config::parse_targets;
use c2s_core::train::data::{Example, LossMode, read_examples};
use c2s_core::train::model::BaseModel;
use c2s_core::train::optim::AdamW;
use c2s_core::train::schedule::Schedule;
use c2s_core::train::trainer::{Length, TrainSettings, prepare};
use std::path::PathBuf;
use std::time::Instant;

/// What the examples teach when they come from an `.h5ad`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FinetuneTask {
    /// Predict the cell type (label column) from the cell sentence.
    CellType,
    /// Generate a cell sentence for a cell type (label column).
    Generation,
    /// Predict a perturbed cell's sentence from a control cell's and the perturbation.
    Perturbation,
    /// Predict the genes that rise and fall most (a delta sentence) from a control cell's
    /// sentence and the perturbation; also writes the rank → change fit `delta_fit.json`
    /// that `screen run` needs for `output = "delta"`.
    PerturbationDelta,
}

/// Arguments of `finetune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input `.h5ad` (with --task and --label-column); or give --examples.
    pub input: Option<PathBuf>,
    /// Prepared examples: `.jsonl` or `.parquet` with `model_input` and `response`.
    #[arg(long, conflicts_with_all = ["input", "task", "label_column"])]
    pub examples: Option<PathBuf>,
    /// The task the `.h5ad` examples teach.
    #[arg(long, value_enum)]
    pub task: Option<FinetuneTask>,
    /// obs column with each cell's label.
    #[arg(long)]
    pub label_column: Option<String>,
    /// obs column naming each cell's perturbation (--task perturbation).
    #[arg(long, conflicts_with = "examples")]
    pub perturbation_column: Option<String>,
    /// The value of --perturbation-column that marks control cells.
    #[arg(long, requires = "perturbation_column")]
    pub control_value: Option<String>,
    /// obs column of the context (cell line, cell type): perturbed cells are paired with
    /// controls of the same context.
    #[arg(long, requires = "perturbation_column")]
    pub context_column: Option<String>,
    /// Genes per list of a delta sentence (--task perturbation-delta).
    #[arg(long, default_value_t = 50)]
    pub delta_genes: usize,
    /// Base model directory, or a Hugging Face id already in the local cache.
    #[arg(long)]
    pub model: String,
    /// Output folder (adapter, log.jsonl, split.json, checkpoints/).
    #[arg(long)]
    pub out: PathBuf,
    /// Backend: auto, cuda, wgpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Precision: training runs in f32 (auto or f32).
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// LoRA alpha (scale alpha / r).
    #[arg(long, default_value_t = 8.0)]
    pub lora_alpha: f64,
    /// Dropout on the adapters' input.
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f64,
    /// Scale by alpha / sqrt(r) (rsLoRA).
    #[arg(long)]
    pub rslora: bool,
    /// Projections to adapt, comma-separated, or `default` (peft's: query_key_value for
    /// GPT-NeoX, q_proj,v_proj for Gemma).
    #[arg(long, default_value = "default")]
    pub target_modules: String,
    /// Optimizer steps (else --epochs).
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Passes over the training examples.
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Learning-rate schedule after warmup: constant, linear or cosine.
    #[arg(long, default_value = "linear")]
    pub schedule: Schedule,
    /// Warmup as a fraction of the steps.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Examples per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Clip the global gradient norm (0 disables).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Validation loss every N steps (0: after the last step only).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Checkpoint every N steps (0: after the last step only).
    #[arg(long, default_value_t = 0)]
    pub save_every: usize,
    /// Checkpoints kept besides the best.
    #[arg(long, default_value_t = 2)]
    pub keep: usize,
    /// Fraction of examples held out for validation.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Train in file order every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Loss on the whole text instead of the response and end-of-text token only.
    #[arg(long)]
    pub whole_text_loss: bool,
    /// Start from this peft adapter (its rank, alpha and targets are used).
    #[arg(long)]
    pub init_adapter: Option<PathBuf>,
    /// Full fine-tuning: every weight of the model trains (no LoRA) and --out receives a full
    /// Hugging Face checkpoint; for small models (refused when the weights, gradients and
    /// AdamW state, 20 bytes per parameter, exceed the available memory).
    #[arg(long, conflicts_with = "init_adapter")]
    pub full: bool,
    /// How LoRA's frozen base weights are held on the CPU: f32 (exact) or q8 (8-bit weights and
    /// inputs in the products: a quarter of the weights' memory and faster steps, approximate).
    #[arg(long, default_value = "f32", value_parser = ["f32", "q8"])]
    pub frozen_weights: String,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Print the data preview (examples, token lengths, how many get cut) and stop.
    #[arg(long)]
    pub preview: bool,
    /// Prompt flags (for .h5ad input).
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Matrix, gene names, preprocessing, tie-break and the run's seed.
    #[command(flatten)]
    pub data: DataArgs,
}

/// Runs `finetune`.
pub fn run(args: Args) -> Result<(), String> {
    match args.dtype.to_ascii_lowercase().as_str() {
        "auto" | "f32" | "float32" => {}
        other => {
            return Err(format!(
                "training runs in f32; --dtype {other} is not supported for finetune"
            ));
        }
    }
    let device = args.device.parse::<DeviceRequest>()?;
    let model_dir = resolve_model(&args.model).map_err(|e| e.to_string())?;
    let base = BaseModel::open(&model_dir).map_err(|e| e.to_string())?;
    let (examples, delta_fit) = match (&args.examples, &args.input) {
        (Some(path), _) => (read_examples(path).map_err(|e| e.to_string())?, None),
        (None, Some(input)) => h5ad_examples(&args, input)?,
        (None, None) => {
            return Err(
                "give training data: --examples FILE, or INPUT.h5ad with --task and \
                 --label-column (or --perturbation-column and --control-value)"
                    .into(),
            );
        }
    };
    let settings = settings(&args, &base.config)?;
    let prepared = prepare(&base, &examples, settings.loss).map_err(|e| e.to_string())?;
    let p = &prepared.preview;
    eprintln!(
        "{} examples; tokens per example min {} / median {} / p90 {} / max {} (context {}); \
         {} cut; {} loss tokens",
        p.examples,
        p.length_min,
        p.length_median,
        p.length_p90,
        p.length_max,
        base.config.max_positions(),
        p.cut,
        p.counted_tokens
    );
    if args.preview {
        return Ok(());
    }
    let started = Instant::now();
    let mut tokens = 0usize;
    let progress = Progress::new();
    interrupt::cancel_on_interrupt(
        &progress,
        "stopping after this step and checkpointing it; add --resume to the same command to go on",
    );
    let (summary, selection) = train_on(
        device,
        &model_dir,
        &examples,
        &args.out,
        &settings,
        &progress,
        &mut |r| {
            tokens += r.tokens;
            let rate = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let mut val = r
                .val_loss
                .map(|v| format!(" val_loss {v:.4}"))
                .unwrap_or_default();
            if let Some(a) = r.val_accuracy {
                val += &format!(" val_accuracy {a:.3}");
            }
            if let Some(m) = r.majority_rate {
                val += &format!(" (majority class {m:.3})");
            }
            eprintln!(
                "step {:>5}  loss {:.4}{val}  lr {:.3e}  {:.0} tokens/s",
                r.step, r.loss, r.lr, rate
            );
        },
    )
    .map_err(|e| e.to_string())?;
    if let Some(fit) = &delta_fit {
        fit.write(&args.out.join(FIT_FILE))
            .map_err(|e| e.to_string())?;
    }
    for note in &selection.notes {
        eprintln!("note: {note}");
    }
    let best = summary
        .best
        .map(|(s, v)| format!("; best validation loss {v:.4} at step {s}"))
        .unwrap_or_default();
    let accuracy = match (summary.val_accuracy, summary.majority_rate) {
        (Some(a), Some(m)) => format!(
            "; candidate-ranking accuracy {a:.3} on the validation cells (majority class {m:.3})"
        ),
        _ => String::new(),
    };
    eprintln!(
        "trained {} steps on {} ({} train / {} validation examples); final loss {:.4}{best}\
         {accuracy}; {} and log.jsonl in {}",
        summary.steps,
        selection.description,
        summary.split.0,
        summary.split.1,
        summary.final_loss,
        if args.full { "model" } else { "adapter" },
        args.out.display()
    );
    Ok(())
}

fn settings(args: &Args, model: &ModelConfig) -> Result<TrainSettings, String> {
    let mut s = TrainSettings::new(model);
    s.lora.rank = args.lora_r;
    s.lora.alpha = args.lora_alpha;
    s.lora.dropout = args.lora_dropout;
    s.lora.use_rslora = args.rslora;
    s.lora.targets = parse_targets(&args.target_modules, model);
    s.init_adapter = args.init_adapter.clone();
    s.length = match (args.steps, args.epochs) {
        (Some(n), _) => Length::Steps(n),
        (None, Some(e)) => Length::Epochs(e),
        (None, None) => Length::Epochs(1.0),
    };
    s.lr = args.lr;
    s.schedule = args.schedule;
    s.warmup = args.warmup;
    s.batch = args.batch;
    s.grad_accum = args.grad_accum;
    s.max_grad_norm = (args.max_grad_norm > 0.0).then_some(args.max_grad_norm);
    s.adamw = AdamW {
        weight_decay: args.weight_decay,
        ..AdamW::default()
    };
    s.eval_every = args.eval_every;
    s.save_every = args.save_every;
    s.keep = args.keep;
    s.seed = u64::from(args.data.seed);
    s.shuffle = !args.no_shuffle;
    s.val_fraction = args.val_fraction;
    s.loss = if args.whole_text_loss {
        LossMode::WholeText
    } else {
        LossMode::Response
    };
    s.resume = args.resume;
    s.rank_candidates = args.task == Some(FinetuneTask::CellType);
    s.full = args.full;
    s.frozen_format = frozen_format(&args.frozen_weights);
    Ok(s)
}

/// Examples from the cells of an `.h5ad`: one per chosen cell (per perturbed cell for
/// perturbation), built by [`cell_examples`], and for delta sentences their fit.
fn h5ad_examples(
    args: &Args,
    input: &std::path::Path,
) -> Result<(Vec<Example>, Option<DeltaFit>), String> {
    let task = cell_task(args)?;
    let cells = TaskCells::load(input, &args.data, &args.prompt, &task.columns(), false)?;
    let settings = args.prompt.settings(task.prompt_task(), args.data.seed)?;
    let mut builder = PromptBuilder::new(settings).map_err(|e| e.to_string())?;
    let sentences: Vec<String> = cells
        .rows
        .iter()
        .map(|&r| cells.sentences[r].clone())
        .collect();
    let source = Cells {
        dataset: &cells.prepared.dataset,
        rows: &cells.rows,
        sentences: &sentences,
    };
    let built = cell_examples(source, &task, &mut builder).map_err(|e| e.to_string())?;
    Ok((built.examples, built.delta_fit))
}

/// How the flags pair perturbed cells with controls.
fn pairing(args: &Args) -> Result<Pairing, String> {
    Ok(Pairing {
        column: args.perturbation_column.clone().ok_or(
            "a perturbation task needs --perturbation-column (the obs column naming each \
             cell's perturbation)",
        )?,
        control: args.control_value.clone().ok_or(
            "a perturbation task needs --control-value (the value of the perturbation column \
             that marks control cells)",
        )?,
        context: args.context_column.clone(),
        seed: u64::from(args.data.seed),
    })
}

/// The task the flags ask for.
fn cell_task(args: &Args) -> Result<CellTask, String> {
    let label = || {
        args.label_column
            .clone()
            .ok_or("an .h5ad input needs --label-column (the obs column with each cell's type)")
    };
    Ok(match args.task {
        Some(FinetuneTask::CellType) => CellTask::CellType { label: label()? },
        Some(FinetuneTask::Generation) => CellTask::Generation { label: label()? },
        Some(FinetuneTask::Perturbation) => CellTask::Perturbation(pairing(args)?),
        Some(FinetuneTask::PerturbationDelta) => CellTask::PerturbationDelta {
            pairing: pairing(args)?,
            genes: args.delta_genes,
        },
        None => {
            return Err("an .h5ad input needs --task cell-type, generation, perturbation or perturbation-delta".into());
        }
    })
}

/// The format `--frozen-weights` names (its parser admits only these two).
pub(super) fn frozen_format(name: &str) -> WeightFormat {
    match name {
        "q8" => WeightFormat::Q8,
        _ => WeightFormat::F32,
    }
}

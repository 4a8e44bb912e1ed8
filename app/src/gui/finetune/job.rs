//! The Fine-tune tab's jobs: the data preview with its memory and time estimate, the training
//! run (streaming every step's record), and the ranking of held-out cells with the adapter.
//! All run in the accelerator lane (they load the model); none writes into the output folder
//! before the examples are built and checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use c2s_core::engine::{Engine, LoadOptions};
use c2s_core::metrics::Confusion;
use c2s_core::tasks::annotate::{AnnotateMode, AnnotateRequest, annotate};
use c2s_core::tasks::delta::FIT_FILE;
use c2s_core::tasks::prompt::PromptBuilder;
use c2s_core::train::TrainError;
use c2s_core::train::backend::train_on;
use c2s_core::train::cells::{CellExamples, Cells, cell_examples};
use c2s_core::train::data::Split;
use c2s_core::train::model::BaseModel;
use c2s_core::train::trainer::{Length, StepRecord, TrainSummary, prepare};

use super::estimate::memory_bytes;
use super::form::Request;
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};
use crate::gui::panels::cell_prompts::cell_sentences;

/// The examples of a request, and how many chosen cells were left out (no gene expressed).
#[derive(Debug, Clone)]
pub struct Built {
    /// The examples and their cells.
    pub cells: CellExamples,
    /// Chosen cells left out because they express no gene.
    pub left_out: usize,
}

/// Builds the examples of `req` (cell sentences, then the core's [`cell_examples`]).
pub fn build_examples(req: &Request) -> Result<Built, String> {
    let (sentences, _) = cell_sentences(&req.dataset, &req.rows, req.prompts.top_k);
    let (rows, sentences): (Vec<usize>, Vec<String>) = req
        .rows
        .iter()
        .copied()
        .zip(sentences)
        .filter(|(_, s)| !s.is_empty())
        .unzip();
    let left_out = req.rows.len() - rows.len();
    if rows.is_empty() {
        return Err("none of the chosen cells expresses a gene in the loaded matrix".into());
    }
    let mut builder = PromptBuilder::new(req.prompts.clone()).map_err(|e| e.to_string())?;
    let cells = Cells {
        dataset: &req.dataset,
        rows: &rows,
        sentences: &sentences,
    };
    let cells = cell_examples(cells, &req.task, &mut builder).map_err(|e| e.to_string())?;
    Ok(Built { cells, left_out })
}

/// The preview and estimate of a run.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// Examples built, and cells left out.
    pub built: Built,
    /// Token lengths and how many get cut.
    pub preview: c2s_core::train::data::Preview,
    /// The model's context.
    pub context: usize,
    /// Examples trained on / held out.
    pub split: (usize, usize),
    /// Optimizer steps of the run.
    pub steps: usize,
    /// Memory per the formula, in bytes.
    pub memory: u64,
    /// Seconds per step, from the second of two timed trial steps.
    pub step_seconds: f64,
    /// The device the trial ran on.
    pub device: String,
}

/// Steps of a run with `settings` over `train` training examples.
pub fn total_steps(length: Length, train: usize, per_step: usize) -> usize {
    match length {
        Length::Steps(n) => n,
        Length::Epochs(e) => ((train as f64 * e) / per_step.max(1) as f64).ceil() as usize,
    }
    .max(1)
}

/// Builds and tokenizes the examples, computes the memory estimate, and times two training
/// steps in a scratch folder (removed afterwards; the output folder is not touched).
pub fn spawn_estimate(jobs: &mut Jobs, req: Request) -> JobHandle<Estimate> {
    jobs.spawn(
        "Fine-tune: preview and estimate",
        Lane::Accelerator,
        move |job: &JobContext<()>| {
            job.set(0.0, "building the examples");
            let built = build_examples(&req)?;
            let base = BaseModel::open(&req.model_dir).map_err(|e| e.to_string())?;
            let settings = req.settings(&base, false);
            let prepared =
                prepare(&base, &built.cells.examples, settings.loss).map_err(|e| e.to_string())?;
            let split = Split::new(
                built.cells.examples.len(),
                settings.val_fraction,
                settings.seed,
            )
            .map_err(|e| e.to_string())?;
            let per_step = settings.batch * settings.grad_accum;
            let steps = total_steps(settings.length, split.train.len(), per_step);
            let longest = prepared.preview.length_max.min(base.config.max_positions());
            let memory = memory_bytes(
                &base.config,
                base.weights.parameter_count(),
                settings.batch.min(split.train.len()),
                longest,
            );
            job.set(0.3, "timing two steps");
            let scratch = scratch_dir()?;
            let mut trial = settings.clone();
            trial.length = Length::Steps(2);
            trial.val_fraction = 0.0;
            trial.eval_every = 0;
            let mut times = Vec::new();
            let started = Instant::now();
            let result = train_on(
                req.device,
                &req.model_dir,
                &built.cells.examples,
                &scratch,
                &trial,
                job.core(),
                &mut |_| times.push(started.elapsed().as_secs_f64()),
            );
            let _ = std::fs::remove_dir_all(&scratch);
            let (_, selection) = result.map_err(train_error)?;
            let step_seconds = match times.as_slice() {
                [a, b, ..] => b - a,
                [a] => *a,
                [] => f64::NAN,
            };
            Ok(Estimate {
                context: base.config.max_positions(),
                preview: prepared.preview,
                split: (split.train.len(), split.validation.len()),
                steps,
                memory,
                step_seconds,
                device: selection.description,
                built,
            })
        },
    )
}

/// A scratch folder for the timed trial steps.
fn scratch_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "c2s-finetune-trial-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot make a scratch folder {}: {e}", dir.display()))?;
    Ok(dir)
}

fn train_error(e: TrainError) -> JobError {
    match e {
        TrainError::Cancelled => JobError::Cancelled,
        other => JobError::Failed(other.to_string()),
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct TrainDone {
    /// The core's summary.
    pub summary: TrainSummary,
    /// The device it ran on.
    pub device: String,
    /// The examples and their cells (for the held-out ranking).
    pub built: Built,
}

/// Starts (or with `resume`, continues) the run of `req`, streaming every step's record.
/// Cancelling the job checkpoints the last finished step.
pub fn spawn_train(
    jobs: &mut Jobs,
    req: Request,
    resume: bool,
) -> JobHandle<TrainDone, StepRecord> {
    let title = format!(
        "Fine-tuning {} into {}",
        req.model_source,
        req.out.display()
    );
    jobs.spawn(
        title,
        Lane::Accelerator,
        move |job: &JobContext<StepRecord>| {
            job.set(0.0, "building the examples");
            let built = build_examples(&req)?;
            let base = BaseModel::open(&req.model_dir).map_err(|e| e.to_string())?;
            let settings = req.settings(&base, resume);
            let split = Split::new(
                built.cells.examples.len(),
                settings.val_fraction,
                settings.seed,
            )
            .map_err(|e| e.to_string())?;
            let total = total_steps(
                settings.length,
                split.train.len(),
                settings.batch * settings.grad_accum,
            );
            drop(base);
            let (summary, selection) = train_on(
                req.device,
                &req.model_dir,
                &built.cells.examples,
                &req.out,
                &settings,
                job.core(),
                &mut |r| {
                    job.set(
                        r.step as f32 / total as f32,
                        format!("step {} of {total}, loss {:.4}", r.step, r.loss),
                    );
                    job.send(r.clone());
                },
            )
            .map_err(train_error)?;
            if let Some(fit) = &built.cells.delta_fit {
                fit.write(&req.out.join(FIT_FILE))
                    .map_err(|e| JobError::Failed(e.to_string()))?;
            }
            Ok(TrainDone {
                summary,
                device: selection.description,
                built,
            })
        },
    )
}

/// How the adapted model did on the held-out cells.
#[derive(Debug, Clone)]
pub struct HeldOut {
    /// Predicted against true labels.
    pub confusion: Confusion,
    /// The most common training label.
    pub majority: String,
    /// The share of held-out cells that carry it (the accuracy of always answering it).
    pub majority_rate: f64,
}

/// The validation example indices of the run in `out` (its `split.json`).
pub fn validation_indices(out: &Path) -> Result<Vec<usize>, String> {
    let path = out.join("split.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let split: Split = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a run's split: {e}", path.display()))?;
    Ok(split.validation)
}

/// What the held-out ranking needs.
#[derive(Debug, Clone)]
pub struct HeldOutRequest {
    /// The adapted model, when loaded in the registry (else the job loads it).
    pub engine: Option<Arc<Engine>>,
    /// The model folder: the base model, or a full run's own checkpoint.
    pub model_dir: PathBuf,
    /// The adapter folder on the base model (none for a full run).
    pub adapter: Option<PathBuf>,
    /// The run's output folder (the adapter or checkpoint, and `split.json`).
    pub out: PathBuf,
    /// Load options when the job loads the model itself.
    pub options: LoadOptions,
    /// The run's examples and their labels.
    pub built: Built,
    /// The response template (with `{cell_type}`).
    pub response: String,
    /// Genes per prompt.
    pub top_k: usize,
}

/// Ranks the run's labels for each held-out cell with the adapted model.
pub fn spawn_heldout(jobs: &mut Jobs, req: HeldOutRequest) -> JobHandle<HeldOut> {
    jobs.spawn(
        "Fine-tune: annotating the held-out cells",
        Lane::Accelerator,
        move |job: &JobContext<()>| {
            let held = validation_indices(&req.out)?;
            let cells = &req.built.cells;
            if held.is_empty() {
                return Err("the run held out no cells (validation fraction 0)"
                    .to_string()
                    .into());
            }
            if let Some(&bad) = held.iter().find(|&&i| i >= cells.examples.len()) {
                return Err(format!(
                    "split.json names example {bad}, but the run has {}: the folder holds \
                     another run",
                    cells.examples.len()
                )
                .into());
            }
            let engine = match req.engine {
                Some(e) => e,
                None => {
                    job.set(0.0, "loading the model with the adapter");
                    Arc::new(
                        Engine::load_dir_with_adapter(
                            &req.model_dir,
                            req.adapter.as_deref(),
                            &req.options,
                            job.core(),
                        )
                        .map_err(|e| e.to_string())?,
                    )
                }
            };
            let labels: Vec<String> = {
                let mut l = cells.labels.clone();
                l.sort();
                l.dedup();
                l
            };
            let held_set: std::collections::BTreeSet<usize> = held.iter().copied().collect();
            let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
            for (i, l) in cells.labels.iter().enumerate() {
                if !held_set.contains(&i) {
                    *counts.entry(l.as_str()).or_default() += 1;
                }
            }
            let majority = counts
                .iter()
                .max_by_key(|&(l, n)| (*n, std::cmp::Reverse(*l)))
                .map(|(l, _)| l.to_string())
                .unwrap_or_default();
            let prompts: Vec<String> = held
                .iter()
                .map(|&i| cells.examples[i].model_input.clone())
                .collect();
            let mode = AnnotateMode::Rank { labels };
            let request = AnnotateRequest {
                prompts: &prompts,
                response: &req.response,
                key: "cell_type",
                mode: &mode,
                batch: 8,
                genes_per_prompt: req.top_k,
            };
            let total = prompts.len();
            let done = annotate(&engine, &request, job.cancel_flag(), &mut |n, _| {
                job.set(n as f32 / total as f32, format!("{n} of {total} cells"));
            })
            .map_err(|e| e.to_string())?;
            job.check()?;
            let truths: Vec<&str> = held.iter().map(|&i| cells.labels[i].as_str()).collect();
            let confusion = Confusion::new(
                truths
                    .iter()
                    .copied()
                    .zip(done.cells.iter().map(|a| a.label.as_str())),
            );
            let majority_rate =
                truths.iter().filter(|t| **t == majority).count() as f64 / total as f64;
            Ok(HeldOut {
                confusion,
                majority,
                majority_rate,
            })
        },
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn steps_follow_epochs_rounded_up() {
        assert_eq!(total_steps(Length::Steps(7), 100, 8), 7);
        assert_eq!(total_steps(Length::Epochs(1.0), 20, 8), 3);
        assert_eq!(total_steps(Length::Epochs(0.01), 20, 8), 1);
    }

    #[test]
    fn a_missing_split_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = validation_indices(dir.path()).unwrap_err();
        assert!(e.contains("split.json"), "{e}");
        std::fs::write(
            dir.path().join("split.json"),
            r#"{"train": [0, 2], "validation": [1]}"#,
        )
        .unwrap();
        assert_eq!(validation_indices(dir.path()).unwrap(), vec![1]);
    }
}

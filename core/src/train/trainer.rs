//! The training loop: micro-batches of `batch` rows, `grad_accum` of them per optimizer step
//! (the step's loss is the mean over all their counted tokens), global gradient-norm clipping,
//! AdamW with a warmup schedule, validation loss every N steps, `log.jsonl` (one object per
//! optimizer step), checkpoints every N steps (last K plus the best kept), and resume from the
//! latest checkpoint that continues exactly as an uninterrupted run: the example order and the
//! dropout masks are functions of the seed and the step, so a checkpoint only needs the factors,
//! the optimizer moments and the step.

use super::TrainError;
use super::adapter::{Adapter, write_adapter};
use super::checkpoint::{self, Checkpoint, RunState};
use super::config::LoraConfig;
use super::data::{Batch, Example, LossMode, Order, Preview, Sequence, Split, Tokenization};
use super::full::{self, FullParams, available_memory, check_memory};
use super::merge::write_checkpoint;
use super::model::layers::Adapters;
use super::model::{BaseModel, TrainableModel};
use super::optim::{AdamState, AdamW, clip_grad_norm};
use super::params::{LoraParams, LoraTensors, Trainable};
use super::rank::Ranking;
use super::schedule::{Schedule, warmup_steps};
use crate::engine::tokenizer::TextTokenizer;
use crate::io::atomic::write_atomically;
use crate::kernels::WeightFormat;
use crate::model::linear::host_f32;
use crate::progress::Progress;
use crate::rng::mix64;
use burn::tensor::backend::{AutodiffBackend, Backend};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// A number of optimizer steps.
    Steps(usize),
    /// Passes over the training set (rounded up to whole steps).
    Epochs(f64),
}

/// Every setting of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// Rank, alpha, dropout, rsLoRA and targets (rank, alpha, rsLoRA and targets come from the
    /// initial adapter when one is given).
    pub lora: LoraConfig,
    /// Start from this peft adapter instead of peft's default initialisation.
    pub init_adapter: Option<PathBuf>,
    /// Steps or epochs.
    pub length: Length,
    /// Peak learning rate.
    pub lr: f64,
    /// Decay after warmup.
    pub schedule: Schedule,
    /// Warmup as a fraction of the steps.
    pub warmup: f64,
    /// Rows per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Clip the global gradient norm to this (none: no clipping).
    pub max_grad_norm: Option<f64>,
    /// AdamW betas, epsilon and weight decay.
    pub adamw: AdamW,
    /// Validate every N steps (0: only after the last step).
    pub eval_every: usize,
    /// Checkpoint every N steps (0: only after the last step).
    pub save_every: usize,
    /// Checkpoints kept besides the best.
    pub keep: usize,
    /// Seed of the split, the example order, the initialisation and dropout.
    pub seed: u64,
    /// Shuffle the training examples every epoch (else file order).
    pub shuffle: bool,
    /// Fraction of examples held out for validation.
    pub val_fraction: f64,
    /// Which tokens the loss counts.
    pub loss: LossMode,
    /// Continue from the latest checkpoint in the output folder.
    pub resume: bool,
    /// The examples are a classification (e.g. cell types): every evaluation also ranks the
    /// distinct training responses as continuations of each validation prompt and records the
    /// accuracy ([`super::rank`]).
    pub rank_candidates: bool,
    /// Full fine-tuning: every base weight trains (no LoRA) and the run writes a full
    /// checkpoint ([`super::full`]).
    pub full: bool,
    /// How LoRA's frozen base weights are held on the CPU: f32 (exact), or 8-bit
    /// ([`WeightFormat::Q8`]: a quarter of the memory and faster products, with approximate
    /// activations and gradients; the adapter itself trains in f32).
    pub frozen_format: WeightFormat,
}

impl TrainSettings {
    /// Defaults for `model`: peft's LoRA defaults, 1 epoch, lr 2e-4 linear with no warmup,
    /// batch 8, no accumulation, clipping at 1.0, no weight decay, validation on 10 %.
    pub fn new(model: &crate::model::config::ModelConfig) -> Self {
        Self {
            lora: LoraConfig::for_model(model),
            init_adapter: None,
            length: Length::Epochs(1.0),
            lr: 2e-4,
            schedule: Schedule::Linear,
            warmup: 0.0,
            batch: 8,
            grad_accum: 1,
            max_grad_norm: Some(1.0),
            adamw: AdamW::default(),
            eval_every: 0,
            save_every: 0,
            keep: 2,
            seed: 0,
            shuffle: true,
            val_fraction: 0.1,
            loss: LossMode::Response,
            resume: false,
            rank_candidates: false,
            full: false,
            frozen_format: WeightFormat::F32,
        }
    }

    fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::InvalidConfig(m));
        if self.full && self.frozen_format != WeightFormat::F32 {
            return bad(
                "8-bit frozen weights are for LoRA runs; full fine-tuning trains every \
                 weight in f32 (leave out --frozen-weights or --full)"
                    .into(),
            );
        }
        if self.batch == 0 || self.grad_accum == 0 {
            return bad("--batch and --grad-accum must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "the learning rate must be positive, got {}",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.warmup) {
            return bad(format!(
                "--warmup is a fraction in [0, 1), got {}",
                self.warmup
            ));
        }
        if self.max_grad_norm.is_some_and(|g| g.is_nan() || g <= 0.0) {
            return bad("--max-grad-norm must be positive".into());
        }
        if self.adamw.weight_decay.is_nan() || self.adamw.weight_decay < 0.0 {
            return bad("--weight-decay must not be negative".into());
        }
        match self.length {
            Length::Steps(0) => bad("--steps must be at least 1".into()),
            Length::Epochs(e) if e.is_nan() || e <= 0.0 => bad("--epochs must be positive".into()),
            _ => Ok(()),
        }
    }
}

/// One optimizer step, as written to `log.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// Optimizer steps done (1-based).
    pub step: usize,
    /// Mean loss over the step's counted tokens.
    pub loss: f64,
    /// Learning rate of the update.
    pub lr: f64,
    /// Real (non-padding) tokens in the step.
    pub tokens: usize,
    /// Tokens the loss counted.
    pub loss_tokens: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Validation loss, when evaluated at this step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    /// Candidate-ranking accuracy on the validation examples, when evaluated at this step and
    /// the run ranks candidates.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_accuracy: Option<f64>,
    /// The accuracy of always answering the most frequent training response, on the record of
    /// the run's first evaluation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub majority_rate: Option<f64>,
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Steps done in total.
    pub steps: usize,
    /// The data preview.
    pub preview: Preview,
    /// The last step's loss.
    pub final_loss: f64,
    /// The best validation loss and its step.
    pub best: Option<(usize, f64)>,
    /// Examples trained on / held out.
    pub split: (usize, usize),
    /// The last evaluation's candidate-ranking accuracy (runs that rank candidates).
    pub val_accuracy: Option<f64>,
    /// The majority-class rate on the validation examples (runs that rank candidates).
    pub majority_rate: Option<f64>,
}

/// The examples of a run, tokenized for `base`.
pub struct Prepared {
    /// Every example's tokens, in file order.
    pub sequences: Vec<Sequence>,
    /// Its preview.
    pub preview: Preview,
    /// The padding id.
    pub pad: u32,
    /// The model's tokenizer.
    tokenizer: TextTokenizer,
    /// The end-of-text id appended to every sequence.
    eos: u32,
    /// The model's context.
    context: usize,
    /// Which tokens the loss counts.
    mode: LossMode,
}

impl Prepared {
    /// How the examples were tokenized.
    pub fn tokenization(&self) -> Tokenization<'_> {
        Tokenization {
            tokenizer: &self.tokenizer,
            eos: self.eos,
            context: self.context,
            mode: self.mode,
        }
    }
}

/// Tokenizes `examples` for the model in `base` as training will (a preview without training).
pub fn prepare(
    base: &BaseModel,
    examples: &[Example],
    mode: LossMode,
) -> Result<Prepared, TrainError> {
    let tokenizer = TextTokenizer::from_file(&base.dir.join("tokenizer.json"))
        .map_err(|e| TrainError::InvalidData(e.to_string()))?;
    let special = base.config.special_ids();
    let eos = *special.eos.first().ok_or_else(|| {
        TrainError::InvalidConfig(
            "the model's config.json names no `eos_token_id`, which training appends to every \
             example"
                .into(),
        )
    })?;
    let tokenization = Tokenization {
        tokenizer: &tokenizer,
        eos,
        context: base.config.max_positions(),
        mode,
    };
    let sequences = tokenization.sequences(examples)?;
    let bound = base
        .weights
        .shape(&embedding_name(base)?)
        .map(|s| s[0])
        .unwrap_or(base.config.vocab_size());
    if let Some(id) = sequences
        .iter()
        .flat_map(|s| &s.ids)
        .find(|&&id| id as usize >= bound)
    {
        return Err(TrainError::InvalidData(format!(
            "token id {id} is outside the model's vocabulary of {bound}; the tokenizer.json \
             does not belong to this model"
        )));
    }
    Ok(Prepared {
        preview: Preview::of(&sequences),
        sequences,
        pad: special.pad.unwrap_or(eos),
        tokenizer,
        eos,
        context: base.config.max_positions(),
        mode,
    })
}

fn embedding_name(base: &BaseModel) -> Result<String, TrainError> {
    Ok(match base.config {
        crate::model::config::ModelConfig::GptNeox(_) => "gpt_neox.embed_in.weight".into(),
        crate::model::config::ModelConfig::Gemma(_) => {
            format!("{}embed_tokens.weight", base.decoder_prefix()?)
        }
    })
}

/// Trains LoRA adapters for the model in `model_dir` on `examples` (or, with
/// [`TrainSettings::full`], every weight), writing into `out`: the adapter (`adapter_config.json`,
/// `adapter_model.safetensors`; a full run writes `config.json`, the tokenizer and
/// `model.safetensors` instead), `log.jsonl`, `split.json` and `checkpoints/`. `on_step` sees
/// every step's record; cancelling `progress` checkpoints the last finished step and returns
/// [`TrainError::Cancelled`].
pub fn train<B: AutodiffBackend>(
    model_dir: &Path,
    examples: &[Example],
    out: &Path,
    settings: &TrainSettings,
    device: &B::Device,
    progress: &Progress,
    on_step: &mut dyn FnMut(&StepRecord),
) -> Result<TrainSummary, TrainError> {
    settings.validate()?;
    if settings.full {
        if settings.init_adapter.is_some() {
            return Err(TrainError::InvalidConfig(
                "--init-adapter starts a LoRA run; leave it out for full fine-tuning (--full)"
                    .into(),
            ));
        }
        crate::io::atomic::ensure_not_input(out, &[model_dir])?;
    }
    let base = BaseModel::open(model_dir)?;
    let base_name = model_dir.display().to_string();
    let mut lora = settings.lora.clone();
    let init = match &settings.init_adapter {
        Some(dir) => {
            let adapter = Adapter::open(dir, &base.config)?;
            lora = LoraConfig {
                dropout: settings.lora.dropout,
                ..adapter.config.clone()
            };
            Some(adapter)
        }
        None => None,
    };
    lora.validate(&base.config)?;
    progress.set_stage("preparing the examples");
    let prepared = prepare(&base, examples, settings.loss)?;
    let split = Split::new(examples.len(), settings.val_fraction, settings.seed)?;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let split_path = out.join("split.json");
    if settings.resume && split_path.exists() {
        let text =
            std::fs::read_to_string(&split_path).map_err(|e| TrainError::io(&split_path, e))?;
        let saved: Split =
            serde_json::from_str(&text).map_err(|e| TrainError::io(&split_path, e))?;
        if saved != split {
            return Err(TrainError::InvalidData(format!(
                "the examples or the seed differ from those of the run in {}; resume needs the \
                 same data and settings",
                out.display()
            )));
        }
    }
    write_json(&split_path, &split)?;
    if settings.full {
        let weights = &base.weights;
        let count = weights
            .names()
            .map(|n| weights.shape(n).map_or(0, |s| s.iter().product::<usize>()))
            .sum();
        check_memory(count, available_memory())?;
    }
    progress.set_stage("loading the model");
    let host = (!settings.full).then_some(settings.frozen_format);
    let mut model = TrainableModel::<B>::load(&base, &lora, host, device)?;
    let mut params = match &init {
        _ if settings.full => Trainable::Full(FullParams::from_base(&mut model, &base.weights)?),
        Some(adapter) => Trainable::Lora(adapter.params(model.modules())?),
        None => Trainable::Lora(LoraParams::init(model.modules(), lora.rank, settings.seed)),
    };
    let per_step = settings.batch * settings.grad_accum;
    let total = match settings.length {
        Length::Steps(n) => n,
        Length::Epochs(e) => ((split.train.len() as f64 * e) / per_step as f64).ceil() as usize,
    }
    .max(1);
    let warmup = warmup_steps(total, settings.warmup);
    let mut adam = AdamState::default();
    let mut start = 0;
    let mut best: Option<(usize, f64)> = None;
    let log_path = out.join("log.jsonl");
    if settings.resume {
        if let Some((_, dir)) = checkpoint::list(out)?.pop() {
            let ckpt = checkpoint::load(&dir, &base.config, model.modules(), &params)?;
            params = ckpt.params;
            adam = ckpt.adam;
            start = ckpt.state.step;
            best = ckpt.state.best;
        }
        truncate_log(&log_path, start)?;
    } else {
        write_atomically(&log_path, |tmp| {
            std::fs::write(tmp, "").map_err(|e| crate::Error::Write {
                path: tmp.to_path_buf(),
                detail: e.to_string(),
            })
        })?;
    }
    let mut order = Order::new(split.train.len(), settings.seed, settings.shuffle);
    let train_seqs: Vec<&Sequence> = split
        .train
        .iter()
        .map(|&i| &prepared.sequences[i])
        .collect();
    let val_seqs: Vec<&Sequence> = split
        .validation
        .iter()
        .map(|&i| &prepared.sequences[i])
        .collect();
    let ranking = if settings.rank_candidates && !val_seqs.is_empty() {
        Some(Ranking::new(&prepared.tokenization(), examples, &split)?)
    } else {
        None
    };
    let first_eval = if settings.eval_every > 0 {
        settings.eval_every.min(total)
    } else {
        total
    };
    let scale = lora.scale();
    let mut last_loss = f64::NAN;
    let mut last_accuracy = None;
    let mut saved_step = start;
    progress.set_stage("training");
    for step in start..total {
        if progress.is_cancelled() {
            if step > saved_step {
                let state = RunState {
                    step,
                    val_loss: None,
                    best,
                };
                save(out, &params, &adam, state, &lora, &base_name, settings.keep)?;
            }
            return Err(TrainError::Cancelled);
        }
        let items: Vec<&Sequence> = (step * per_step..(step + 1) * per_step)
            .map(|k| train_seqs[order.item(k)])
            .collect();
        let batches: Vec<Batch> = items
            .chunks(settings.batch)
            .map(|rows| Batch::new(rows, prepared.pad))
            .collect();
        let counted: usize = batches.iter().map(Batch::counted).sum();
        let tensors = bind(&params, &mut model, device, true)?;
        let adapters = tensors.as_ref().map(|tensors| Adapters {
            tensors,
            scale,
            dropout: lora.dropout,
        });
        let mut grads: Vec<Vec<f32>> = params
            .tensors()
            .iter()
            .map(|t| vec![0.0; t.len()])
            .collect();
        let mut loss = 0.0;
        for (micro, batch) in batches.iter().enumerate() {
            if lora.dropout > 0.0 {
                B::seed(
                    device,
                    mix64(settings.seed ^ mix64((step * settings.grad_accum + micro) as u64)),
                );
            }
            let nll = model
                .summed_nll(batch, adapters.as_ref())
                .div_scalar(counted as f64);
            loss += host_f32(nll.clone())[0] as f64;
            let backward = nll.backward();
            let g = match &tensors {
                Some(t) => t.gradients(&backward),
                None => full::gradients(&mut model, &backward)?,
            };
            for (acc, g) in grads.iter_mut().zip(g) {
                for (a, v) in acc.iter_mut().zip(g) {
                    *a += v;
                }
            }
        }
        let grad_norm = match settings.max_grad_norm {
            Some(max) => clip_grad_norm(&mut grads, max),
            None => clip_grad_norm(&mut grads, f64::INFINITY),
        };
        let lr = settings.lr * settings.schedule.factor(step, warmup, total);
        settings
            .adamw
            .step(lr, &mut params.tensors_mut(), &grads, &mut adam);
        let done = step + 1;
        let evaluate = !val_seqs.is_empty()
            && ((settings.eval_every > 0 && done % settings.eval_every == 0) || done == total);
        let (val_loss, val_accuracy) = if evaluate {
            let tensors = bind(&params, &mut model, device, false)?;
            let eval = Evaluation {
                model: &model,
                prepared: &prepared,
                rows: settings.batch,
                scale,
            };
            let (loss, accuracy) = eval.run(tensors.as_ref(), &val_seqs, ranking.as_ref());
            (Some(loss), accuracy)
        } else {
            (None, None)
        };
        if val_accuracy.is_some() {
            last_accuracy = val_accuracy;
        }
        if let Some(v) = val_loss
            && best.is_none_or(|(_, b)| v < b)
        {
            best = Some((done, v));
        }
        let record = StepRecord {
            step: done,
            loss,
            lr,
            tokens: batches.iter().map(Batch::tokens).sum(),
            loss_tokens: counted,
            grad_norm,
            val_loss,
            val_accuracy,
            majority_rate: ranking
                .as_ref()
                .filter(|_| done == first_eval)
                .map(Ranking::majority_rate),
        };
        append_log(&log_path, &record)?;
        on_step(&record);
        last_loss = loss;
        progress.set_fraction(done as f32 / total as f32);
        if (settings.save_every > 0 && done % settings.save_every == 0) || done == total {
            let state = RunState {
                step: done,
                val_loss,
                best,
            };
            save(out, &params, &adam, state, &lora, &base_name, settings.keep)?;
            saved_step = done;
        }
    }
    match &params {
        Trainable::Lora(p) => write_adapter(out, p, &lora, &base_name)?,
        Trainable::Full(p) => {
            let trained: std::collections::HashMap<&str, &Vec<f32>> =
                p.names.iter().map(String::as_str).zip(&p.values).collect();
            write_checkpoint(&base, out, &|name, values, _| {
                if let Some(v) = trained.get(name) {
                    values.clone_from(v);
                }
            })?;
        }
    }
    Ok(TrainSummary {
        steps: total,
        preview: prepared.preview,
        final_loss: last_loss,
        best,
        split: (split.train.len(), split.validation.len()),
        val_accuracy: last_accuracy,
        majority_rate: ranking.as_ref().map(Ranking::majority_rate),
    })
}

#[allow(clippy::too_many_arguments)]
fn save(
    out: &Path,
    params: &Trainable,
    adam: &AdamState,
    state: RunState,
    lora: &LoraConfig,
    base_name: &str,
    keep: usize,
) -> Result<(), TrainError> {
    let ckpt = Checkpoint {
        state,
        params: params.clone(),
        adam: adam.clone(),
    };
    checkpoint::save(out, &ckpt, lora, base_name, keep)?;
    Ok(())
}

/// Puts the trained tensors on the device for one pass (with `track`, gradients are taken for
/// them): LoRA factors are returned for the adapters; full weights go into `model`'s slots.
fn bind<B: Backend>(
    params: &Trainable,
    model: &mut TrainableModel<B>,
    device: &B::Device,
    track: bool,
) -> Result<Option<LoraTensors<B>>, TrainError> {
    match params {
        Trainable::Lora(p) => Ok(Some(p.to_device::<B>(device, track))),
        Trainable::Full(p) => {
            p.upload(model, device, track)?;
            Ok(None)
        }
    }
}

/// What an evaluation runs on: the model (its trained tensors already bound), the tokenized
/// examples, rows per forward pass and the adapters' scale.
struct Evaluation<'a, B: Backend> {
    model: &'a TrainableModel<B>,
    prepared: &'a Prepared,
    rows: usize,
    scale: f64,
}

impl<B: Backend> Evaluation<'_, B> {
    /// The mean loss over the counted tokens of the validation examples and, with `ranking`,
    /// the candidate-ranking accuracy (no dropout, no gradients).
    fn run(
        &self,
        lora: Option<&LoraTensors<B>>,
        seqs: &[&Sequence],
        ranking: Option<&Ranking>,
    ) -> (f64, Option<f64>) {
        let adapters = lora.map(|tensors| Adapters {
            tensors,
            scale: self.scale,
            dropout: 0.0,
        });
        let (mut sum, mut count) = (0.0f64, 0usize);
        for rows in seqs.chunks(self.rows) {
            let batch = Batch::new(rows, self.prepared.pad);
            let nll = self.model.summed_nll(&batch, adapters.as_ref());
            sum += host_f32(nll)[0] as f64;
            count += batch.counted();
        }
        let accuracy = ranking.map(|r| {
            let scores = r.scores(self.model, adapters.as_ref(), self.prepared.pad, self.rows);
            r.accuracy(&scores)
        });
        (sum / count.max(1) as f64, accuracy)
    }
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string(value).map_err(|e| TrainError::io(path, e))?;
    write_atomically(path, |tmp| {
        std::fs::write(tmp, &text).map_err(|e| crate::Error::Write {
            path: tmp.to_path_buf(),
            detail: e.to_string(),
        })
    })?;
    Ok(())
}

fn append_log(path: &Path, record: &StepRecord) -> Result<(), TrainError> {
    let line = serde_json::to_string(record).map_err(|e| TrainError::io(path, e))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, e))?;
    writeln!(file, "{line}").map_err(|e| TrainError::io(path, e))
}

/// The step records of a run's log (`log.jsonl`), in file order; none when there is no log
/// yet. Lines that are not step records (a line cut short by a crash) are skipped.
pub fn read_log(path: &Path) -> Result<Vec<StepRecord>, TrainError> {
    Ok(log_lines(path)?.into_iter().map(|(_, r)| r).collect())
}

/// Each step record of a run's log with its line as written (re-serialising a record could
/// change a float's last digit).
fn log_lines(path: &Path) -> Result<Vec<(String, StepRecord)>, TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| Some((l.to_string(), serde_json::from_str(l).ok()?)))
        .collect())
}

/// Keeps the records of steps `≤ step` (what a resumed run has already done).
fn truncate_log(path: &Path, step: usize) -> Result<(), TrainError> {
    let kept: String = log_lines(path)?
        .into_iter()
        .filter(|(_, r)| r.step <= step)
        .map(|(line, _)| line + "\n")
        .collect();
    write_atomically(path, |tmp| {
        std::fs::write(tmp, &kept).map_err(|e| crate::Error::Write {
            path: tmp.to_path_buf(),
            detail: e.to_string(),
        })
    })?;
    Ok(())
}

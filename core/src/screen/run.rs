//! Running a screen: the shard's pending units in batches on the engine, each unit generated
//! with its own seed from a perturbation prompt built as `perturb` builds it, its predicted
//! sentence scored per gene set and every finished batch appended to the store before the next
//! starts. A cancel keeps every finished batch; running again resumes.

use super::context::LoadedContext;
use super::spec::{ControlSpec, OutputMode, ScreenSpec};
use super::store::{ControlResult, Store, UnitResult};
use super::units::{ContextShape, Shard, Unit, all_units};
use crate::engine::generate::DEFAULT_KV_BUDGET_BYTES;
use crate::engine::{Engine, GenerateOptions, GenerateRequest, SamplingParams, StopReason};
use crate::error::{Error, Result};
use crate::genesets::gmt::GeneSetLibrary;
use crate::progress::Progress;
use crate::tasks::Task;
use crate::tasks::delta::DeltaFit;
use crate::tasks::prompt::{PromptBuilder, PromptSettings};
use crate::tasks::template::{PromptTemplate, TemplateChoice};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// How a run proceeds (none of this changes the results).
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Units generated together (decoded as one batch when the key/value budget allows) and
    /// stored together.
    pub batch: usize,
    /// This process's share of the units.
    pub shard: Shard,
    /// Key/value cache budget of one decoding batch, in bytes: a batch that would need more
    /// is decoded in smaller groups.
    pub kv_budget_bytes: u64,
}

impl RunOptions {
    /// `batch` units at a time of `shard`, with the engine's default key/value budget (1 GiB).
    pub fn new(batch: usize, shard: Shard) -> Self {
        Self {
            batch,
            shard,
            kv_budget_bytes: DEFAULT_KV_BUDGET_BYTES,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Units of this shard.
    pub shard_units: usize,
    /// Units that were already finished when the run started.
    pub already_done: usize,
    /// Units finished by this run.
    pub done_now: usize,
    /// Whether the run stopped on a cancel before finishing its shard.
    pub cancelled: bool,
    /// Whether every unit of the whole screen is now in this folder (`results.parquet` was
    /// written).
    pub complete: bool,
}

/// The contexts of a spec, loaded (see [`LoadedContext::load`]).
pub fn load_contexts(spec: &ScreenSpec, progress: &Progress) -> Result<Vec<LoadedContext>> {
    let gmt = GeneSetLibrary::read(&spec.genesets.gmt)?;
    let delta = match (spec.model.output, &spec.delta, &spec.model.delta_fit) {
        (OutputMode::Sentence, ..) => None,
        (OutputMode::Delta, Some(fit), _) => Some(fit.clone()),
        (OutputMode::Delta, None, Some(path)) => Some(DeltaFit::read(path)?),
        (OutputMode::Delta, None, None) => {
            return Err(Error::InvalidArgument(
                "a delta screen needs its delta fit ([model] delta_fit)".into(),
            ));
        }
    };
    spec.contexts
        .iter()
        .map(|c| {
            progress.set_stage(format!("reading context {}", c.name));
            LoadedContext::load(
                c,
                spec.model.top_k_genes,
                &gmt,
                &spec.genesets,
                delta.as_ref(),
                progress,
            )
        })
        .collect()
}

/// The perturbation prompt settings of a spec (built-in template unless a file is named; a
/// delta-output screen prompts for delta sentences).
pub fn prompt_settings(spec: &ScreenSpec) -> Result<PromptSettings> {
    let task = match spec.model.output {
        OutputMode::Sentence => Task::PerturbationPrediction,
        OutputMode::Delta => Task::PerturbationDelta,
    };
    let template = match &spec.model.template_file {
        Some(path) => PromptTemplate::from_file(path)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?,
        None => task.builtin_template(),
    };
    task.check(&template)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok(PromptSettings {
        task,
        template,
        choice: TemplateChoice::First,
        seed: spec.sampling.seed,
        top_k: spec.model.top_k_genes,
        organism: spec.model.organism.clone(),
    })
}

/// Runs the shard's pending units of `spec` into `store`, `options.batch` at a time. Progress
/// shows units done of the shard's total, units/s and the ETA; `on_batch` sees the summary
/// after each stored batch. A cancel (on `progress`) drops the batch in flight and keeps every
/// stored one. When the folder then holds every unit of the screen, `results.parquet` is
/// written.
pub fn run_screen(
    spec: &ScreenSpec,
    contexts: &[LoadedContext],
    store: &Store,
    engine: &Engine,
    options: RunOptions,
    progress: &Progress,
    on_batch: &mut dyn FnMut(&RunSummary),
) -> Result<RunSummary> {
    if options.batch == 0 {
        return Err(Error::InvalidArgument(
            "the batch size must be at least 1".into(),
        ));
    }
    if let ControlSpec::Unperturbed = spec.control {
        let controls = score_controls(contexts, progress)?;
        if store.controls()?.as_ref() != Some(&controls) {
            store.write_controls(&controls)?;
        }
    }
    let shapes: Vec<ContextShape> = spec
        .contexts
        .iter()
        .zip(contexts)
        .map(|(c, l)| ContextShape {
            name: c.name.clone(),
            samples: l.sentences.len(),
            replicates: c.replicates,
        })
        .collect();
    let every = all_units(&spec.perturbations, &shapes);
    let total_screen = every.len();
    let mine = options.shard.select(every);
    let finished = store.finished()?;
    let pending: Vec<Unit> = mine
        .iter()
        .filter(|u| !finished.contains(u))
        .cloned()
        .collect();
    let mut summary = RunSummary {
        shard_units: mine.len(),
        already_done: mine.len() - pending.len(),
        done_now: 0,
        cancelled: false,
        complete: false,
    };
    let by_name: HashMap<&str, &LoadedContext> =
        contexts.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut builder = PromptBuilder::new(prompt_settings(spec)?)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let generate = GenerateOptions {
        max_new_tokens: spec
            .sampling
            .max_new_tokens
            .unwrap_or_else(|| default_max_new_tokens(spec, contexts)),
        sampling: SamplingParams {
            temperature: spec.sampling.temperature,
            seed: Some(spec.sampling.seed),
            ..Default::default()
        },
        max_batch_rows: options.batch,
        kv_budget_bytes: options.kv_budget_bytes,
        ..Default::default()
    };
    generate.validate().map_err(Error::InvalidArgument)?;
    let started = Instant::now();
    for batch in pending.chunks(options.batch) {
        if progress.is_cancelled() {
            summary.cancelled = true;
            break;
        }
        let mut prompts = Vec::with_capacity(batch.len());
        for u in batch {
            let ctx = by_name[u.context.as_str()];
            let s = u.sample as usize;
            let fields = BTreeMap::from([("perturbation_name", u.perturbation.as_str())]);
            let prompt = builder
                .single(&ctx.sample_ids[s], Some(&ctx.sentences[s]), &fields)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            prompts.push(prompt.model_input);
        }
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let ids = engine.encode_all(&texts).map_err(engine_err)?;
        let requests: Vec<GenerateRequest<'_>> = batch
            .iter()
            .zip(&ids)
            .map(|(u, p)| {
                let mut r = GenerateRequest::new(p);
                r.seed = Some(u.seed(spec.sampling.seed));
                r
            })
            .collect();
        let (generations, _) = engine
            .generate_requests(
                &requests,
                &generate,
                &mut |_| {},
                &mut |_, _| {},
                Some(progress.cancel_flag()),
            )
            .map_err(engine_err)?;
        if generations
            .iter()
            .any(|g| g.stop_reason == StopReason::Cancelled)
        {
            summary.cancelled = true;
            break;
        }
        let mut results = Vec::with_capacity(batch.len());
        for (u, g) in batch.iter().zip(&generations) {
            let ctx = by_name[u.context.as_str()];
            let (sentence, scores) = ctx
                .score_outputs(&[g.text.as_str()], &[u.sample as usize], &Progress::new())?
                .remove(0);
            results.push(UnitResult {
                unit: u.clone(),
                generated: g.text.clone(),
                sentence,
                scores,
            });
        }
        store
            .append(&results)
            .map_err(|e| store_failed(e, store, &summary))?;
        summary.done_now += batch.len();
        report(progress, &summary, started);
        on_batch(&summary);
    }
    if !summary.cancelled {
        summary.complete = store.finished()?.len() == total_screen;
        if summary.complete {
            store
                .write_results()
                .map_err(|e| store_failed(e, store, &summary))?;
        }
    }
    Ok(summary)
}

/// The longest output by default: 4 tokens per gene of a predicted sentence (as many genes as
/// the prompt's), or of a delta sentence's two lists, plus room for the markers.
fn default_max_new_tokens(spec: &ScreenSpec, contexts: &[LoadedContext]) -> usize {
    match contexts.iter().find_map(LoadedContext::delta_genes) {
        Some(per_list) => 4 * 2 * per_list + 16,
        None => 4 * spec.model.top_k_genes + 8,
    }
}

/// A results-store write that failed mid-run (most often a full disk), said with what is kept
/// and how to go on.
fn store_failed(e: Error, store: &Store, summary: &RunSummary) -> Error {
    match e {
        Error::Write { path, detail } => Error::Write {
            path,
            detail: format!(
                "{detail}. The screen stopped; its {} finished units are kept in {}. Make room \
                 (a full disk: free space) and run the same screen again: it continues from them",
                summary.already_done + summary.done_now,
                store.dir().display()
            ),
        },
        other => other,
    }
}

fn engine_err(e: crate::engine::EngineError) -> Error {
    Error::InvalidData(format!("generation failed: {e}"))
}

/// Each context's drawn samples' own sentences, scored as the predictions are.
pub fn score_controls(
    contexts: &[LoadedContext],
    progress: &Progress,
) -> Result<Vec<ControlResult>> {
    let mut out = Vec::new();
    for c in contexts {
        for (s, (sentence, scores)) in c.score_samples(progress)?.into_iter().enumerate() {
            out.push(ControlResult {
                context: c.name.clone(),
                sample: s as u32,
                sentence,
                scores,
            });
        }
    }
    Ok(out)
}

/// Progress: units done of the shard, units/s over this run, ETA.
fn report(progress: &Progress, s: &RunSummary, started: Instant) {
    let done = s.already_done + s.done_now;
    let rate = s.done_now as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let left = s.shard_units - done;
    let eta = if rate > 0.0 {
        left as f64 / rate
    } else {
        f64::INFINITY
    };
    progress.set_fraction(done as f32 / s.shard_units.max(1) as f32);
    progress.set_stage(format!(
        "{done}/{} units, {rate:.2} units/s, ETA {}",
        s.shard_units,
        format_eta(eta)
    ));
}

/// `1h02m`, `3m05s`, `12s`.
fn format_eta(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "unknown".into();
    }
    let t = seconds.round() as u64;
    match (t / 3600, (t % 3600) / 60, t % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_reads_naturally() {
        assert_eq!(format_eta(12.4), "12s");
        assert_eq!(format_eta(185.0), "3m05s");
        assert_eq!(format_eta(3720.0), "1h02m");
        assert_eq!(format_eta(f64::INFINITY), "unknown");
    }
}

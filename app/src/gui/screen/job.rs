//! The screen's jobs, all in the accelerator lane: run (or resume) a screen into its folder,
//! estimate its run time from a measured batch, and reopen a folder. Each hands back what the
//! panel shows; the run streams a [`RunSummary`] after every stored batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use c2s_core::engine::{Engine, LoadOptions};
use c2s_core::screen::run::{RunOptions, RunSummary, load_contexts, run_screen};
use c2s_core::screen::spec::ScreenSpec;
use c2s_core::screen::store::{RESULTS, SPEC_FILE, Store};
use c2s_core::screen::units::Shard;

use super::form::Plan;
use super::results::ScreenResults;
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// What a finished (or resumed-to-the-end) run hands back.
#[derive(Debug)]
pub struct RunDone {
    /// What the run did.
    pub summary: RunSummary,
    /// The results, when the folder now holds every unit.
    pub results: Option<ScreenResults>,
}

/// A reopened results folder.
#[derive(Debug)]
pub struct Opened {
    /// The folder.
    pub dir: PathBuf,
    /// The screen's spec, from its manifest.
    pub spec: ScreenSpec,
    /// Units finished so far.
    pub finished: usize,
    /// The results, when the screen is complete.
    pub results: Option<ScreenResults>,
}

/// A run-time estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Units of the whole screen.
    pub units: usize,
    /// Units already in the output folder.
    pub done: usize,
    /// Measured seconds per unit.
    pub seconds_per_unit: f64,
    /// Units the measurement generated.
    pub measured: usize,
}

impl Estimate {
    /// `about 12 min (0.42 s per unit, measured on 16 units; 1,600 units to run)`.
    pub fn describe(&self) -> String {
        let left = self.units - self.done.min(self.units);
        format!(
            "{} ({:.2} s per unit, measured on {} units; {left} of {} units to run)",
            about(left as f64 * self.seconds_per_unit),
            self.seconds_per_unit,
            self.measured,
            self.units
        )
    }
}

/// `about N min` (at least 1), or `about H h M min` from two hours on.
pub fn about(seconds: f64) -> String {
    let minutes = (seconds / 60.0).ceil().max(1.0) as u64;
    if minutes < 120 {
        format!("about {minutes} min")
    } else {
        format!("about {} h {} min", minutes / 60, minutes % 60)
    }
}

/// The engine of a plan: the loaded one, or the spec's folder loaded on the CPU or GPU.
fn engine_of(
    spec: &ScreenSpec,
    engine: Option<Arc<Engine>>,
    job: &JobContext<impl Sized>,
) -> Result<Arc<Engine>, JobError> {
    if let Some(engine) = engine {
        return Ok(engine);
    }
    job.set(0.0, "loading the model");
    let loaded =
        Engine::load_dir_with_progress(&spec.model.dir, &LoadOptions::default(), job.core())
            .map_err(|e| JobError::Failed(format!("{}: {e}", spec.model.dir.display())))?;
    Ok(Arc::new(loaded))
}

/// Runs `plan` into its folder (a folder of the same screen resumes; of another is refused),
/// saving the spec as `screen.toml` beside the results. A cancel keeps every stored batch and
/// ends the job as cancelled.
pub fn spawn_run(jobs: &mut Jobs, plan: Plan) -> JobHandle<RunDone, RunSummary> {
    let title = format!("Virtual screen into {}", plan.out.display());
    jobs.spawn(
        title,
        Lane::Accelerator,
        move |job: &JobContext<RunSummary>| {
            let Plan {
                spec,
                out,
                engine,
                batch,
            } = plan;
            // A folder of another screen is said at once; the inputs are read before anything
            // is written, so a bad context or gene set leaves a new folder untouched.
            Store::check_destination(&out, &spec)?;
            let contexts = load_contexts(&spec, job.core())?;
            let engine = engine_of(&spec, engine, job)?;
            let store = Store::create_or_open(&out, &spec)?;
            spec.save(&out.join(SPEC_FILE))?;
            let options = RunOptions::new(batch, Shard::ALL);
            let summary = run_screen(
                &spec,
                &contexts,
                &store,
                &engine,
                options,
                job.core(),
                &mut |s| {
                    job.send(s.clone());
                },
            )?;
            if summary.cancelled {
                return Err(JobError::Cancelled);
            }
            let results = if summary.complete {
                job.set(1.0, "computing the report");
                Some(ScreenResults::load(&store)?)
            } else {
                None
            };
            Ok(RunDone { summary, results })
        },
    )
}

/// Reopens a results folder: its spec, how far it got, and its results when complete.
pub fn spawn_open(jobs: &mut Jobs, dir: PathBuf) -> JobHandle<Opened> {
    jobs.spawn(
        format!("Opening the screen in {}", dir.display()),
        Lane::Cpu,
        move |_: &JobContext<()>| open(&dir),
    )
}

fn open(dir: &Path) -> Result<Opened, JobError> {
    let store = Store::open(dir)?;
    let finished = store.finished()?.len();
    let results = if dir.join(RESULTS).exists() {
        Some(ScreenResults::load(&store)?)
    } else {
        None
    };
    Ok(Opened {
        dir: dir.to_path_buf(),
        spec: store.manifest().spec.clone(),
        finished,
        results,
    })
}

/// Measures the time per unit of `plan`: two batches of units spread over the screen,
/// generated into a scratch folder; the second batch's time (the first pays for warm-up)
/// divided by its units. The output folder is not touched.
pub fn spawn_estimate(jobs: &mut Jobs, plan: Plan) -> JobHandle<Estimate> {
    jobs.spawn(
        "Estimating the screen's run time",
        Lane::Accelerator,
        move |job: &JobContext<()>| {
            let Plan {
                spec,
                out,
                engine,
                batch,
            } = plan;
            let engine = engine_of(&spec, engine, job)?;
            let contexts = load_contexts(&spec, job.core())?;
            let units: usize = spec
                .contexts
                .iter()
                .zip(&contexts)
                .map(|(c, l)| l.sentences.len() * c.replicates)
                .sum::<usize>()
                * spec.perturbations.len();
            let done = Store::open(&out)
                .ok()
                .filter(|s| s.manifest().spec_hash == spec.hash())
                .and_then(|s| s.finished().ok())
                .map_or(0, |f| f.len());
            let scratch =
                tempfile::tempdir().map_err(|e| format!("cannot create a scratch folder: {e}"))?;
            let store = Store::create_or_open(&scratch.path().join("estimate"), &spec)?;
            let shard = Shard {
                index: 1,
                count: (units / (2 * batch)).max(1),
            };
            let started = Instant::now();
            let mut marks: Vec<(Instant, usize)> = Vec::new();
            job.set(0.0, "timing two batches");
            let summary = run_screen(
                &spec,
                &contexts,
                &store,
                &engine,
                RunOptions::new(batch, shard),
                job.core(),
                &mut |s| marks.push((Instant::now(), s.done_now)),
            )?;
            if summary.cancelled {
                return Err(JobError::Cancelled);
            }
            let (seconds, measured) = match marks.as_slice() {
                [.., (t1, n1), (t2, n2)] => (t2.duration_since(*t1).as_secs_f64(), n2 - n1),
                [(t1, n1)] => (t1.duration_since(started).as_secs_f64(), *n1),
                [] => return Err(JobError::Failed("the screen has no unit to time".into())),
            };
            Ok(Estimate {
                units,
                done,
                seconds_per_unit: seconds / measured.max(1) as f64,
                measured,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_read_in_minutes() {
        assert_eq!(about(5.0), "about 1 min");
        assert_eq!(about(61.0), "about 2 min");
        assert_eq!(about(7300.0), "about 2 h 2 min");
        let e = Estimate {
            units: 100,
            done: 40,
            seconds_per_unit: 2.0,
            measured: 8,
        };
        assert_eq!(
            e.describe(),
            "about 2 min (2.00 s per unit, measured on 8 units; 60 of 100 units to run)"
        );
    }
}

//! Long-running work off the UI thread: worker threads with progress, cancellation and errors.
//!
//! A job is a closure run on its own thread. It receives a [`Progress`] to report a fraction and a
//! message and to poll for cancellation; it returns a [`JobOutput`] or an error message. The UI
//! polls [`Jobs::poll`] once per frame and shows [`Jobs::running`] with a progress bar and a
//! cancel button (see `panels::jobs`).

use std::sync::mpsc::{Receiver, Sender, channel};

use c2s_core::dataset::Dataset;

/// Progress reporting and cancellation shared between a job and the UI: the core's
/// [`c2s_core::Progress`] (so core functions report into it directly) plus a repaint request.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    core: c2s_core::Progress,
    repaint: Option<egui::Context>,
}

impl Progress {
    /// A progress handle that asks `ctx` to repaint whenever it changes.
    pub fn new(repaint: Option<egui::Context>) -> Self {
        Self {
            core: c2s_core::Progress::new(),
            repaint,
        }
    }

    /// The core handle, to pass to `c2s_core` functions.
    pub fn core(&self) -> &c2s_core::Progress {
        &self.core
    }

    /// Reports the fraction done (clamped to `[0, 1]`) and what is happening.
    pub fn set(&self, fraction: f32, message: impl Into<String>) {
        let message = message.into();
        if self.core.stage() != message {
            self.core.set_stage(message);
        }
        self.core.set_fraction(fraction);
        if let Some(ctx) = &self.repaint {
            ctx.request_repaint();
        }
    }

    /// Fraction done in `[0, 1]`.
    pub fn fraction(&self) -> f32 {
        self.core.fraction()
    }

    /// The latest progress message.
    pub fn message(&self) -> String {
        self.core.stage()
    }

    /// Asks the job to stop at its next check.
    pub fn cancel(&self) {
        self.core.cancel();
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.core.is_cancelled()
    }

    /// `Err(JobError::Cancelled)` when cancellation was requested; call it inside loops.
    pub fn check(&self) -> Result<(), JobError> {
        if self.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Why a job produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The user cancelled it.
    Cancelled,
    /// It failed; the message is meant for the user.
    Failed(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Cancelled => write!(f, "cancelled"),
            JobError::Failed(message) => write!(f, "{message}"),
        }
    }
}

impl From<c2s_core::Error> for JobError {
    fn from(e: c2s_core::Error) -> Self {
        match e {
            c2s_core::Error::Cancelled => JobError::Cancelled,
            other => JobError::Failed(other.to_string()),
        }
    }
}

impl From<String> for JobError {
    fn from(message: String) -> Self {
        JobError::Failed(message)
    }
}

/// What a finished job hands back to the UI.
#[derive(Debug)]
pub enum JobOutput {
    /// A dataset was loaded or generated.
    Dataset(Box<Dataset>),
    /// Embeddings were computed for the dataset with this id; the last one is shown.
    Embeddings {
        /// Which open dataset they belong to.
        dataset_id: u64,
        /// The new embeddings (e.g. the PCA, then the UMAP computed from it).
        embeddings: Vec<c2s_core::dataset::Embedding>,
    },
    /// A gene's expression per cell, to colour dataset `dataset_id` by.
    GeneValues {
        /// Which open dataset it belongs to.
        dataset_id: u64,
        /// The gene.
        gene: String,
        /// One value per cell.
        values: Vec<f32>,
    },
    /// Something was written; the message says what and where.
    Written(String),
}

/// A job that is still running.
#[derive(Debug)]
pub struct RunningJob {
    /// Unique id.
    pub id: u64,
    /// What the job does, for the UI.
    pub title: String,
    /// Its progress and cancel flag.
    pub progress: Progress,
}

/// A job that has ended.
#[derive(Debug)]
pub struct FinishedJob {
    /// Id of the job.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// What it produced.
    pub result: Result<JobOutput, JobError>,
}

/// All jobs of the app.
#[derive(Debug)]
pub struct Jobs {
    next_id: u64,
    running: Vec<RunningJob>,
    sender: Sender<FinishedJob>,
    receiver: Receiver<FinishedJob>,
    repaint: Option<egui::Context>,
}

impl Default for Jobs {
    fn default() -> Self {
        let (sender, receiver) = channel();
        Self {
            next_id: 1,
            running: Vec::new(),
            sender,
            receiver,
            repaint: None,
        }
    }
}

impl Jobs {
    /// Sets the context to wake when a job reports progress or ends.
    pub fn set_repaint_context(&mut self, ctx: egui::Context) {
        self.repaint = Some(ctx);
    }

    /// Starts `work` on a new thread and returns the job id.
    pub fn spawn(
        &mut self,
        title: impl Into<String>,
        work: impl FnOnce(&Progress) -> Result<JobOutput, JobError> + Send + 'static,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let title = title.into();
        let progress = Progress::new(self.repaint.clone());
        let sender = self.sender.clone();
        let repaint = self.repaint.clone();
        let worker_progress = progress.clone();
        let worker_title = title.clone();
        std::thread::Builder::new()
            .name(format!("job-{id}"))
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    work(&worker_progress)
                }))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(JobError::Failed(format!("internal error: {what}")))
                });
                let result = match result {
                    Ok(_) if worker_progress.is_cancelled() => Err(JobError::Cancelled),
                    other => other,
                };
                let _ = sender.send(FinishedJob {
                    id,
                    title: worker_title,
                    result,
                });
                if let Some(ctx) = repaint {
                    ctx.request_repaint();
                }
            })
            .expect("spawning a worker thread");
        self.running.push(RunningJob {
            id,
            title,
            progress,
        });
        id
    }

    /// Jobs still running, oldest first.
    pub fn running(&self) -> &[RunningJob] {
        &self.running
    }

    /// Whether any job is running.
    pub fn is_busy(&self) -> bool {
        !self.running.is_empty()
    }

    /// Requests cancellation of job `id`.
    pub fn cancel(&self, id: u64) {
        if let Some(job) = self.running.iter().find(|j| j.id == id) {
            job.progress.cancel();
        }
    }

    /// Collects the jobs that ended since the last call.
    pub fn poll(&mut self) -> Vec<FinishedJob> {
        let finished: Vec<FinishedJob> = self.receiver.try_iter().collect();
        self.running
            .retain(|job| !finished.iter().any(|f| f.id == job.id));
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(jobs: &mut Jobs) -> FinishedJob {
        loop {
            if let Some(done) = jobs.poll().pop() {
                return done;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn job_result_comes_back() {
        let mut jobs = Jobs::default();
        jobs.spawn("ok", |p| {
            p.set(0.5, "half");
            Ok(JobOutput::Written("done".into()))
        });
        let done = wait_for(&mut jobs);
        assert!(matches!(done.result, Ok(JobOutput::Written(ref m)) if m == "done"));
        assert!(!jobs.is_busy());
    }

    #[test]
    fn cancel_stops_a_looping_job() {
        let mut jobs = Jobs::default();
        let id = jobs.spawn("loop", |p| {
            loop {
                p.check()?;
                std::thread::yield_now();
            }
        });
        jobs.cancel(id);
        assert_eq!(wait_for(&mut jobs).result.unwrap_err(), JobError::Cancelled);
    }

    #[test]
    fn panics_become_errors() {
        let mut jobs = Jobs::default();
        jobs.spawn("boom", |_| panic!("boom"));
        let err = wait_for(&mut jobs).result.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }
}

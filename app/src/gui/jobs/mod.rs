//! Long-running work off the UI thread: typed jobs with progress, partial results, cancellation
//! and clear errors, in two lanes.
//!
//! [`Jobs::spawn`] runs a closure and hands back a [`JobHandle`] owned by whoever started it (a
//! view, a panel). The closure gets a [`JobContext`]: report progress, check for cancellation,
//! stream partial results (tokens, rows, loss points). The owner polls its handle each frame;
//! dropping the handle cancels the job. Jobs on [`Lane::Cpu`] run at once, each on its own thread;
//! jobs on [`Lane::Accelerator`] (model inference, training) queue and run one at a time, so two
//! never fight over device memory. Every job is listed, with its status, in [`Jobs::records`]
//! for the status bar and the Jobs tab.

mod handle;
mod lane;
mod progress;
mod record;

pub use handle::{JobContext, JobHandle};
pub use progress::Progress;
pub use record::{JobRecord, Outcome, Status};

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};

use crate::memory::KeepFreedMemory;
use lane::AcceleratorLane;

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// CPU work (reading, embeddings, exports): runs at once, in parallel with other jobs.
    Cpu,
    /// Work on the model device, whichever it is (loading, inference, training): one at a
    /// time, in queue order.
    Accelerator,
}

/// How many ended jobs stay listed.
const KEEP_ENDED: usize = 50;

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

/// All jobs of the app.
#[derive(Debug)]
pub struct Jobs {
    next_id: u64,
    records: Vec<Arc<JobRecord>>,
    reported: HashSet<u64>,
    lane: AcceleratorLane,
    repaint: Option<egui::Context>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self {
            next_id: 1,
            records: Vec::new(),
            reported: HashSet::new(),
            lane: AcceleratorLane::default(),
            repaint: None,
        }
    }
}

impl Jobs {
    /// Sets the context to wake when a job reports progress or ends.
    pub fn set_repaint_context(&mut self, ctx: egui::Context) {
        self.repaint = Some(ctx);
    }

    /// Starts `work` in `lane` and returns its handle.
    pub fn spawn<O, P, F>(
        &mut self,
        title: impl Into<String>,
        lane: Lane,
        work: F,
    ) -> JobHandle<O, P>
    where
        O: Send + 'static,
        P: Send + 'static,
        F: FnOnce(&JobContext<P>) -> Result<O, JobError> + Send + 'static,
    {
        let id = self.next_id;
        self.next_id += 1;
        let progress = Progress::new(self.repaint.clone());
        let record = Arc::new(JobRecord::new(id, title.into(), lane, progress.clone()));
        let (partial_tx, partial_rx) = channel();
        let (result_tx, result_rx) = channel();
        let context = JobContext::new(progress, partial_tx);
        let worker_record = record.clone();
        let body = move |skip: bool| run(&worker_record, &context, work, &result_tx, skip);
        match lane {
            Lane::Cpu => {
                let spawned = std::thread::Builder::new()
                    .name(format!("job-{id}"))
                    .spawn(move || body(false));
                if let Err(e) = spawned {
                    record.end(Outcome::Failed(format!(
                        "cannot start a worker thread: {e}"
                    )));
                }
            }
            // Model work frees each step's activations and allocates the same sizes again.
            Lane::Accelerator => self.lane.push(
                id,
                Box::new(move |skip| {
                    let _memory = KeepFreedMemory::start();
                    body(skip)
                }),
            ),
        }
        self.records.push(record.clone());
        JobHandle::new(record, partial_rx, result_rx)
    }

    /// Every job still listed: queued, running and recently ended, oldest first.
    pub fn records(&self) -> &[Arc<JobRecord>] {
        &self.records
    }

    /// Jobs that have not ended, oldest first.
    pub fn active(&self) -> impl Iterator<Item = &Arc<JobRecord>> {
        self.records.iter().filter(|r| !r.is_ended())
    }

    /// Whether any job is queued or running.
    pub fn is_busy(&self) -> bool {
        self.active().next().is_some()
    }

    /// Ids of the accelerator jobs waiting, next first.
    pub fn queued(&self) -> Vec<u64> {
        self.lane.queued()
    }

    /// Moves queued job `id` to position `to` of the accelerator queue.
    pub fn move_in_queue(&self, id: u64, to: usize) {
        self.lane.move_to(id, to);
    }

    /// Cancels job `id`: a queued job leaves the queue, a running one is asked to stop.
    pub fn cancel(&self, id: u64) {
        if self.lane.cancel_queued(id) {
            return;
        }
        if let Some(r) = self.records.iter().find(|r| r.id == id) {
            r.progress.cancel();
        }
    }

    /// Jobs that ended since the last call (for notices); forgets the oldest ended ones.
    pub fn take_ended(&mut self) -> Vec<Arc<JobRecord>> {
        let ended: Vec<Arc<JobRecord>> = self
            .records
            .iter()
            .filter(|r| r.is_ended() && !self.reported.contains(&r.id))
            .cloned()
            .collect();
        self.reported.extend(ended.iter().map(|r| r.id));
        let n_ended = self.records.iter().filter(|r| r.is_ended()).count();
        let mut to_drop = n_ended.saturating_sub(KEEP_ENDED);
        let reported = &mut self.reported;
        self.records.retain(|r| {
            if to_drop > 0 && r.is_ended() && reported.contains(&r.id) {
                to_drop -= 1;
                reported.remove(&r.id);
                false
            } else {
                true
            }
        });
        ended
    }
}

/// Runs one job body on the current thread and reports how it ended.
fn run<O, P, F>(
    record: &JobRecord,
    context: &JobContext<P>,
    work: F,
    result: &Sender<Result<O, JobError>>,
    skip: bool,
) where
    F: FnOnce(&JobContext<P>) -> Result<O, JobError>,
{
    let outcome = if skip || record.progress.is_cancelled() {
        Err(JobError::Cancelled)
    } else {
        record.start();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(context))).unwrap_or_else(
            |panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(JobError::Failed(format!("internal error: {what}")))
            },
        )
    };
    let ended = match &outcome {
        Ok(_) if record.progress.is_cancelled() => Outcome::FinishedDespiteCancel,
        Ok(_) => Outcome::Finished,
        Err(JobError::Cancelled) => Outcome::Cancelled,
        Err(JobError::Failed(m)) => Outcome::Failed(m.clone()),
    };
    // The result goes first, so an owner that sees the job ended finds its result waiting.
    let _ = result.send(outcome);
    record.end(ended);
    record.progress.repaint();
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A job in `lane` that returns `value` once `gate` opens (to hold a lane, or to finish
    /// on cue).
    fn gated<O: Send + 'static>(
        jobs: &mut Jobs,
        lane: Lane,
        value: O,
    ) -> (JobHandle<O>, Arc<AtomicBool>) {
        let gate = Arc::new(AtomicBool::new(false));
        let g = gate.clone();
        let handle = jobs.spawn("gated", lane, move |_: &JobContext<()>| {
            while !g.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            Ok(value)
        });
        (handle, gate)
    }

    /// Polls `handle` until its result arrives, collecting its partials.
    fn finish<O, P>(handle: &mut JobHandle<O, P>) -> (Vec<P>, Result<O, JobError>) {
        let mut partials = Vec::new();
        loop {
            let polled = handle.poll();
            partials.extend(polled.partials);
            if let Some(r) = polled.result {
                return (partials, r);
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn result_and_partials_come_back_in_order() {
        let mut jobs = Jobs::default();
        let mut h = jobs.spawn("count", Lane::Cpu, |cx: &JobContext<u32>| {
            for k in 0..100 {
                cx.send(k);
            }
            Ok("done")
        });
        let (partials, result) = finish(&mut h);
        assert_eq!(partials, (0..100).collect::<Vec<_>>());
        assert_eq!(result.unwrap(), "done");
        assert!(h.poll().result.is_none(), "the result comes once");
    }

    #[test]
    fn cancel_stops_a_looping_job_and_keeps_its_partials() {
        let mut jobs = Jobs::default();
        let mut h: JobHandle<(), u32> = jobs.spawn("loop", Lane::Cpu, |cx: &JobContext<u32>| {
            cx.send(1);
            loop {
                cx.check()?;
                std::thread::yield_now();
            }
        });
        // Cancel once it runs (a job cancelled while waiting never starts).
        let mut partials = Vec::new();
        while partials.is_empty() {
            partials.extend(h.poll().partials);
            std::thread::yield_now();
        }
        h.cancel();
        let (rest, result) = finish(&mut h);
        partials.extend(rest);
        assert_eq!(result.unwrap_err(), JobError::Cancelled);
        assert_eq!(partials, vec![1]);
        let ended = jobs.take_ended();
        assert!(matches!(
            ended[0].status(),
            Status::Ended(Outcome::Cancelled, _)
        ));
    }

    #[test]
    fn panics_become_errors() {
        let mut jobs = Jobs::default();
        let mut h: JobHandle<()> =
            jobs.spawn("boom", Lane::Cpu, |_: &JobContext<()>| panic!("boom"));
        let err = finish(&mut h).1.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn a_result_that_beat_the_cancel_is_kept_and_said_so() {
        let mut jobs = Jobs::default();
        let (mut h, gate) = gated(&mut jobs, Lane::Cpu, 42);
        while !matches!(jobs.records()[0].status(), Status::Running(_)) {
            std::thread::yield_now();
        }
        h.cancel();
        gate.store(true, Ordering::Release);
        assert_eq!(finish(&mut h).1.unwrap(), 42);
        while jobs.is_busy() {
            std::thread::yield_now();
        }
        let ended = jobs.take_ended();
        assert!(matches!(
            ended[0].status(),
            Status::Ended(Outcome::FinishedDespiteCancel, _)
        ));
    }

    #[test]
    fn accelerator_jobs_run_one_at_a_time_in_queue_order() {
        let mut jobs = Jobs::default();
        let (mut first, gate) = gated(&mut jobs, Lane::Accelerator, 1);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut spawn = |name: &'static str| {
            let order = order.clone();
            jobs.spawn(name, Lane::Accelerator, move |_: &JobContext<()>| {
                order.lock().unwrap().push(name);
                Ok(())
            })
        };
        let mut second = spawn("second");
        let mut third = spawn("third");
        // Both wait behind the first; the third is moved ahead of the second.
        while jobs.queued().len() != 2 {
            std::thread::yield_now();
        }
        assert_eq!(jobs.queued(), vec![second.id(), third.id()]);
        jobs.move_in_queue(third.id(), 0);
        assert_eq!(jobs.queued(), vec![third.id(), second.id()]);
        assert!(
            order.lock().unwrap().is_empty(),
            "nothing ran beside the first job"
        );
        gate.store(true, Ordering::Release);
        assert_eq!(finish(&mut first).1.unwrap(), 1);
        finish(&mut third).1.unwrap();
        finish(&mut second).1.unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["third", "second"]);
    }

    #[test]
    fn cancelling_a_queued_job_takes_it_out_of_the_queue() {
        let mut jobs = Jobs::default();
        let (mut first, gate) = gated(&mut jobs, Lane::Accelerator, ());
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let mut waiting = jobs.spawn("waiting", Lane::Accelerator, move |_: &JobContext<()>| {
            r.store(true, Ordering::Release);
            Ok(())
        });
        while jobs.queued() != vec![waiting.id()] {
            std::thread::yield_now();
        }
        jobs.cancel(waiting.id());
        assert!(jobs.queued().is_empty());
        assert_eq!(finish(&mut waiting).1.unwrap_err(), JobError::Cancelled);
        gate.store(true, Ordering::Release);
        finish(&mut first).1.unwrap();
        assert!(
            !ran.load(Ordering::Acquire),
            "a cancelled queued job never runs"
        );
    }

    #[test]
    fn dropping_the_handle_cancels_the_job_quietly() {
        let mut jobs = Jobs::default();
        let h: JobHandle<()> = jobs.spawn("stale", Lane::Cpu, |cx: &JobContext<()>| {
            loop {
                cx.check()?;
                std::thread::yield_now();
            }
        });
        let record = jobs.records()[0].clone();
        drop(h);
        while !record.is_ended() {
            std::thread::yield_now();
        }
        assert!(record.is_abandoned());
        assert!(matches!(
            record.status(),
            Status::Ended(Outcome::Cancelled, _)
        ));
    }
}

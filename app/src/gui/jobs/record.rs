//! The status of one job as the Jobs tab and the status bar show it: queued, running, or ended
//! with an outcome, with the times needed for an ETA.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Lane, Progress};

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It returned its result.
    Finished,
    /// It returned its result although a cancel had been asked for: the cancel came too late,
    /// and the result was kept.
    FinishedDespiteCancel,
    /// It stopped on a cancel (what it had streamed before stays with its panel).
    Cancelled,
    /// It failed; the message is meant for the user.
    Failed(String),
}

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Waiting in its lane.
    Queued,
    /// Running since this instant.
    Running(Instant),
    /// Ended after running for this long.
    Ended(Outcome, Duration),
}

/// One job's title, lane, progress and status; shared by the worker, the handle and the UI.
#[derive(Debug)]
pub struct JobRecord {
    /// Unique id.
    pub id: u64,
    /// What the job does, for the UI.
    pub title: String,
    /// Where it runs.
    pub lane: Lane,
    /// Its progress and cancel flag.
    pub progress: Progress,
    status: Mutex<Status>,
    /// Set when the owner dropped its handle (a view closed, a newer request replaced it): the
    /// job was cancelled without the user asking, so no notice is shown for it.
    abandoned: AtomicBool,
}

impl JobRecord {
    /// A queued job.
    pub fn new(id: u64, title: String, lane: Lane, progress: Progress) -> Self {
        Self {
            id,
            title,
            lane,
            progress,
            status: Mutex::new(Status::Queued),
            abandoned: AtomicBool::new(false),
        }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or(Status::Queued)
    }

    /// Whether the job has ended.
    pub fn is_ended(&self) -> bool {
        matches!(self.status(), Status::Ended(..))
    }

    /// Marks the job as started now.
    pub(super) fn start(&self) {
        if let Ok(mut s) = self.status.lock() {
            *s = Status::Running(Instant::now());
        }
    }

    /// Marks the job as ended with `outcome`.
    pub(super) fn end(&self, outcome: Outcome) {
        if let Ok(mut s) = self.status.lock() {
            let ran = match *s {
                Status::Running(since) => since.elapsed(),
                _ => Duration::ZERO,
            };
            *s = Status::Ended(outcome, ran);
        }
    }

    /// Cancels the job because its owner no longer wants the result.
    pub(super) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
        self.progress.cancel();
    }

    /// Whether the owner dropped the job (see [`JobRecord::abandon`]).
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Estimated time left, from the fraction done so far (once past 2 %).
    pub fn eta(&self) -> Option<Duration> {
        let Status::Running(since) = self.status() else {
            return None;
        };
        eta(since.elapsed(), self.progress.fraction())
    }
}

/// Time left when `fraction` of the work took `elapsed`: `None` until the fraction says enough.
pub fn eta(elapsed: Duration, fraction: f32) -> Option<Duration> {
    if !(0.02..1.0).contains(&fraction) {
        return None;
    }
    let f = f64::from(fraction);
    Some(Duration::from_secs_f64(
        elapsed.as_secs_f64() * (1.0 - f) / f,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_scales_the_elapsed_time_by_what_is_left() {
        let e = eta(Duration::from_secs(10), 0.25).unwrap();
        assert!((e.as_secs_f64() - 30.0).abs() < 1e-9);
        assert_eq!(eta(Duration::from_secs(10), 0.0), None);
        assert_eq!(eta(Duration::from_secs(10), 1.0), None);
    }
}

//! The owner's side of a job: its partial results as they stream, its final result, and cancel.
//! Dropping the handle cancels the job, so whatever owns it (a view, a panel) takes its jobs
//! with it when it goes.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use super::record::JobRecord;
use super::{JobError, Progress};

/// What a job's closure gets: its [`Progress`] (through `Deref`, so it passes straight to
/// functions taking `&Progress`) and a way to stream partial results to its owner.
#[derive(Debug)]
pub struct JobContext<P> {
    progress: Progress,
    partials: Sender<P>,
}

impl<P> JobContext<P> {
    pub(super) fn new(progress: Progress, partials: Sender<P>) -> Self {
        Self { progress, partials }
    }

    /// Streams a partial result (a token, a batch of rows, a loss point) to the job's owner.
    /// Returns `false` when the owner is gone, so the job may stop.
    pub fn send(&self, partial: P) -> bool {
        let delivered = self.partials.send(partial).is_ok();
        self.progress.repaint();
        delivered
    }
}

impl<P> std::ops::Deref for JobContext<P> {
    type Target = Progress;
    fn deref(&self) -> &Progress {
        &self.progress
    }
}

/// What [`JobHandle::poll`] found since the last call.
#[derive(Debug)]
pub struct Polled<O, P> {
    /// Partial results streamed since the last poll, in order.
    pub partials: Vec<P>,
    /// The final result, once (every partial sent before it is in `partials`).
    pub result: Option<Result<O, JobError>>,
}

/// A typed handle on a job producing `O`, streaming `P`s on the way.
#[derive(Debug)]
pub struct JobHandle<O, P = ()> {
    record: Arc<JobRecord>,
    partials: Receiver<P>,
    result: Receiver<Result<O, JobError>>,
    done: bool,
}

impl<O, P> JobHandle<O, P> {
    pub(super) fn new(
        record: Arc<JobRecord>,
        partials: Receiver<P>,
        result: Receiver<Result<O, JobError>>,
    ) -> Self {
        Self {
            record,
            partials,
            result,
            done: false,
        }
    }

    /// The job's id (as listed in the Jobs tab).
    pub fn id(&self) -> u64 {
        self.record.id
    }

    /// Asks the job to stop; what it streamed so far stays with the owner.
    pub fn cancel(&self) {
        self.record.progress.cancel();
    }

    /// Takes the partial results streamed so far and, once the job has ended, its result.
    pub fn poll(&mut self) -> Polled<O, P> {
        // The result is read first: the worker sent every partial before it, so draining the
        // partials afterwards cannot miss one.
        let result = if self.done {
            None
        } else {
            match self.result.try_recv() {
                Ok(r) => Some(r),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Err(JobError::Failed(
                    "the job ended without a result".into(),
                ))),
            }
        };
        if result.is_some() {
            self.done = true;
        }
        Polled {
            partials: self.partials.try_iter().collect(),
            result,
        }
    }
}

impl<O, P> Drop for JobHandle<O, P> {
    fn drop(&mut self) {
        if !self.done && !self.record.is_ended() {
            self.record.abandon();
        }
    }
}

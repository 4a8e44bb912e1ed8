//! The accelerator lane: jobs that use the model device (inference, training) run one at a time,
//! in queue order, on one worker thread, so two of them never compete for device memory. The
//! queue can be reordered and a queued job can be taken out before it starts.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A queued job's body; the argument says whether it was cancelled before it could start.
pub type LaneWork = Box<dyn FnOnce(bool) + Send>;

struct Queued {
    id: u64,
    work: LaneWork,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<LaneQueue>,
    wake: Condvar,
}

#[derive(Default)]
struct LaneQueue {
    items: VecDeque<Queued>,
    closed: bool,
    worker_started: bool,
}

/// The queue of the accelerator lane and its worker thread.
#[derive(Default)]
pub struct AcceleratorLane {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AcceleratorLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceleratorLane")
            .field("queued", &self.queued())
            .finish()
    }
}

impl AcceleratorLane {
    fn lock(&self) -> MutexGuard<'_, LaneQueue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues job `id`; it starts when every job before it has ended.
    pub fn push(&self, id: u64, work: LaneWork) {
        let mut q = self.lock();
        q.items.push_back(Queued { id, work });
        if !q.worker_started {
            q.worker_started = true;
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("accelerator lane".into())
                .spawn(move || worker(&shared));
            if spawned.is_err() {
                // No thread: run nothing, report every queued job as cancelled.
                q.worker_started = false;
                let items: Vec<Queued> = q.items.drain(..).collect();
                drop(q);
                for item in items {
                    (item.work)(true);
                }
                return;
            }
        }
        self.shared.wake.notify_one();
    }

    /// Ids of the jobs waiting, next first.
    pub fn queued(&self) -> Vec<u64> {
        self.lock().items.iter().map(|q| q.id).collect()
    }

    /// Moves queued job `id` to position `to` in the queue (clamped); `false` if it is not queued.
    pub fn move_to(&self, id: u64, to: usize) -> bool {
        let mut q = self.lock();
        let Some(from) = q.items.iter().position(|x| x.id == id) else {
            return false;
        };
        let item = q.items.remove(from).expect("index from position");
        let to = to.min(q.items.len());
        q.items.insert(to, item);
        true
    }

    /// Takes queued job `id` out of the queue and reports it cancelled; `false` if it is not
    /// queued (it may be running already).
    pub fn cancel_queued(&self, id: u64) -> bool {
        let item = {
            let mut q = self.lock();
            let Some(k) = q.items.iter().position(|x| x.id == id) else {
                return false;
            };
            q.items.remove(k)
        };
        if let Some(item) = item {
            (item.work)(true);
        }
        true
    }
}

impl Drop for AcceleratorLane {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

/// Runs queued jobs in order until the lane is closed and empty.
fn worker(shared: &Shared) {
    loop {
        let (item, closed) = {
            let mut q = shared
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            while q.items.is_empty() && !q.closed {
                q = shared
                    .wake
                    .wait(q)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            (q.items.pop_front(), q.closed)
        };
        match item {
            // After the app closed, queued work is reported as cancelled instead of run.
            Some(item) => (item.work)(closed),
            None => return,
        }
    }
}

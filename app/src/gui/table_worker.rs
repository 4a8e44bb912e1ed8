//! Sorting and filtering the obs table off the UI thread.
//!
//! One background thread serves the table. Each request carries a generation number; the thread
//! skips requests that a newer one has replaced (while queued, and between the steps of a
//! running one), and the UI drops any result older than its latest request. The thread keeps
//! the polars frame of the last dataset, so changing the query does not rebuild it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use c2s_core::dataset::Dataset;

use super::table_model::{ObsFrame, Query};

/// What the table asks for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The dataset.
    pub dataset: Arc<Dataset>,
    /// Identifies the dataset's obs contents (view id and obs generation): a new key rebuilds
    /// the frame.
    pub key: (u64, u64),
    /// Filter, sort and selection.
    pub query: Query,
}

/// The rows of a query and the frame they index into.
#[derive(Debug, Clone)]
pub struct Rows {
    /// The frame.
    pub frame: Arc<ObsFrame>,
    /// Cell indices in display order.
    pub order: Vec<usize>,
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The request's generation.
    pub generation: u64,
    /// The request's dataset key.
    pub key: (u64, u64),
    /// The rows, or why there are none (a bad filter).
    pub rows: Result<Rows, String>,
}

/// The UI's handle on the table thread.
#[derive(Debug)]
pub struct TableWorker {
    requests: Option<Sender<(u64, Request)>>,
    outcomes: (Sender<Outcome>, Receiver<Outcome>),
    latest: Arc<AtomicU64>,
    repaint: Option<egui::Context>,
}

impl Default for TableWorker {
    fn default() -> Self {
        Self {
            requests: None,
            outcomes: channel(),
            latest: Arc::new(AtomicU64::new(0)),
            repaint: None,
        }
    }
}

impl TableWorker {
    /// Sets the context woken when a result is ready.
    pub fn set_repaint_context(&mut self, ctx: egui::Context) {
        self.repaint = Some(ctx);
    }

    /// Sends `request`, replacing any earlier one still pending; returns its generation.
    pub fn request(&mut self, request: Request) -> u64 {
        let generation = self.latest.fetch_add(1, Ordering::SeqCst) + 1;
        let mut message = (generation, request);
        // Start the thread on first use, and again should it ever have died.
        for _ in 0..2 {
            let sender = self.requests.get_or_insert_with(|| {
                spawn(
                    self.latest.clone(),
                    self.outcomes.0.clone(),
                    self.repaint.clone(),
                )
            });
            match sender.send(message) {
                Ok(()) => break,
                Err(std::sync::mpsc::SendError(back)) => {
                    message = back;
                    self.requests = None;
                }
            }
        }
        generation
    }

    /// Generation of the latest request (0 before the first).
    pub fn latest(&self) -> u64 {
        self.latest.load(Ordering::SeqCst)
    }

    /// The answer to the latest request, once it is ready (older answers are dropped).
    pub fn poll(&self) -> Option<Outcome> {
        let latest = self.latest();
        self.outcomes
            .1
            .try_iter()
            .filter(|o| o.generation == latest)
            .last()
    }
}

fn spawn(
    latest: Arc<AtomicU64>,
    outcomes: Sender<Outcome>,
    repaint: Option<egui::Context>,
) -> Sender<(u64, Request)> {
    let (sender, requests) = channel::<(u64, Request)>();
    std::thread::Builder::new()
        .name("obs-table".into())
        .spawn(move || serve(&requests, &latest, &outcomes, repaint.as_ref()))
        .expect("spawning the table thread");
    sender
}

/// The thread's loop: answers the newest request, until the UI drops its sender.
fn serve(
    requests: &Receiver<(u64, Request)>,
    latest: &AtomicU64,
    outcomes: &Sender<Outcome>,
    repaint: Option<&egui::Context>,
) {
    let mut cached: Option<((u64, u64), Arc<ObsFrame>)> = None;
    while let Ok(mut next) = requests.recv() {
        // Skip to the newest queued request.
        while let Ok(newer) = requests.try_recv() {
            next = newer;
        }
        let (generation, request) = next;
        let stale = || latest.load(Ordering::SeqCst) != generation;
        if stale() {
            continue;
        }
        let frame = match &cached {
            Some((key, f)) if *key == request.key => Ok(f.clone()),
            _ => ObsFrame::build(&request.dataset).map(|f| {
                let f = Arc::new(f);
                cached = Some((request.key, f.clone()));
                f
            }),
        };
        let rows = match frame {
            Err(message) => Err(message),
            Ok(frame) => match frame.rows(&request.query, &stale) {
                Ok(None) => continue,
                Ok(Some(order)) => Ok(Rows { frame, order }),
                Err(message) => Err(message),
            },
        };
        let _ = outcomes.send(Outcome {
            generation,
            key: request.key,
            rows,
        });
        if let Some(ctx) = repaint {
            ctx.request_repaint();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::demo;
    use crate::gui::jobs::Progress;

    fn wait(worker: &TableWorker) -> Outcome {
        let started = std::time::Instant::now();
        loop {
            if let Some(o) = worker.poll() {
                return o;
            }
            assert!(started.elapsed().as_secs() < 60, "no answer");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn answers_the_latest_request_only() {
        let dataset = Arc::new(demo::generate(3000, &Progress::default()).unwrap());
        let mut worker = TableWorker::default();
        let request = |filter: &str| Request {
            dataset: dataset.clone(),
            key: (1, 1),
            query: Query {
                filter: filter.into(),
                ..Default::default()
            },
        };
        worker.request(request("cell_type=NK"));
        worker.request(request("cell_type=B"));
        let outcome = wait(&worker);
        assert_eq!(outcome.generation, worker.latest());
        let rows = outcome.rows.unwrap();
        assert!(!rows.order.is_empty());
        assert!(rows.order.iter().all(|&i| rows.frame.text(1, i) == "B"));
        // A bad filter comes back as a message, and the thread keeps serving.
        worker.request(request("nope>1"));
        assert!(wait(&worker).rows.unwrap_err().contains("no column 'nope'"));
        worker.request(request(""));
        assert_eq!(wait(&worker).rows.unwrap().order.len(), 3000);
    }
}

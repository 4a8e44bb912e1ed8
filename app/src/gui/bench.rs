//! Frame-time benchmark of the explorer (not a test), run by `c2s-studio bench-gui`: for each
//! size in turn the app generates a demo dataset, shows it and redraws continuously while
//! panning, then reports frame statistics; the window closes after the last size.
//!
//! Two numbers per frame: the UI pass (building the frame on the CPU: panels, callback, hover)
//! and the interval between frames (everything, including GPU rendering and presentation).
//! Frames are counted once the dataset and its obs table are ready, after [`WARMUP`] frames.

use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// Frames skipped before measuring (pipeline creation, first upload).
pub const WARMUP: usize = 10;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchPlan {
    /// Dataset sizes (cells), measured in this order.
    pub sizes: Vec<usize>,
    /// Frames measured per size, after the warm-up.
    pub frames: usize,
}

/// Summary statistics of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
}

/// Mean, median and 95th percentile of `d` in milliseconds.
pub fn stats(d: &[Duration]) -> Stats {
    let mut ms: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return Stats {
            mean: 0.0,
            median: 0.0,
            p95: 0.0,
        };
    }
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Stats {
        mean: ms.iter().sum::<f64>() / ms.len() as f64,
        median: at(0.5),
        p95: at(0.95),
    }
}

/// The result for one dataset size.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Cells drawn.
    pub n_cells: usize,
    /// Frames measured.
    pub frames: usize,
    /// Interval between frames.
    pub frame_interval: Stats,
    /// CPU time of the UI pass.
    pub ui_pass: Stats,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (i, u) = (self.frame_interval, self.ui_pass);
        write!(
            f,
            "bench-gui cells={} frames={} frame_interval_ms median={:.2} p95={:.2} mean={:.2} | ui_pass_ms median={:.2} p95={:.2} mean={:.2}",
            self.n_cells, self.frames, i.median, i.p95, i.mean, u.median, u.p95, u.mean
        )
    }
}

/// What the benchmark sends back: a report per size, or why it stopped.
pub type BenchMessage = Result<BenchReport, String>;

/// Benchmark progress inside the app.
#[derive(Debug)]
pub struct Bench {
    /// Sizes still to measure; the first is the current one.
    sizes: VecDeque<usize>,
    frames: usize,
    seen: usize,
    last_frame: Option<Instant>,
    intervals: Vec<Duration>,
    ui_passes: Vec<Duration>,
    reports: Sender<BenchMessage>,
}

impl Bench {
    /// A benchmark of `plan` that sends its results to `reports`.
    pub fn new(plan: BenchPlan, reports: Sender<BenchMessage>) -> Self {
        Self {
            sizes: plan.sizes.into(),
            frames: plan.frames,
            seen: 0,
            last_frame: None,
            intervals: Vec::new(),
            ui_passes: Vec::new(),
            reports,
        }
    }

    /// The size being measured; `None` once all are done.
    pub fn current(&self) -> Option<usize> {
        self.sizes.front().copied()
    }

    /// Records one frame whose UI pass took `ui_pass`. When the current size has enough frames,
    /// sends its report, moves on to the next size and returns true.
    pub fn frame(&mut self, ui_pass: Duration) -> bool {
        let now = Instant::now();
        self.seen += 1;
        if self.seen > WARMUP {
            if let Some(last) = self.last_frame {
                self.intervals.push(now - last);
            }
            self.ui_passes.push(ui_pass);
        }
        self.last_frame = Some(now);
        if self.intervals.len() < self.frames {
            return false;
        }
        let report = BenchReport {
            n_cells: self.current().unwrap_or(0),
            frames: self.intervals.len(),
            frame_interval: stats(&self.intervals),
            ui_pass: stats(&self.ui_passes),
        };
        let _ = self.reports.send(Ok(report));
        self.sizes.pop_front();
        self.seen = 0;
        self.last_frame = None;
        self.intervals.clear();
        self.ui_passes.clear();
        true
    }

    /// Stops the benchmark because of `message` (e.g. the dataset could not be generated).
    pub fn fail(&mut self, message: String) {
        let _ = self.reports.send(Err(message));
        self.sizes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_durations() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = stats(&d);
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert_eq!(s.median, 51.0);
        assert_eq!(s.p95, 95.0);
    }

    #[test]
    fn reports_each_size_after_its_frames() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut b = Bench::new(
            BenchPlan {
                sizes: vec![10, 20],
                frames: 5,
            },
            tx,
        );
        // Each frame after the warm-up adds an interval: 5 frames per size.
        let frames_per_size = WARMUP + 5;
        for k in 1..=frames_per_size {
            assert_eq!(b.frame(Duration::from_micros(10)), k == frames_per_size);
        }
        assert_eq!(b.current(), Some(20));
        for _ in 0..frames_per_size {
            b.frame(Duration::from_micros(10));
        }
        assert_eq!(b.current(), None);
        let reports: Vec<BenchReport> = rx.try_iter().map(Result::unwrap).collect();
        assert_eq!(
            reports
                .iter()
                .map(|r| (r.n_cells, r.frames))
                .collect::<Vec<_>>(),
            vec![(10, 5), (20, 5)]
        );
        assert!(
            reports[0]
                .to_string()
                .starts_with("bench-gui cells=10 frames=5 ")
        );
        assert!((reports[0].ui_pass.median - 0.01).abs() < 1e-9);
    }

    #[test]
    fn a_failure_ends_the_benchmark() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut b = Bench::new(
            BenchPlan {
                sizes: vec![10, 20],
                frames: 5,
            },
            tx,
        );
        b.fail("no memory".into());
        assert_eq!(b.current(), None);
        assert_eq!(rx.try_recv().unwrap(), Err("no memory".into()));
    }
}

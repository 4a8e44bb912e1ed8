//! Frame-time benchmark of the explorer (not a test), run by `c2s-studio bench-gui`: for each
//! size in turn the app generates a demo dataset, shows it and redraws continuously while
//! panning, then reports frame statistics; the window closes after the last size.
//!
//! Each size is measured twice: panning alone, then panning while an accelerator-lane job
//! streams tokens ([`STREAM_INTERVAL`] apart) into a text view, as a generation does into the
//! Model tab; the second report says `streaming=yes`.
//!
//! Two numbers per frame: the UI pass (building the frame on the CPU: panels, callback, hover)
//! and the interval between frames (everything, including GPU rendering and presentation).
//! Frames are counted once the dataset and its obs table are ready, after [`WARMUP`] frames.

use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::jobs::{JobContext, JobHandle, Jobs, Lane};

/// Frames skipped before measuring (pipeline creation, first upload).
pub const WARMUP: usize = 10;

/// Time between two streamed tokens in the streaming phase (200 tokens/s, faster than CPU
/// decoding of the C2S models).
pub const STREAM_INTERVAL: Duration = Duration::from_millis(5);

/// Most bytes of streamed text kept on screen (about 800 tokens of gene names).
const STREAM_KEEP: usize = 6_400;

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
    /// Whether a job was streaming tokens into the UI meanwhile.
    pub streaming: bool,
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
            "bench-gui cells={} streaming={} frames={} frame_interval_ms median={:.2} p95={:.2} mean={:.2} | ui_pass_ms median={:.2} p95={:.2} mean={:.2}",
            self.n_cells,
            if self.streaming { "yes" } else { "no" },
            self.frames,
            i.median,
            i.p95,
            i.mean,
            u.median,
            u.p95,
            u.mean
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
    /// Whether the current size is in its streaming phase.
    streaming: bool,
    frames: usize,
    seen: usize,
    last_frame: Option<Instant>,
    intervals: Vec<Duration>,
    ui_passes: Vec<Duration>,
    reports: Sender<BenchMessage>,
    /// The token-streaming job of the streaming phase.
    pub stream: Option<JobHandle<(), String>>,
    /// The text it streamed so far.
    pub streamed: String,
}

impl Bench {
    /// A benchmark of `plan` that sends its results to `reports`.
    pub fn new(plan: BenchPlan, reports: Sender<BenchMessage>) -> Self {
        Self {
            sizes: plan.sizes.into(),
            streaming: false,
            frames: plan.frames,
            seen: 0,
            last_frame: None,
            intervals: Vec::new(),
            ui_passes: Vec::new(),
            reports,
            stream: None,
            streamed: String::new(),
        }
    }

    /// The size being measured; `None` once all are done.
    pub fn current(&self) -> Option<usize> {
        self.sizes.front().copied()
    }

    /// Whether the current size is being measured while a job streams tokens.
    #[cfg(test)]
    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// Records one frame whose UI pass took `ui_pass`. When the current phase has enough
    /// frames, sends its report and moves on: from panning alone to panning while streaming,
    /// then to the next size (and returns true).
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
            streaming: self.streaming,
            frames: self.intervals.len(),
            frame_interval: stats(&self.intervals),
            ui_pass: stats(&self.ui_passes),
        };
        let _ = self.reports.send(Ok(report));
        self.seen = 0;
        self.last_frame = None;
        self.intervals.clear();
        self.ui_passes.clear();
        self.streaming = !self.streaming;
        if self.streaming {
            return false;
        }
        self.sizes.pop_front();
        true
    }

    /// In the streaming phase: starts the streaming job if needed and takes what it streamed;
    /// otherwise stops it.
    pub fn pump_stream(&mut self, jobs: &mut Jobs) {
        if !self.streaming {
            self.stream = None;
            self.streamed.clear();
            return;
        }
        let job = self.stream.get_or_insert_with(|| {
            jobs.spawn(
                "Streaming tokens (benchmark)",
                Lane::Accelerator,
                |cx: &JobContext<String>| {
                    for k in 0u64.. {
                        cx.check()?;
                        cx.send(format!(" GENE{}", k % 997));
                        std::thread::sleep(STREAM_INTERVAL);
                    }
                    Ok(())
                },
            )
        });
        for piece in job.poll().partials {
            self.streamed.push_str(&piece);
        }
        // Keep about one long generation's worth of text (800 tokens), as the Model tab shows.
        if self.streamed.len() > STREAM_KEEP {
            let cut = self.streamed.len() - STREAM_KEEP;
            let cut = (cut..self.streamed.len())
                .find(|&i| self.streamed.is_char_boundary(i))
                .unwrap_or(0);
            self.streamed.drain(..cut);
        }
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
        // Each frame after the warm-up adds an interval: 5 frames per phase, two phases (alone,
        // then while streaming) per size.
        let frames_per_phase = WARMUP + 5;
        for k in 1..=2 * frames_per_phase {
            assert_eq!(b.streaming(), k > frames_per_phase);
            assert_eq!(
                b.frame(Duration::from_micros(10)),
                k == 2 * frames_per_phase
            );
        }
        assert_eq!(b.current(), Some(20));
        for _ in 0..2 * frames_per_phase {
            b.frame(Duration::from_micros(10));
        }
        assert_eq!(b.current(), None);
        let reports: Vec<BenchReport> = rx.try_iter().map(Result::unwrap).collect();
        assert_eq!(
            reports
                .iter()
                .map(|r| (r.n_cells, r.streaming, r.frames))
                .collect::<Vec<_>>(),
            vec![(10, false, 5), (10, true, 5), (20, false, 5), (20, true, 5)]
        );
        assert!(
            reports[1]
                .to_string()
                .starts_with("bench-gui cells=10 streaming=yes frames=5 ")
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

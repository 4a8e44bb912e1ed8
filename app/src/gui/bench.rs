//! Frame-time benchmark of the explorer (not a test): set `C2S_STUDIO_BENCH=<cells>` and run the
//! app; it generates a demo dataset of that size, redraws continuously while panning, prints
//! frame statistics and closes. Example:
//!
//! ```text
//! C2S_STUDIO_BENCH=1000000 xvfb-run -s "-screen 0 1600x1000x24" c2s-studio
//! ```
//!
//! Two numbers per frame: the UI pass (building the frame on the CPU: panels, callback, hover)
//! and the interval between frames (everything, including GPU rendering and presentation).

use std::time::{Duration, Instant};

/// Environment variable that turns the benchmark on (value: number of cells).
pub const BENCH_ENV: &str = "C2S_STUDIO_BENCH";

/// Frames measured after the warm-up.
pub const FRAMES: usize = 120;

/// Frames skipped before measuring (pipeline creation, first upload).
pub const WARMUP: usize = 10;

/// Benchmark progress.
#[derive(Debug, Default)]
pub struct Bench {
    /// Cells in the benchmark dataset.
    pub n_cells: usize,
    seen: usize,
    last_frame: Option<Instant>,
    intervals: Vec<Duration>,
    ui_passes: Vec<Duration>,
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

impl Bench {
    /// The benchmark requested by the environment, if any.
    pub fn from_env() -> Option<Self> {
        let n = std::env::var(BENCH_ENV).ok()?.trim().parse().ok()?;
        Some(Self {
            n_cells: n,
            ..Self::default()
        })
    }

    /// Records one frame whose UI pass took `ui_pass`; returns the report once done.
    pub fn frame(&mut self, ui_pass: Duration) -> Option<String> {
        let now = Instant::now();
        self.seen += 1;
        if self.seen > WARMUP {
            if let Some(last) = self.last_frame {
                self.intervals.push(now - last);
            }
            self.ui_passes.push(ui_pass);
        }
        self.last_frame = Some(now);
        (self.intervals.len() >= FRAMES).then(|| self.report())
    }

    /// The report line.
    pub fn report(&self) -> String {
        let f = stats(&self.intervals);
        let u = stats(&self.ui_passes);
        format!(
            "bench-gui cells={} frames={} frame_interval_ms mean={:.2} median={:.2} p95={:.2} | ui_pass_ms mean={:.2} median={:.2} p95={:.2}",
            self.n_cells,
            self.intervals.len(),
            f.mean,
            f.median,
            f.p95,
            u.mean,
            u.median,
            u.p95
        )
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
    fn bench_reports_after_enough_frames() {
        let mut b = Bench {
            n_cells: 10,
            ..Bench::default()
        };
        let mut report = None;
        for _ in 0..(WARMUP + FRAMES + 1) {
            report = report.or(b.frame(Duration::from_micros(10)));
        }
        assert!(report.unwrap().starts_with("bench-gui cells=10 frames=120"));
    }
}

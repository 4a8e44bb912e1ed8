//! Progress reporting and cooperative cancellation for long operations.

use crate::error::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Shared handle through which a long operation reports progress and learns about cancellation.
///
/// Cloning shares the same state, so a GUI keeps one clone to read and cancel while a worker
/// thread uses another.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    cancelled: Arc<AtomicBool>,
    /// Fraction done in [0, 1], stored as `f32` bits.
    fraction: Arc<AtomicU32>,
    stage: Arc<std::sync::Mutex<String>>,
}

impl Progress {
    /// A fresh, not-cancelled progress handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the operation to stop at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The cancel flag itself, for code that polls an [`AtomicBool`] (the engine's generation
    /// loop): raising [`Progress::cancel`] stops it, with no second flag to keep in sync.
    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.cancelled
    }

    /// Returns `Err(Error::Cancelled)` once cancellation was requested.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Records the fraction done (clamped to [0, 1]).
    pub fn set_fraction(&self, fraction: f32) {
        let f = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.fraction.store(f.to_bits(), Ordering::Relaxed);
    }

    /// The fraction done in [0, 1].
    pub fn fraction(&self) -> f32 {
        f32::from_bits(self.fraction.load(Ordering::Relaxed))
    }

    /// Names the current stage (e.g. "reading X") and resets the fraction.
    pub fn set_stage(&self, stage: impl Into<String>) {
        if let Ok(mut s) = self.stage.lock() {
            *s = stage.into();
        }
        self.set_fraction(0.0);
    }

    /// The current stage's name.
    pub fn stage(&self) -> String {
        self.stage.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

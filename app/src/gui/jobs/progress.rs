//! What a running job shares with the UI: a fraction, a message and the cancel flag.

use std::sync::atomic::AtomicBool;

use super::JobError;

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

    /// The cancel flag, for the engine's generation loop: cancelling the job raises it.
    pub fn cancel_flag(&self) -> &AtomicBool {
        self.core.cancel_flag()
    }

    /// Reports the fraction done (clamped to `[0, 1]`) and what is happening.
    pub fn set(&self, fraction: f32, message: impl Into<String>) {
        let message = message.into();
        if self.core.stage() != message {
            self.core.set_stage(message);
        }
        self.core.set_fraction(fraction);
        self.repaint();
    }

    /// Asks the UI for a new frame (e.g. after sending a partial result).
    pub fn repaint(&self) {
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

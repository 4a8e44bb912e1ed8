//! Native file dialogs (rfd) run on their own thread, so the window keeps drawing while one is
//! open; the panel polls for the chosen path.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError, channel};

/// A dialog that is open, or finished with a path not yet taken.
#[derive(Debug)]
pub struct PendingDialog(Receiver<Option<PathBuf>>);

impl PendingDialog {
    /// Runs `dialog` (e.g. `|| rfd::FileDialog::new().pick_file()`) on a new thread.
    pub fn open(dialog: impl FnOnce() -> Option<PathBuf> + Send + 'static) -> Self {
        let (tx, rx) = channel();
        let _ = std::thread::Builder::new()
            .name("file dialog".into())
            .spawn(move || {
                let _ = tx.send(dialog());
            });
        Self(rx)
    }

    /// `None` while the dialog is open; then once `Some(path)` (or `Some(None)` when it was
    /// dismissed or could not open).
    pub fn poll(&self) -> Option<Option<PathBuf>> {
        match self.0.try_recv() {
            Ok(path) => Some(path),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(None),
        }
    }
}

/// Polls `slot`'s dialog; returns the chosen path once and empties the slot when it closes.
pub fn take_path(slot: &mut Option<PendingDialog>) -> Option<PathBuf> {
    let chosen = slot.as_ref()?.poll()?;
    *slot = None;
    chosen
}

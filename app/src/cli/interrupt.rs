//! Ctrl-C for long CLI runs: the first interrupt asks the running job to stop at its next
//! check (work already stored is kept, and running the command again resumes); a second one
//! ends the process at once.

use c2s_core::Progress;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_interrupt(_: libc::c_int) {
    // Only async-signal-safe calls here: an atomic swap, and `_exit` on the second press.
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe and takes no pointers.
        unsafe { libc::_exit(130) };
    }
}

/// Cancels `progress` when the user presses Ctrl-C, after printing what happens next. Without
/// this, Ctrl-C would kill the process in the middle of a batch; with it, the job stops at its
/// next cancellation check. On platforms without POSIX signals this does nothing.
pub fn cancel_on_interrupt(progress: &Progress, what: &'static str) {
    #[cfg(unix)]
    {
        let handler = on_interrupt as extern "C" fn(libc::c_int);
        // SAFETY: the handler only touches an atomic and calls `_exit`, both signal-safe.
        unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
        let progress = progress.clone();
        std::thread::spawn(move || {
            while !INTERRUPTED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("\ninterrupted: {what} (press Ctrl-C again to quit at once)");
            progress.cancel();
        });
    }
    #[cfg(not(unix))]
    let _ = (progress, what);
}

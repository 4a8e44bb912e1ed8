//! Allocator settings for work that frees and re-allocates the same large buffers.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};
use std::os::raw::c_long;
use std::sync::Mutex;

/// mimalloc's `mi_option_purge_delay`: index 15 of `mi_option_e` in both headers that
/// libmimalloc-sys 0.1.49 builds (v2 and v3); its Rust bindings leave this one out.
const PURGE_DELAY: mi_option_t = 15;

/// How many [`KeepFreedMemory`] values are alive, and the delay the first one found.
static KEPT: Mutex<(usize, c_long)> = Mutex::new((0, 0));

/// While alive, memory the process frees stays with mimalloc for reuse instead of going back to
/// the operating system once mimalloc's purge delay (1 s) has passed. Training frees a step's
/// activations and allocates the same sizes again for the next; each return to the OS made the
/// next step fault in and zero those pages again (`bench-finetune`: 128.6 → 151.0 training
/// tokens/s, peak RSS 2,973 → 3,029 MiB). Inference does the same per step: a prefill of 16 ×
/// 256 tokens (`bench-engine --batch 16 --prompt-len 256 --new-tokens 1`) took 60,361 page faults
/// with the default delay and 12,234 without, and lost a tenth of its time to zeroing pages. The
/// CLI holds one for every command but the converter, the app for every job of its model lane.
/// When the last one is dropped, the delay found by the first comes back.
pub struct KeepFreedMemory(());

impl KeepFreedMemory {
    /// Stops purging until every value is dropped.
    pub fn start() -> Self {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        if kept.0 == 0 {
            // SAFETY: reading and setting an allocator option touches no Rust-owned memory;
            // -1 means "never purge".
            kept.1 = unsafe { mi_option_get(PURGE_DELAY) };
            unsafe { mi_option_set(PURGE_DELAY, -1) };
        }
        kept.0 += 1;
        Self(())
    }
}

impl Drop for KeepFreedMemory {
    fn drop(&mut self) {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        kept.0 -= 1;
        if kept.0 == 0 {
            // SAFETY: as in `start`.
            unsafe { mi_option_set(PURGE_DELAY, kept.1) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_off_while_any_is_kept_and_restored_after() {
        // SAFETY: reading an allocator option.
        let get = || unsafe { mi_option_get(PURGE_DELAY) };
        let first = KeepFreedMemory::start();
        assert_eq!(get(), -1);
        let second = KeepFreedMemory::start();
        drop(first);
        assert_eq!(get(), -1, "another is still alive");
        drop(second);
        // Other tests of this process may be training at the same time.
        let kept = KEPT.lock().unwrap();
        if kept.0 == 0 {
            assert!(get() > 0, "mimalloc's purge delay restored, got {}", get());
        }
    }
}

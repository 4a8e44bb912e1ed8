//! Splitting an `m × rows` product into tiles for the rayon pool.

use super::Epilogue;
use std::ops::Range;

/// Input rows per tile: a tile's inputs stay in cache while its weight rows stream past.
const M_BLOCK: usize = 64;

/// A pointer to the output that tiles write through; each tile writes only its own cells.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub *mut f32);

impl OutPtr {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    #[inline(always)]
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: tiles cover disjoint output cells (see `for_each_tile`), so concurrent writes through
// copies of the pointer never touch the same element, and the buffer outlives the parallel scope.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// Weight rows per panel: panels store 16 rows interleaved, one vector register per step.
pub(super) const PANEL: usize = 16;
/// Panels per register tile.
pub(super) const TILE_PANELS: usize = 2;

/// Where a product writes its `m × rows` outputs, and what runs on each finished tile.
#[derive(Clone, Copy)]
pub(super) struct Output<'a> {
    /// The first of `m × rows` cells, row-major. They may be uninitialised: a tile writes each
    /// of its cells before anything reads it.
    pub ptr: OutPtr,
    /// Run on each input row's cells of a tile right after the tile is written.
    pub epilogue: Option<Epilogue<'a>>,
}

/// Calls `tile(inputs, weight_rows)` for disjoint tiles covering `m × rows`, on the rayon pool,
/// then `out.epilogue` (if any) on the cells the tile wrote, while they are in cache. `tile`
/// must write every cell of its tile in `out`. Weight-row ranges start at multiples of
/// `PANEL × TILE_PANELS`.
pub(super) fn for_each_tile(
    m: usize,
    rows: usize,
    out: Output<'_>,
    tile: impl Fn(Range<usize>, Range<usize>) + Sync,
) {
    use rayon::prelude::*;
    let row_step = PANEL * TILE_PANELS;
    let m_blocks = m.div_ceil(M_BLOCK);
    let threads = rayon::current_num_threads().max(1);
    // Enough tiles for every thread to stay busy while tiles finish unevenly.
    let row_splits = (4 * threads).div_ceil(m_blocks).max(1);
    let chunk = rows
        .div_ceil(row_splits)
        .next_multiple_of(row_step)
        .clamp(row_step, 1024usize.next_multiple_of(row_step));
    let row_chunks = rows.div_ceil(chunk);
    (0..m_blocks * row_chunks).into_par_iter().for_each(|t| {
        let (mb, rc) = (t / row_chunks, t % row_chunks);
        let ms = mb * M_BLOCK..((mb + 1) * M_BLOCK).min(m);
        let rs = rc * chunk..((rc + 1) * chunk).min(rows);
        tile(ms.clone(), rs.clone());
        if let Some(epilogue) = out.epilogue {
            for i in ms {
                // SAFETY: `tile` has just written these cells of row `i`, which lie inside the
                // `m × rows` buffer and belong to this tile alone.
                let cells = unsafe {
                    std::slice::from_raw_parts_mut(out.ptr.get().add(i * rows + rs.start), rs.len())
                };
                epilogue(cells, rs.clone());
            }
        }
    });
}

/// Walks a tile in register blocks of at most `$tile_m` inputs × [`TILE_PANELS`] panels, running
/// `$body` with `$i` (first input), `$p` (first panel), `$mr` (inputs) and `$np` (panels) bound.
/// A macro rather than a function taking a closure, so that the body is compiled with the
/// caller's target features. `$rs` starts on a panel boundary.
macro_rules! walk {
    ($ms:expr, $rs:expr, $tile_m:expr, |$i:ident, $p:ident, $mr:ident, $np:ident| $body:expr) => {{
        let (ms, rs) = ($ms, $rs);
        let (p_end, mut $p) = (
            rs.end.div_ceil($crate::kernels::tiles::PANEL),
            rs.start / $crate::kernels::tiles::PANEL,
        );
        while $p < p_end {
            let $np = (p_end - $p).min($crate::kernels::tiles::TILE_PANELS);
            let mut $i = ms.start;
            while $i < ms.end {
                let $mr = (ms.end - $i).min($tile_m);
                $body;
                $i += $mr;
            }
            $p += $np;
        }
    }};
}
pub(super) use walk;

/// Calls `$f::<MR, NP>(args)` for a runtime `(mr, np)` in `1..=8 × 1..=2`.
macro_rules! dispatch_micro {
    ($mr:expr, $np:expr, $f:ident, ($($arg:expr),* $(,)?)) => {
        match ($mr, $np) {
            (1, 1) => $f::<1, 1>($($arg),*),
            (1, 2) => $f::<1, 2>($($arg),*),
            (2, 1) => $f::<2, 1>($($arg),*),
            (2, 2) => $f::<2, 2>($($arg),*),
            (3, 1) => $f::<3, 1>($($arg),*),
            (3, 2) => $f::<3, 2>($($arg),*),
            (4, 1) => $f::<4, 1>($($arg),*),
            (4, 2) => $f::<4, 2>($($arg),*),
            (5, 1) => $f::<5, 1>($($arg),*),
            (5, 2) => $f::<5, 2>($($arg),*),
            (6, 1) => $f::<6, 1>($($arg),*),
            (6, 2) => $f::<6, 2>($($arg),*),
            (7, 1) => $f::<7, 1>($($arg),*),
            (7, 2) => $f::<7, 2>($($arg),*),
            (8, 1) => $f::<8, 1>($($arg),*),
            (8, 2) => $f::<8, 2>($($arg),*),
            other => unreachable!("micro-kernel shape {other:?}"),
        }
    };
}
pub(super) use dispatch_micro;

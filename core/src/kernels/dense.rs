//! f32 weights in panels of [`PANEL`] rows: for each input column, the 16 rows' weights sit
//! together, so a step multiplies one broadcast input value into 16 outputs at once.

use super::isa::Isa;
use super::tiles::{Output, PANEL, dispatch_micro, for_each_tile, walk};
use rayon::prelude::*;
use std::ops::Range;

/// Input rows per register tile (8 inputs × 2 panels = 16 accumulator registers).
const TILE_M: usize = 8;

/// Input columns per pass over a tile (AVX-512 path): two panels' slice of 256 columns is
/// 32 KiB. Long rows (a head's backward product runs over the whole vocabulary) otherwise
/// stream the panels from memory once per register tile of inputs.
const K_BLOCK: usize = 256;

/// Weight panels: `w[(p · cols + k) · 16 + lane]` = row `16p + lane`, column `k` (zero past the
/// last row).
#[derive(Debug, Default)]
pub(super) struct F32Panels {
    w: Vec<f32>,
}

impl F32Panels {
    /// Packs a `rows × cols` matrix whose row `r` `read_row(r, buffer)` writes (`cols > 0`).
    pub(super) fn pack(
        rows: usize,
        cols: usize,
        read_row: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Self {
        let panels = rows.div_ceil(PANEL);
        let mut w = vec![0.0f32; panels * cols * PANEL];
        w.par_chunks_mut(cols * PANEL)
            .enumerate()
            .for_each(|(p, panel)| {
                let mut row = vec![0.0f32; cols];
                for lane in 0..PANEL.min(rows - p * PANEL) {
                    read_row(p * PANEL + lane, &mut row);
                    for (k, v) in row.iter().enumerate() {
                        panel[k * PANEL + lane] = *v;
                    }
                }
            });
        Self { w }
    }

    pub(super) fn bytes(&self) -> usize {
        self.w.len() * 4
    }

    pub(super) fn matmul(
        &self,
        x: &[f32],
        m: usize,
        cols: usize,
        rows: usize,
        out: Output<'_>,
        isa: Isa,
    ) {
        let args = TileArgs {
            x: x.as_ptr(),
            w: self.w.as_ptr(),
            cols,
            out: out.ptr.0,
            rows,
        };
        let args = &args;
        for_each_tile(m, rows, out, |ms, rs| {
            // SAFETY: `x` holds `m × cols` values, the panels `⌈rows/16⌉ × cols × 16`, `out`
            // `m × rows`; the tile lies inside them, and `Isa` checked the instruction set.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => avx512::tile(args, ms, rs),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => tile_avx2(args, ms, rs),
                    _ => tile_lanes(args, ms, rs),
                }
            }
        });
    }
}

/// Raw views of one product's buffers.
struct TileArgs {
    x: *const f32,
    w: *const f32,
    cols: usize,
    out: *mut f32,
    rows: usize,
}

// SAFETY: the pointers are only read, or written at disjoint cells per tile (see `OutPtr`).
unsafe impl Sync for TileArgs {}

/// One register tile: inputs from row `i`, panels from panel `p`.
#[derive(Clone, Copy)]
struct Micro {
    x: *const f32,
    w: *const f32,
    cols: usize,
    out: *mut f32,
    rows: usize,
    /// Output columns this tile's panels cover (the last panel may be partial).
    valid: usize,
}

impl TileArgs {
    #[inline(always)]
    unsafe fn at(&self, i: usize, p: usize, np: usize) -> Micro {
        // SAFETY: the caller passes an input row and panel inside the buffers.
        unsafe {
            Micro {
                x: self.x.add(i * self.cols),
                w: self.w.add(p * self.cols * PANEL),
                cols: self.cols,
                out: self.out.add(i * self.rows + p * PANEL),
                rows: self.rows,
                valid: (self.rows - p * PANEL).min(np * PANEL),
            }
        }
    }
}

#[inline(always)]
unsafe fn tile_lanes(a: &TileArgs, ms: Range<usize>, rs: Range<usize>) {
    walk!(ms, rs, 1, |i, p, _mr, np| {
        for j in 0..np {
            // SAFETY: the caller guarantees the ranges lie inside the buffers.
            unsafe { micro_lanes(a.at(i, p + j, 1)) }
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(a: &TileArgs, ms: Range<usize>, rs: Range<usize>) {
    // SAFETY: forwarded.
    unsafe { tile_lanes(a, ms, rs) }
}

/// One input row × one panel in 16 lanes (vectorised by the compiler).
#[inline(always)]
unsafe fn micro_lanes(t: Micro) {
    let mut acc = [0.0f32; PANEL];
    // SAFETY: the input row has `cols` values and the panel `cols × 16`.
    let (x, w) = unsafe {
        (
            std::slice::from_raw_parts(t.x, t.cols),
            std::slice::from_raw_parts(t.w, t.cols * PANEL),
        )
    };
    for (xv, wk) in x.iter().zip(w.chunks_exact(PANEL)) {
        for l in 0..PANEL {
            acc[l] += xv * wk[l];
        }
    }
    // SAFETY: the tile's output cells of this input row.
    unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), t.out, t.valid) };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{K_BLOCK, Micro, PANEL, TILE_M, TileArgs, dispatch_micro, walk};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// The tile in blocks of [`K_BLOCK`] input columns: a block's slice of a panel pair stays
    /// in the first-level cache while every input row of the tile passes it, and later blocks
    /// add to the outputs the earlier ones wrote.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(a: &TileArgs, ms: Range<usize>, rs: Range<usize>) {
        let mut k0 = 0;
        while k0 < a.cols {
            let k1 = (k0 + K_BLOCK).min(a.cols);
            walk!(ms.clone(), rs.clone(), TILE_M, |i, p, mr, np| {
                // SAFETY: the caller guarantees the ranges lie inside the buffers.
                unsafe { dispatch_micro!(mr, np, micro, (a.at(i, p, np), k0..k1)) }
            });
            k0 = k1;
        }
    }

    /// Columns `ks` of one register tile, added to what earlier columns wrote unless `ks`
    /// starts at column 0.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn micro<const MR: usize, const NP: usize>(t: Micro, ks: Range<usize>) {
        let mask = |j: usize| -> __mmask16 {
            let left = t.valid.saturating_sub(j * PANEL).min(PANEL);
            ((1u32 << left) - 1) as u16
        };
        let mut acc = [[_mm512_setzero_ps(); NP]; MR];
        if ks.start > 0 {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                for (j, v) in acc_i.iter_mut().enumerate() {
                    // SAFETY: only the tile's valid output cells are read.
                    *v = unsafe {
                        _mm512_maskz_loadu_ps(mask(j), t.out.add(i * t.rows + j * PANEL))
                    };
                }
            }
        }
        for k in ks {
            let mut wv = [_mm512_setzero_ps(); NP];
            for (j, v) in wv.iter_mut().enumerate() {
                // SAFETY: panel `j` has `cols × 16` values.
                *v = unsafe { _mm512_loadu_ps(t.w.add((j * t.cols + k) * PANEL)) };
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                // SAFETY: input row `i` has `cols` values.
                let xb = _mm512_set1_ps(unsafe { *t.x.add(i * t.cols + k) });
                for (acc_ij, w) in acc_i.iter_mut().zip(&wv) {
                    *acc_ij = _mm512_fmadd_ps(xb, *w, *acc_ij);
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (j, v) in acc_i.iter().enumerate() {
                // SAFETY: only the tile's valid output cells are written.
                unsafe { _mm512_mask_storeu_ps(t.out.add(i * t.rows + j * PANEL), mask(j), *v) };
            }
        }
    }
}

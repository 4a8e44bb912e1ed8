//! Small products on the calling thread, for callers that already run many at once (training's
//! attention: one product per batch row, head and query block, of 64 × 256 × 64 or so). Both
//! operands are read through strides, so a transposed view costs no copy by the caller.
//!
//! With AVX-512 the operands are packed once per product (the left one row-major, the right one
//! in the panels of [`super::dense`]) and multiplied in register tiles of 8 rows × 32 columns;
//! elsewhere the `gemm` crate runs it (its AVX2 kernels; its AVX-512 ones would need a feature
//! that rebuilds most of the dependency tree).

use super::isa::Isa;
use std::cell::RefCell;

/// A matrix read through strides: element `(r, c)` is `values[r · row_stride + c · col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct Strided<'a> {
    values: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Strided<'a> {
    /// A row-major matrix whose rows lie `stride` values apart.
    pub fn rows(values: &'a [f32], stride: usize) -> Self {
        Self {
            values,
            row_stride: stride,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix whose rows lie `stride` values apart.
    pub fn cols(values: &'a [f32], stride: usize) -> Self {
        Self {
            values,
            row_stride: 1,
            col_stride: stride,
        }
    }

    /// True when an `r × c` read stays inside the slice.
    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0
            || c == 0
            || (r - 1) * self.row_stride + (c - 1) * self.col_stride < self.values.len()
    }

    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.values[r * self.row_stride + c * self.col_stride]
    }
}

/// `c (m × n, rows c_stride apart) = [c +] a (m × k) · b (k × n)` on the calling thread.
///
/// # Panics
/// When a read of `a` or `b` or a write of `c` would leave its slice (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn matmul_serial(
    c: &mut [f32],
    c_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Strided<'_>,
    b: Strided<'_>,
    accumulate: bool,
) {
    matmul_serial_with(c, c_stride, m, n, k, a, b, accumulate, Isa::detect());
}

/// [`matmul_serial`] with the instruction set chosen by the caller (tests compare them).
#[allow(clippy::too_many_arguments)]
fn matmul_serial_with(
    c: &mut [f32],
    c_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Strided<'_>,
    b: Strided<'_>,
    accumulate: bool,
    isa: Isa,
) {
    assert!(
        (m == 0 || n == 0 || c.len() >= (m - 1) * c_stride + n) && a.fits(m, k) && b.fits(k, n),
        "small product shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(c_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => packed(c, c_stride, m, n, k, a, b, accumulate),
        _ => with_gemm(c, c_stride, m, n, k, a, b, accumulate),
    }
}

thread_local! {
    /// Packed operands of the last product on this thread (reused: no allocation per product).
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Packs both operands and runs the AVX-512 tiles.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn packed(
    c: &mut [f32],
    c_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Strided<'_>,
    b: Strided<'_>,
    accumulate: bool,
) {
    use super::tiles::PANEL;
    SCRATCH.with_borrow_mut(|(xa, wb)| {
        xa.clear();
        xa.extend((0..m).flat_map(|i| (0..k).map(move |kk| a.at(i, kk))));
        let panels = n.div_ceil(PANEL);
        wb.clear();
        wb.resize(panels * k * PANEL, 0.0);
        for (p, panel) in wb.chunks_exact_mut(k * PANEL).enumerate() {
            for lane in 0..PANEL.min(n - p * PANEL) {
                let j = p * PANEL + lane;
                for kk in 0..k {
                    panel[kk * PANEL + lane] = b.at(kk, j);
                }
            }
        }
        let t = avx512::Product {
            x: xa.as_ptr(),
            w: wb.as_ptr(),
            k,
            out: c.as_mut_ptr(),
            out_stride: c_stride,
            n,
            accumulate,
        };
        // SAFETY: AVX-512 F is present (`Isa::Avx512`); `xa` holds `m × k` values, `wb`
        // `⌈n/16⌉ × k × 16`, and the assertion in `matmul_serial_with` keeps the `m × n` cells
        // of `c` inside it.
        unsafe { avx512::product(&t, m) };
    });
}

/// The `gemm` crate's product (instruction sets below AVX-512).
#[allow(clippy::too_many_arguments)]
fn with_gemm(
    c: &mut [f32],
    c_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Strided<'_>,
    b: Strided<'_>,
    accumulate: bool,
) {
    // SAFETY: the assertion in `matmul_serial_with` keeps every read of `a` and `b` and every
    // write of `c` in bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_stride as isize,
            accumulate,
            a.values.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.values.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::tiles::{PANEL, TILE_PANELS, dispatch_micro};
    use std::arch::x86_64::*;

    /// Input rows per register tile (8 rows × 2 panels: 16 accumulators).
    const TILE_M: usize = 8;

    /// One packed product: `x` row-major `m × k`, `w` in panels of 16 columns.
    pub(super) struct Product {
        pub x: *const f32,
        pub w: *const f32,
        pub k: usize,
        pub out: *mut f32,
        pub out_stride: usize,
        pub n: usize,
        pub accumulate: bool,
    }

    /// Every register tile of the `m × n` output.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(t: &Product, m: usize) {
        let panels = t.n.div_ceil(PANEL);
        let mut p = 0;
        while p < panels {
            let np = (panels - p).min(TILE_PANELS);
            let mut i = 0;
            while i < m {
                let mr = (m - i).min(TILE_M);
                // SAFETY: rows `i..i + mr` and panels `p..p + np` lie inside the product.
                unsafe { dispatch_micro!(mr, np, micro, (t, i, p)) };
                i += mr;
            }
            p += np;
        }
    }

    /// Rows `i..i + MR` × panels `p..p + NP`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn micro<const MR: usize, const NP: usize>(t: &Product, i: usize, p: usize) {
        let mask = |j: usize| -> __mmask16 {
            let left = t.n.saturating_sub((p + j) * PANEL).min(PANEL);
            ((1u32 << left) - 1) as u16
        };
        // SAFETY (every access below): row `i + r` of `x` has `k` values, panel `p + j` of `w`
        // `k × 16`, and output cells past `n` are masked.
        let out =
            |r: usize, j: usize| unsafe { t.out.add((i + r) * t.out_stride + (p + j) * PANEL) };
        let mut acc = [[_mm512_setzero_ps(); NP]; MR];
        if t.accumulate {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                for (j, v) in acc_r.iter_mut().enumerate() {
                    *v = unsafe { _mm512_maskz_loadu_ps(mask(j), out(r, j)) };
                }
            }
        }
        let x = unsafe { t.x.add(i * t.k) };
        let w = unsafe { t.w.add(p * t.k * PANEL) };
        for kk in 0..t.k {
            let mut wv = [_mm512_setzero_ps(); NP];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = unsafe { _mm512_loadu_ps(w.add((j * t.k + kk) * PANEL)) };
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_ps(unsafe { *x.add(r * t.k + kk) });
                for (a, wj) in acc_r.iter_mut().zip(&wv) {
                    *a = _mm512_fmadd_ps(xb, *wj, *a);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (j, v) in acc_r.iter().enumerate() {
                unsafe { _mm512_mask_storeu_ps(out(r, j), mask(j), *v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Every instruction set against a plain f64 product: edge sizes around the register tile
    /// (1–9 rows, 1–33 columns), transposed operands, a wider output stride whose extra cells
    /// stay untouched, accumulation, and an empty inner dimension.
    #[test]
    fn small_products_match_a_plain_product() {
        for isa in Isa::available() {
            for (m, n, k) in [(1, 1, 1), (9, 33, 5), (8, 32, 64), (17, 7, 0), (64, 50, 70)] {
                for (transpose_a, transpose_b, accumulate) in [
                    (false, false, false),
                    (true, false, true),
                    (false, true, true),
                    (true, true, false),
                ] {
                    let (av, bv) = (values(m * k, 1), values(k * n, 2));
                    let a = if transpose_a {
                        Strided::cols(&av, m)
                    } else {
                        Strided::rows(&av, k)
                    };
                    let b = if transpose_b {
                        Strided::cols(&bv, k)
                    } else {
                        Strided::rows(&bv, n)
                    };
                    let stride = n + 3;
                    let start = values(m * stride, 3);
                    let mut c = start.clone();
                    matmul_serial_with(&mut c, stride, m, n, k, a, b, accumulate, isa);
                    for i in 0..m {
                        for j in 0..stride {
                            let got = c[i * stride + j];
                            if j >= n {
                                assert_eq!(got, start[i * stride + j], "cell past the output");
                                continue;
                            }
                            let mut want: f64 = (0..k)
                                .map(|kk| f64::from(a.at(i, kk)) * f64::from(b.at(kk, j)))
                                .sum();
                            if accumulate {
                                want += f64::from(start[i * stride + j]);
                            }
                            assert!(
                                (f64::from(got) - want).abs() < 1e-4,
                                "{isa:?} {m}×{n}×{k} ta {transpose_a} tb {transpose_b} acc \
                                 {accumulate}: ({i}, {j}) {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

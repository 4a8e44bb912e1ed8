//! Small products on the calling thread, for callers that already run many at once (training's
//! attention: one product per batch row, head and query block, of 64 × 256 × 64 or so). Both
//! operands are read through strides, so a transposed view costs no copy by the caller.
//!
//! With AVX-512 the products run in register tiles of 8 rows × 32 columns, reading the operands
//! in place (a right operand read transposed is first packed into panels of 16 columns);
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
    /// The right operand packed into panels, when it has to be (reused: no allocation per
    /// product).
    static PANELS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The AVX-512 tiles. The left operand is read in place through its strides (a transposed one
/// gives contiguous rows of a tile at each step); the right operand too when its rows are
/// contiguous (a panel of 16 columns is then one vector load), else it is packed into panels
/// of 16 columns first.
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
    let out = c.as_mut_ptr();
    let run = |w: *const f32, w_k: usize, w_panel: usize| {
        let t = avx512::Product {
            x: a.values.as_ptr(),
            x_row: a.row_stride,
            x_col: a.col_stride,
            w,
            w_k,
            w_panel,
            k,
            out,
            out_stride: c_stride,
            n,
            accumulate,
        };
        // SAFETY: AVX-512 F is present (`Isa::Avx512`); the assertion in `matmul_serial_with`
        // keeps the reads of `a` (`m × k`) and of the unpacked `b` (`k × n`, lanes past `n`
        // masked) and the writes of `c` inside their slices, and packed panels hold
        // `⌈n/16⌉ × k × 16` values.
        unsafe { avx512::product(&t, m) };
    };
    if b.col_stride == 1 {
        return run(b.values.as_ptr(), b.row_stride, PANEL);
    }
    PANELS.with_borrow_mut(|panels| {
        panels.clear();
        panels.resize(n.div_ceil(PANEL) * k * PANEL, 0.0);
        for j in 0..n {
            let panel = &mut panels[(j / PANEL) * k * PANEL..][..k * PANEL];
            let lane = j % PANEL;
            if b.row_stride == 1 {
                let column = &b.values[j * b.col_stride..][..k];
                for (step, v) in panel.chunks_exact_mut(PANEL).zip(column) {
                    step[lane] = *v;
                }
            } else {
                for (kk, step) in panel.chunks_exact_mut(PANEL).enumerate() {
                    step[lane] = b.at(kk, j);
                }
            }
        }
        run(panels.as_ptr(), PANEL, k * PANEL);
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

    /// One product: `x(r, kk)` at `x + r·x_row + kk·x_col`; the 16 columns of panel `q` at
    /// step `kk` at `w + q·w_panel + kk·w_k` (lanes past `n` are never read).
    pub(super) struct Product {
        pub x: *const f32,
        pub x_row: usize,
        pub x_col: usize,
        pub w: *const f32,
        pub w_k: usize,
        pub w_panel: usize,
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
        let masks: [__mmask16; NP] = std::array::from_fn(|j| {
            let left = t.n.saturating_sub((p + j) * PANEL).min(PANEL);
            ((1u32 << left) - 1) as u16
        });
        // SAFETY (every access below): rows `i..i + MR` of `x` have `k` values, panels
        // `p..p + NP` of `w` have `k` steps, and lanes past `n` are masked in loads and stores.
        let out =
            |r: usize, j: usize| unsafe { t.out.add((i + r) * t.out_stride + (p + j) * PANEL) };
        let mut acc = [[_mm512_setzero_ps(); NP]; MR];
        if t.accumulate {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                for (j, v) in acc_r.iter_mut().enumerate() {
                    *v = unsafe { _mm512_maskz_loadu_ps(masks[j], out(r, j)) };
                }
            }
        }
        let rows: [*const f32; MR] = std::array::from_fn(|r| unsafe { t.x.add((i + r) * t.x_row) });
        let w = unsafe { t.w.add(p * t.w_panel) };
        for kk in 0..t.k {
            let mut wv = [_mm512_setzero_ps(); NP];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = unsafe { _mm512_maskz_loadu_ps(masks[j], w.add(j * t.w_panel + kk * t.w_k)) };
            }
            for (row, acc_r) in rows.iter().zip(acc.iter_mut()) {
                let xb = _mm512_set1_ps(unsafe { *row.add(kk * t.x_col) });
                for (a, wj) in acc_r.iter_mut().zip(&wv) {
                    *a = _mm512_fmadd_ps(xb, *wj, *a);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (j, v) in acc_r.iter().enumerate() {
                unsafe { _mm512_mask_storeu_ps(out(r, j), masks[j], *v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::values;

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
                    let (av, bv) = (values(m * k, 1, 1.0), values(k * n, 2, 1.0));
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
                    let start = values(m * stride, 3, 1.0);
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

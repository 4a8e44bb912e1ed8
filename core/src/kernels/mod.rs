//! Matrix products for the CPU engine. A dense layer's weights are packed once at load and
//! multiplied on every core of the rayon pool, with AVX-512 (VNNI for 8-bit weights) when the
//! processor has it, AVX2 otherwise, and plain lane-wise loops elsewhere.
//!
//! Two weight formats:
//! - [`WeightFormat::F32`]: the checkpoint's values, exact;
//! - [`WeightFormat::Q8`]: 8-bit weights in blocks of [`Q8_BLOCK`] with one f32 scale per block;
//!   each product quantizes its input rows the same way once and accumulates block dot products
//!   in integers (the scheme of llama.cpp's `q8_0`, with 64-weight blocks).

mod dense;
mod isa;
pub(crate) mod math;
mod q8;
mod small;
mod tiles;

pub use isa::Isa;
pub(crate) use isa::with_widest_vectors;
pub use q8::BLOCK as Q8_BLOCK;
pub use small::{Strided, matmul_serial};
use std::ops::Range;
use tiles::{OutPtr, Output};

/// Work a product runs on its output tile by tile, while the cells are in cache: called with one
/// input row's cells of a tile and the output columns (weight rows) they hold.
pub type Epilogue<'a> = &'a (dyn Fn(&mut [f32], Range<usize>) + Sync);

/// How a packed matrix stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// 32-bit floats: exact.
    F32,
    /// 8-bit integers with a per-block f32 scale (about 1.06 bytes per weight).
    Q8,
}

impl WeightFormat {
    /// Short lower-case name (`f32`, `q8`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Q8 => "q8",
        }
    }
}

enum Packed {
    F32(dense::F32Panels),
    Q8(q8::Q8Panels),
}

/// A `rows × cols` weight matrix (PyTorch's `[out, in]` layout) packed for [`PackedMatrix::matmul`].
pub struct PackedMatrix {
    rows: usize,
    cols: usize,
    packed: Packed,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackedMatrix({}×{}, {})",
            self.rows,
            self.cols,
            self.format().name()
        )
    }
}

impl PackedMatrix {
    /// Packs row-major `weights` (`rows × cols`) in `format`.
    ///
    /// # Panics
    /// When `weights.len() != rows * cols` (a caller bug: shapes are checked at load).
    pub fn pack(weights: &[f32], rows: usize, cols: usize, format: WeightFormat) -> Self {
        assert_eq!(
            weights.len(),
            rows * cols,
            "weights do not match {rows}×{cols}"
        );
        Self::pack_rows(rows, cols, format, &|r, row| {
            row.copy_from_slice(&weights[r * cols..][..cols]);
        })
    }

    /// Packs a `rows × cols` matrix in `format` one row at a time: `read_row(r, buffer)` writes
    /// row `r`'s `cols` values (called on several threads, once per row). The matrix never has to
    /// exist whole in f32: a checkpoint's rows are decoded straight from the mapped file.
    pub fn pack_rows(
        rows: usize,
        cols: usize,
        format: WeightFormat,
        read_row: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Self {
        // With no columns there is nothing to store: a product over them writes zeros
        // (`write_product`).
        let packed = match format {
            WeightFormat::F32 if cols == 0 => Packed::F32(dense::F32Panels::default()),
            WeightFormat::Q8 if cols == 0 => Packed::Q8(q8::Q8Panels::default()),
            WeightFormat::F32 => Packed::F32(dense::F32Panels::pack(rows, cols, read_row)),
            WeightFormat::Q8 => Packed::Q8(q8::Q8Panels::pack(rows, cols, read_row)),
        };
        Self { rows, cols, packed }
    }

    /// Output features (rows of the weight).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (columns of the weight).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The storage format.
    pub fn format(&self) -> WeightFormat {
        match self.packed {
            Packed::F32(_) => WeightFormat::F32,
            Packed::Q8(_) => WeightFormat::Q8,
        }
    }

    /// Bytes held by the packed weights.
    pub fn bytes(&self) -> usize {
        match &self.packed {
            Packed::F32(p) => p.bytes(),
            Packed::Q8(p) => p.bytes(),
        }
    }

    /// `x · Wᵀ` for `m` row-major input rows of `cols` values: `m × rows` values, row-major.
    ///
    /// # Panics
    /// When `x.len() != m * cols`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        self.product(x, m, Isa::detect(), None)
    }

    /// [`Self::matmul`], running `epilogue` on each finished tile of the output while it is
    /// still in cache (a bias, an activation): the same values as applying it afterwards, one
    /// pass over the output less.
    pub fn matmul_then(&self, x: &[f32], m: usize, epilogue: Epilogue<'_>) -> Vec<f32> {
        self.product(x, m, Isa::detect(), Some(epilogue))
    }

    /// [`Self::matmul`] with the instruction set chosen by the caller (tests compare them).
    pub fn matmul_with(&self, x: &[f32], m: usize, isa: Isa) -> Vec<f32> {
        self.product(x, m, isa, None)
    }

    /// The product in a new buffer that is not zeroed first: the kernels write every cell.
    fn product(&self, x: &[f32], m: usize, isa: Isa, epilogue: Option<Epilogue<'_>>) -> Vec<f32> {
        let n = m * self.rows;
        let mut out = Vec::<f32>::with_capacity(n);
        let ptr = OutPtr(out.as_mut_ptr());
        self.write_product(x, m, isa, Output { ptr, epilogue });
        // SAFETY: `write_product` wrote all `m × rows` cells of the buffer.
        unsafe { out.set_len(n) };
        out
    }

    /// Writes `x · Wᵀ` to all `m × rows` cells behind `out.ptr`, which may be uninitialised.
    fn write_product(&self, x: &[f32], m: usize, isa: Isa, out: Output<'_>) {
        assert_eq!(
            x.len(),
            m * self.cols,
            "input does not match {m}×{}",
            self.cols
        );
        if m == 0 || self.rows == 0 {
            return;
        }
        if self.cols == 0 {
            // An empty sum: the kernels would write nothing.
            for i in 0..m {
                // SAFETY: row `i` of the `m × rows` buffer; zeros initialise it.
                let row = unsafe {
                    std::ptr::write_bytes(out.ptr.0.add(i * self.rows), 0, self.rows);
                    std::slice::from_raw_parts_mut(out.ptr.0.add(i * self.rows), self.rows)
                };
                if let Some(epilogue) = out.epilogue {
                    epilogue(row, 0..self.rows);
                }
            }
            return;
        }
        match &self.packed {
            Packed::F32(p) => p.matmul(x, m, self.cols, self.rows, out, isa),
            Packed::Q8(p) => p.matmul(x, m, self.cols, self.rows, out, isa),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic values in [-0.5, 0.5) times `scale`.
    pub(crate) fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    /// `x · Wᵀ` in f64.
    fn reference(w: &[f32], x: &[f32], rows: usize, cols: usize, m: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; m * rows];
        for i in 0..m {
            for r in 0..rows {
                out[i * rows + r] = (0..cols)
                    .map(|k| x[i * cols + k] as f64 * w[r * cols + k] as f64)
                    .sum();
            }
        }
        out
    }

    /// Shapes with partial panels, partial blocks, single rows and many tiles.
    const SHAPES: [(usize, usize, usize); 7] = [
        (1, 1, 1),
        (37, 600, 19),
        (7, 33, 5),
        (16, 64, 1),
        (130, 100, 9),
        (96, 768, 70),
        (40, 200, 13),
    ];

    #[test]
    fn f32_products_match_f64_on_every_instruction_set() {
        for (rows, cols, m) in SHAPES {
            let w = values(rows * cols, 1, 1.0);
            let x = values(m * cols, 2, 1.0);
            let want = reference(&w, &x, rows, cols, m);
            let packed = PackedMatrix::pack(&w, rows, cols, WeightFormat::F32);
            for isa in Isa::available() {
                let got = packed.matmul_with(&x, m, isa);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{rows}×{cols}, m={m}, {}: {g} vs {w}",
                        isa.name()
                    );
                }
            }
        }
    }

    #[test]
    fn q8_products_stay_within_the_quantization_error_and_agree_across_instruction_sets() {
        for (rows, cols, m) in SHAPES {
            let w = values(rows * cols, 3, 1.0);
            let x = values(m * cols, 4, 1.0);
            let want = reference(&w, &x, rows, cols, m);
            let packed = PackedMatrix::pack(&w, rows, cols, WeightFormat::Q8);
            // Each side's rounding error is at most half a step (max|v|/254) per value; the
            // dot's error is bounded by Σ|x|·δw + Σ|w|·δx (+ the tiny δw·δx term).
            let bound = |i: usize, r: usize| {
                let (xr, wr) = (&x[i * cols..][..cols], &w[r * cols..][..cols]);
                let step = |v: &[f32]| v.iter().fold(0.0f32, |a, b| a.max(b.abs())) as f64 / 254.0;
                let l1 = |v: &[f32]| v.iter().map(|a| a.abs() as f64).sum::<f64>();
                l1(xr) * step(wr) + l1(wr) * step(xr) + cols as f64 * step(xr) * step(wr) + 1e-6
            };
            let first = packed.matmul_with(&x, m, Isa::detect());
            for isa in Isa::available() {
                let got = packed.matmul_with(&x, m, isa);
                for i in 0..m {
                    for r in 0..rows {
                        let (g, w) = (got[i * rows + r] as f64, want[i * rows + r]);
                        assert!(
                            (g - w).abs() <= bound(i, r),
                            "{rows}×{cols} {}: {g} vs {w}",
                            isa.name()
                        );
                        let f = first[i * rows + r] as f64;
                        assert!(
                            (g - f).abs() <= 1e-4 * (1.0 + f.abs()),
                            "{} vs best ISA",
                            isa.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn non_finite_inputs_give_non_finite_outputs_in_both_formats() {
        let (rows, cols) = (20, 70);
        let w = values(rows * cols, 5, 1.0);
        let mut x = values(2 * cols, 6, 1.0);
        x[cols + 3] = f32::NAN;
        for format in [WeightFormat::F32, WeightFormat::Q8] {
            let packed = PackedMatrix::pack(&w, rows, cols, format);
            for isa in Isa::available() {
                let y = packed.matmul_with(&x, 2, isa);
                assert!(y[..rows].iter().all(|v| v.is_finite()), "row 0 is clean");
                assert!(
                    y[rows..].iter().all(|v| v.is_nan()),
                    "{format:?} {}: NaN row",
                    isa.name()
                );
            }
        }
    }

    /// The product needs no zeroed buffer: over a buffer of NaN every cell comes out as in a
    /// fresh product, for every shape, format and instruction set (and an empty sum is 0).
    #[test]
    fn every_output_cell_is_written_whatever_the_buffer_held() {
        for (rows, cols, m) in SHAPES.into_iter().chain([(5, 0, 3)]) {
            let w = values(rows * cols, 7, 1.0);
            let x = values(m * cols, 8, 1.0);
            for format in [WeightFormat::F32, WeightFormat::Q8] {
                let packed = PackedMatrix::pack(&w, rows, cols, format);
                for isa in Isa::available() {
                    let want = packed.matmul_with(&x, m, isa);
                    let mut out = vec![f32::NAN; m * rows];
                    let ptr = OutPtr(out.as_mut_ptr());
                    packed.write_product(
                        &x,
                        m,
                        isa,
                        Output {
                            ptr,
                            epilogue: None,
                        },
                    );
                    let same = out
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{rows}×{cols}, m={m}, {format:?}, {}", isa.name());
                    if cols == 0 {
                        assert!(out.iter().all(|&v| v == 0.0));
                    }
                }
            }
        }
    }

    /// The epilogue runs exactly once on every cell, with the cell's output column.
    #[test]
    fn the_epilogue_sees_each_cell_once_with_its_column() {
        for (rows, cols, m) in SHAPES.into_iter().chain([(5, 0, 3)]) {
            let w = values(rows * cols, 9, 1.0);
            let x = values(m * cols, 10, 1.0);
            for format in [WeightFormat::F32, WeightFormat::Q8] {
                let packed = PackedMatrix::pack(&w, rows, cols, format);
                let plain = packed.matmul(&x, m);
                let mark = |cells: &mut [f32], columns: Range<usize>| {
                    for (v, c) in cells.iter_mut().zip(columns) {
                        *v += 1000.0 * c as f32 + 1.0;
                    }
                };
                let got = packed.matmul_then(&x, m, &mark);
                for (i, (g, p)) in got.iter().zip(&plain).enumerate() {
                    let want = p + (1000.0 * (i % rows) as f32 + 1.0);
                    assert_eq!(
                        g.to_bits(),
                        want.to_bits(),
                        "{rows}×{cols}, m={m}, cell {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_rows_of_input_give_an_empty_product() {
        let packed = PackedMatrix::pack(&values(12, 7, 1.0), 3, 4, WeightFormat::Q8);
        assert!(packed.matmul(&[], 0).is_empty());
        assert_eq!(packed.bytes(), 16 * 64 + 16 * 4);
    }
}

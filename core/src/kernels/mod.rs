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
        let packed = match format {
            WeightFormat::F32 => Packed::F32(dense::F32Panels::pack(weights, rows, cols)),
            WeightFormat::Q8 => Packed::Q8(q8::Q8Panels::pack(weights, rows, cols)),
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
        self.matmul_with(x, m, Isa::detect())
    }

    /// [`Self::matmul`] with the instruction set chosen by the caller (tests compare them).
    pub fn matmul_with(&self, x: &[f32], m: usize, isa: Isa) -> Vec<f32> {
        assert_eq!(
            x.len(),
            m * self.cols,
            "input does not match {m}×{}",
            self.cols
        );
        let mut out = vec![0.0f32; m * self.rows];
        if m == 0 || self.rows == 0 {
            return out;
        }
        match &self.packed {
            Packed::F32(p) => p.matmul(x, m, self.cols, self.rows, &mut out, isa),
            Packed::Q8(p) => p.matmul(x, m, self.cols, self.rows, &mut out, isa),
        }
        out
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

    #[test]
    fn zero_rows_of_input_give_an_empty_product() {
        let packed = PackedMatrix::pack(&values(12, 7, 1.0), 3, 4, WeightFormat::Q8);
        assert!(packed.matmul(&[], 0).is_empty());
        assert_eq!(packed.bytes(), 16 * 64 + 16 * 4);
    }
}

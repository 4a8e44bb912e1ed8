//! 8-bit weights. Each row is cut into blocks of [`BLOCK`] columns; a block is stored as signed
//! 8-bit integers with one f32 scale `max|w| / 127`, offset by +128 to unsigned bytes. Rows sit in
//! panels of [`PANEL`]: for every 4 columns, the 16 rows' 4 bytes lie together (64 bytes, one
//! vector), which is the operand layout of AVX-512 VNNI's `vpdpbusd` (unsigned × signed bytes,
//! summed in fours into 32-bit lanes). Input rows are quantized the same way once per product;
//! a block's integer sum is scaled in f32, and the +128 offset is removed through each input
//! block's sum.

use super::isa::Isa;
use super::math::round_to_integer;
use super::tiles::{Output, PANEL, dispatch_micro, for_each_tile, walk};
use rayon::prelude::*;
use std::ops::Range;

/// Columns per quantization block.
pub const BLOCK: usize = 64;
/// Column groups of 4 per block.
const QUADS: usize = BLOCK / 4;
/// Input rows per register tile (6 inputs × 2 panels: 12 integer and 12 float accumulators).
const TILE_M: usize = 6;

/// Quantized panels. Bytes: `q[(((p · nb + b) · 16 + g) · 16 + lane) · 4 + t]` = row
/// `16p + lane`, column `64b + 4g + t`, plus 128. Scales: `d[(p · nb + b) · 16 + lane]`.
#[derive(Debug, Default)]
pub(super) struct Q8Panels {
    kp: usize,
    q: Vec<u8>,
    d: Vec<f32>,
}

/// Input rows quantized for one product: `kp` bytes per row, per-block scales, and
/// `128 · scale · Σq` per block (the weights' +128 offset, removed from each block's sum).
struct Q8Input {
    q: Vec<i8>,
    d: Vec<f32>,
    c: Vec<f32>,
}

impl Q8Panels {
    /// Quantizes and packs a `rows × cols` matrix whose row `r` `read_row(r, buffer)` writes
    /// (`cols > 0`).
    pub(super) fn pack(
        rows: usize,
        cols: usize,
        read_row: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Self {
        let kp = cols.next_multiple_of(BLOCK);
        let nb = kp / BLOCK;
        let panels = rows.div_ceil(PANEL);
        let isa = Isa::detect();
        let mut q = vec![128u8; panels * kp * PANEL];
        let mut d = vec![0.0f32; panels * nb * PANEL];
        q.par_chunks_mut(kp * PANEL)
            .zip(d.par_chunks_mut(nb * PANEL))
            .enumerate()
            .for_each(|(p, (q_panel, d_panel))| {
                let mut block = [0.0f32; BLOCK];
                let mut quantized = [0i8; BLOCK];
                let mut row = vec![0.0f32; cols];
                for lane in 0..PANEL.min(rows - p * PANEL) {
                    read_row(p * PANEL + lane, &mut row);
                    for b in 0..nb {
                        block.fill(0.0);
                        let src = &row[(b * BLOCK).min(cols)..((b + 1) * BLOCK).min(cols)];
                        block[..src.len()].copy_from_slice(src);
                        let q_block = &mut q_panel[b * BLOCK * PANEL..][..BLOCK * PANEL];
                        let (scale, _) = quantize_block_with(&block, &mut quantized, isa);
                        for (c, &v) in quantized.iter().enumerate() {
                            q_block[((c / 4) * PANEL + lane) * 4 + c % 4] = (v as i16 + 128) as u8;
                        }
                        d_panel[b * PANEL + lane] = scale;
                    }
                }
            });
        Self { kp, q, d }
    }

    pub(super) fn bytes(&self) -> usize {
        self.q.len() + self.d.len() * 4
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
        let input = self.quantize_input(x, m, cols, isa);
        let args = TileArgs {
            xq: input.q.as_ptr(),
            xd: input.d.as_ptr(),
            xc: input.c.as_ptr(),
            wq: self.q.as_ptr(),
            wd: self.d.as_ptr(),
            kp: self.kp,
            out: out.ptr.0,
            rows,
        };
        let args = &args;
        for_each_tile(m, rows, out, |ms, rs| {
            // SAFETY: the input holds `m` rows of `kp` bytes and `kp / 64` scales, the panels
            // `⌈rows/16⌉ × kp × 16` bytes, `out` `m × rows`; the tile lies inside them, and `Isa`
            // checked the instruction set.
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

    /// Quantizes the `m` input rows. The buffers are written in full before they are read, so
    /// they are allocated without zeroing (a serial pass over megabytes per product in a
    /// prefill); a full block is quantized straight from the row, only the last, short one
    /// through a zero-padded copy.
    fn quantize_input(&self, x: &[f32], m: usize, cols: usize, isa: Isa) -> Q8Input {
        let (kp, nb) = (self.kp, self.kp / BLOCK);
        let mut q = Vec::<i8>::with_capacity(m * kp);
        let mut d = Vec::<f32>::with_capacity(m * nb);
        let mut c = Vec::<f32>::with_capacity(m * nb);
        q.spare_capacity_mut()[..m * kp]
            .par_chunks_mut(kp)
            .zip(d.spare_capacity_mut()[..m * nb].par_chunks_mut(nb))
            .zip(c.spare_capacity_mut()[..m * nb].par_chunks_mut(nb))
            .zip(x.par_chunks(cols))
            .with_min_len(4)
            .for_each(|(((q, d), c), row)| {
                let mut quantized = [0i8; BLOCK];
                for b in 0..nb {
                    let src = &row[(b * BLOCK).min(cols)..((b + 1) * BLOCK).min(cols)];
                    let (scale, sum) = match <&[f32; BLOCK]>::try_from(src) {
                        Ok(full) => quantize_block_with(full, &mut quantized, isa),
                        Err(_) => {
                            let mut block = [0.0f32; BLOCK];
                            block[..src.len()].copy_from_slice(src);
                            quantize_block_with(&block, &mut quantized, isa)
                        }
                    };
                    for (to, &v) in q[b * BLOCK..][..BLOCK].iter_mut().zip(&quantized) {
                        to.write(v);
                    }
                    d[b].write(scale);
                    c[b].write(128.0 * scale * sum as f32);
                }
            });
        // SAFETY: the loop above wrote every element: `x` has `m` rows (the caller's shape), and
        // each row writes its `nb` blocks of `BLOCK` bytes (`kp = nb · BLOCK`), scales and sums.
        unsafe {
            q.set_len(m * kp);
            d.set_len(m * nb);
            c.set_len(m * nb);
        }
        Q8Input { q, d, c }
    }
}

/// [`quantize_block`] with the instruction set's vectors (the same result, bit for bit).
fn quantize_block_with(values: &[f32; BLOCK], out: &mut [i8; BLOCK], isa: Isa) -> (f32, i32) {
    match isa {
        // SAFETY: `Isa::Avx512` is only chosen where the processor has AVX-512 F.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::quantize_block(values, out) },
        _ => quantize_block(values, out),
    }
}

/// Quantizes one block to `round(v / scale)` in `-127..=127` into `out`; returns the scale and
/// the sum of the quantized values. A block holding NaN or an infinity gets a NaN scale, so the
/// product's outputs turn NaN instead of silently finite. Written in 16 lanes without calls so
/// that it vectorises (it runs over every input value of every product).
fn quantize_block(values: &[f32; BLOCK], out: &mut [i8; BLOCK]) -> (f32, i32) {
    let mut lanes = [0.0f32; 16];
    let mut nan = false;
    for chunk in values.chunks_exact(16) {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            let a = v.abs();
            // NaN never wins `>`: it is looked for separately.
            *m = if a > *m { a } else { *m };
            nan |= v.is_nan();
        }
    }
    let amax = lanes.iter().fold(0.0f32, |m, &a| if a > m { a } else { m });
    if let Some(special) = without_scale(nan, amax, out) {
        return special;
    }
    let scale = amax / 127.0;
    let inv = 1.0 / scale;
    let mut sum = 0i32;
    for (o, v) in out.iter_mut().zip(values) {
        let q = round_to_integer(v * inv).clamp(-127.0, 127.0) as i8;
        *o = q;
        sum += q as i32;
    }
    (scale, sum)
}

/// The result for a block with no usable scale: NaN or an infinity in it (NaN scale, so the
/// product's outputs turn NaN), or all zeros; `None` for an ordinary block.
fn without_scale(nan: bool, amax: f32, out: &mut [i8; BLOCK]) -> Option<(f32, i32)> {
    let scale = if nan || amax.is_infinite() {
        f32::NAN
    } else if amax == 0.0 {
        0.0
    } else {
        return None;
    };
    out.fill(0);
    Some((scale, 0))
}

/// Raw views of one product's buffers.
struct TileArgs {
    xq: *const i8,
    xd: *const f32,
    xc: *const f32,
    wq: *const u8,
    wd: *const f32,
    kp: usize,
    out: *mut f32,
    rows: usize,
}

// SAFETY: the pointers are only read, or written at disjoint cells per tile (see `OutPtr`).
unsafe impl Sync for TileArgs {}

/// One register tile: inputs from row `i`, panels from panel `p`.
#[derive(Clone, Copy)]
struct Micro {
    xq: *const i8,
    xd: *const f32,
    xc: *const f32,
    wq: *const u8,
    wd: *const f32,
    kp: usize,
    out: *mut f32,
    rows: usize,
    /// Output columns this tile's panels cover (the last panel may be partial).
    valid: usize,
}

impl TileArgs {
    #[inline(always)]
    unsafe fn at(&self, i: usize, p: usize, np: usize) -> Micro {
        let nb = self.kp / BLOCK;
        // SAFETY: the caller passes an input row and panel inside the buffers.
        unsafe {
            Micro {
                xq: self.xq.add(i * self.kp),
                xd: self.xd.add(i * nb),
                xc: self.xc.add(i * nb),
                wq: self.wq.add(p * self.kp * PANEL),
                wd: self.wd.add(p * nb * PANEL),
                kp: self.kp,
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

/// One input row × one panel with 16 integer lanes (vectorised by the compiler).
#[inline(always)]
unsafe fn micro_lanes(t: Micro) {
    let nb = t.kp / BLOCK;
    // SAFETY: the input row has `kp` bytes and `nb` scales, the panel `kp × 16` bytes and
    // `nb × 16` scales.
    let (xq, xd, xc, wq, wd) = unsafe {
        (
            std::slice::from_raw_parts(t.xq, t.kp),
            std::slice::from_raw_parts(t.xd, nb),
            std::slice::from_raw_parts(t.xc, nb),
            std::slice::from_raw_parts(t.wq, t.kp * PANEL),
            std::slice::from_raw_parts(t.wd, nb * PANEL),
        )
    };
    let mut acc = [0.0f32; PANEL];
    for b in 0..nb {
        let mut sums = [0i32; PANEL];
        for (x4, w) in xq[b * BLOCK..][..BLOCK]
            .chunks_exact(4)
            .zip(wq[b * BLOCK * PANEL..][..BLOCK * PANEL].chunks_exact(4 * PANEL))
        {
            for l in 0..PANEL {
                for u in 0..4 {
                    sums[l] += w[l * 4 + u] as i32 * x4[u] as i32;
                }
            }
        }
        let scales = &wd[b * PANEL..][..PANEL];
        for l in 0..PANEL {
            acc[l] += (sums[l] as f32 * xd[b] - xc[b]) * scales[l];
        }
    }
    // SAFETY: the tile's output cells of this input row.
    unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), t.out, t.valid) };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BLOCK, Micro, PANEL, QUADS, TILE_M, TileArgs, dispatch_micro, walk};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// [`super::quantize_block`] in four vectors: the same maximum, scale, ties-to-even
    /// rounding and clamp, so the same bytes and sum. (Input quantization ran at a tenth of a
    /// LoRA step on 8-bit frozen weights with the compiler's code.)
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize_block(
        values: &[f32; BLOCK],
        out: &mut [i8; BLOCK],
    ) -> (f32, i32) {
        const LANES: usize = BLOCK / 16;
        // SAFETY: `values` holds `BLOCK` = 4 × 16 floats.
        let v: [__m512; LANES] =
            std::array::from_fn(|c| unsafe { _mm512_loadu_ps(values.as_ptr().add(16 * c)) });
        let mut amax = _mm512_setzero_ps();
        let mut nan: __mmask16 = 0;
        for x in &v {
            amax = _mm512_max_ps(amax, _mm512_abs_ps(*x));
            nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(*x, *x);
        }
        let amax = _mm512_reduce_max_ps(amax);
        if let Some(special) = super::without_scale(nan != 0, amax, out) {
            return special;
        }
        let scale = amax / 127.0;
        let inv = _mm512_set1_ps(1.0 / scale);
        let (lo, hi) = (_mm512_set1_epi32(-127), _mm512_set1_epi32(127));
        let mut sum = _mm512_setzero_si512();
        for (c, x) in v.iter().enumerate() {
            let q = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(*x, inv),
            );
            let q = _mm512_max_epi32(_mm512_min_epi32(q, hi), lo);
            sum = _mm512_add_epi32(sum, q);
            // SAFETY: bytes `16c..16c + 16` of the `BLOCK`-byte output.
            unsafe {
                _mm_storeu_si128(out.as_mut_ptr().add(16 * c).cast(), _mm512_cvtepi32_epi8(q))
            };
        }
        (scale, _mm512_reduce_add_epi32(sum))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile(a: &TileArgs, ms: Range<usize>, rs: Range<usize>) {
        walk!(ms, rs, TILE_M, |i, p, mr, np| {
            // SAFETY: the caller guarantees the ranges lie inside the buffers.
            unsafe { dispatch_micro!(mr, np, micro, (a.at(i, p, np))) }
        })
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn micro<const MR: usize, const NP: usize>(t: Micro) {
        let nb = t.kp / BLOCK;
        let mut acc = [[_mm512_setzero_ps(); NP]; MR];
        for b in 0..nb {
            let mut sums = [[_mm512_setzero_si512(); NP]; MR];
            for g in 0..QUADS {
                let mut wv = [_mm512_setzero_si512(); NP];
                for (j, v) in wv.iter_mut().enumerate() {
                    // SAFETY: panel `j` has `kp × 16` bytes.
                    *v = unsafe {
                        _mm512_loadu_si512(
                            t.wq.add(j * t.kp * PANEL + (b * QUADS + g) * 4 * PANEL)
                                .cast(),
                        )
                    };
                }
                for (i, sums_i) in sums.iter_mut().enumerate() {
                    // SAFETY: input row `i` has `kp` bytes.
                    let x4 = unsafe {
                        t.xq.add(i * t.kp + b * BLOCK + g * 4)
                            .cast::<i32>()
                            .read_unaligned()
                    };
                    let xb = _mm512_set1_epi32(x4);
                    for (s, w) in sums_i.iter_mut().zip(&wv) {
                        *s = _mm512_dpbusd_epi32(*s, *w, xb);
                    }
                }
            }
            let mut wd = [_mm512_setzero_ps(); NP];
            for (j, v) in wd.iter_mut().enumerate() {
                // SAFETY: block `b` of panel `j`.
                *v = unsafe { _mm512_loadu_ps(t.wd.add((j * nb + b) * PANEL)) };
            }
            for (i, (acc_i, sums_i)) in acc.iter_mut().zip(&sums).enumerate() {
                // SAFETY: block `b` of input row `i`.
                let (xd, xc) = unsafe {
                    (
                        _mm512_set1_ps(*t.xd.add(i * nb + b)),
                        _mm512_set1_ps(*t.xc.add(i * nb + b)),
                    )
                };
                for ((a, s), w) in acc_i.iter_mut().zip(sums_i).zip(&wd) {
                    let scaled = _mm512_fmsub_ps(_mm512_cvtepi32_ps(*s), xd, xc);
                    *a = _mm512_fmadd_ps(scaled, *w, *a);
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (j, v) in acc_i.iter().enumerate() {
                let left = t.valid.saturating_sub(j * PANEL).min(PANEL);
                let mask: __mmask16 = ((1u32 << left) - 1) as u16;
                // SAFETY: only the tile's valid output cells are written.
                unsafe { _mm512_mask_storeu_ps(t.out.add(i * t.rows + j * PANEL), mask, *v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set's input quantization gives the portable code's bytes, scale and
    /// sum: ordinary blocks, ties (`x.5` after scaling), zeros, a short block, NaN and infinity.
    #[test]
    fn vector_quantization_matches_the_portable_code() {
        let mut blocks: Vec<[f32; BLOCK]> = Vec::new();
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        for scale in [1e-6f32, 0.03, 1.0, 250.0] {
            let mut block = [0.0f32; BLOCK];
            for v in block.iter_mut() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale;
            }
            blocks.push(block);
        }
        // amax 127 makes the scale 1, so these values are exact ties.
        let mut ties = [0.0f32; BLOCK];
        for (i, v) in ties.iter_mut().enumerate() {
            *v = (i as f32 - 32.0) + 0.5;
        }
        ties[0] = 127.0;
        blocks.push(ties);
        blocks.push([0.0; BLOCK]);
        let mut short = [0.0f32; BLOCK];
        short[..5].copy_from_slice(&[1.0, -2.0, 3.5, -0.25, 7.0]);
        blocks.push(short);
        let mut nan = blocks[1];
        nan[17] = f32::NAN;
        blocks.push(nan);
        let mut inf = blocks[1];
        inf[40] = f32::NEG_INFINITY;
        blocks.push(inf);
        for isa in Isa::available() {
            for (n, block) in blocks.iter().enumerate() {
                let (mut want, mut got) = ([0i8; BLOCK], [0i8; BLOCK]);
                let (ws, wsum) = quantize_block(block, &mut want);
                let (gs, gsum) = quantize_block_with(block, &mut got, isa);
                assert_eq!(want, got, "{isa:?}, block {n}");
                assert_eq!(wsum, gsum, "{isa:?}, block {n}");
                assert!(
                    ws.to_bits() == gs.to_bits() || (ws.is_nan() && gs.is_nan()),
                    "{isa:?}, block {n}"
                );
            }
        }
    }
}

//! Attention on the CPU backend straight from a host-side key/value cache. Burn's Flex backend
//! would copy the whole cached history into a contiguous tensor for every layer of every step
//! (the cache is a slice of a preallocated buffer) and run its attention on one core; here the
//! keys and values stay in one `Vec` per layer and each (row, head) is computed on the rayon pool.

use super::linear::host_f32;
use crate::kernels::math::{LANES, exp_nonpositive, max_lanes, sum_lanes};
use crate::kernels::with_widest_vectors;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use std::ops::Range;

/// How scores are formed: `softcap(q·k · scale)`, visible keys limited to a sliding window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionSpec {
    /// Multiplier of `q·k`.
    pub scale: f64,
    /// Gemma-2's `cap · tanh(s / cap)`, if any.
    pub softcap: Option<f64>,
    /// A query at position `q` sees keys `q − window < k ≤ q` (local layers), else all `k ≤ q`.
    pub window: Option<usize>,
}

/// One layer's keys and values, `[rows, kv_heads, capacity, head_dim]` each, in f32.
#[derive(Debug, Clone)]
pub struct HostKv {
    k: Vec<f32>,
    v: Vec<f32>,
    heads: usize,
    capacity: usize,
    dim: usize,
}

impl HostKv {
    /// An empty cache for `rows × heads` sequences of up to `capacity` positions.
    pub fn new(rows: usize, heads: usize, capacity: usize, dim: usize) -> Self {
        let n = rows * heads * capacity * dim;
        Self {
            k: vec![0.0; n],
            v: vec![0.0; n],
            heads,
            capacity,
            dim,
        }
    }

    /// Writes keys and values laid out `[rows, t, heads, dim]` at positions `start..start + t`.
    /// Each (row, head) on the rayon pool: a prefill writes megabytes per layer.
    fn write(&mut self, k: &[f32], v: &[f32], rows: usize, t: usize, start: usize) {
        let (cap, d, heads) = (self.capacity, self.dim, self.heads);
        if cap * d == 0 {
            return;
        }
        self.k
            .par_chunks_mut(cap * d)
            .zip(self.v.par_chunks_mut(cap * d))
            .take(rows * heads)
            .enumerate()
            .for_each(|(rh, (keys, values))| {
                let (row, h) = (rh / heads, rh % heads);
                for i in 0..t {
                    let from = ((row * t + i) * heads + h) * d;
                    let at = (start + i) * d;
                    keys[at..at + d].copy_from_slice(&k[from..from + d]);
                    values[at..at + d].copy_from_slice(&v[from..from + d]);
                }
            });
    }

    /// A cache holding `k` and `v` (`[rows, heads, capacity, dim]` each).
    #[cfg(test)]
    pub(crate) fn from_parts(
        k: Vec<f32>,
        v: Vec<f32>,
        heads: usize,
        capacity: usize,
        dim: usize,
    ) -> Self {
        Self {
            k,
            v,
            heads,
            capacity,
            dim,
        }
    }

    /// Keys and values, `[rows, heads, capacity, dim]` each.
    #[cfg(test)]
    pub(crate) fn parts(&self) -> (&[f32], &[f32]) {
        (&self.k, &self.v)
    }

    /// Key/value heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Values per head.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows in this cache.
    fn rows(&self) -> usize {
        let per_row = self.heads * self.capacity * self.dim;
        self.k.len().checked_div(per_row).unwrap_or(0)
    }

    /// Keeps rows `keep` in place: row `keep[i]` moves to row `i`. Each `keep[i]` must be at
    /// least `i`, with no repeats, so no row is overwritten before it has moved; a row that
    /// stays where it is costs nothing.
    pub fn retain_rows_in_place(&mut self, keep: &[usize]) {
        let per_row = self.heads * self.capacity * self.dim;
        for (to, &from) in keep.iter().enumerate() {
            debug_assert!(from >= to, "row {from} cannot move up to {to} in place");
            if from != to {
                self.k
                    .copy_within(from * per_row..(from + 1) * per_row, to * per_row);
                self.v
                    .copy_within(from * per_row..(from + 1) * per_row, to * per_row);
            }
        }
        self.k.truncate(keep.len() * per_row);
        self.v.truncate(keep.len() * per_row);
    }

    /// Appends the rows of `other` (same heads and head size, any capacity), their positions
    /// `columns` moved to end at position `end` of this cache (right-aligned, as left-padded
    /// prompts are), zeros in front. The buffers grow in place (a large allocation is remapped,
    /// not copied); only the appended rows are written.
    pub fn append_rows(&mut self, other: &HostKv, columns: Range<usize>, end: usize) {
        let (cap, d) = (self.capacity, self.dim);
        let added = other.rows() * self.heads * cap * d;
        let old = self.k.len();
        self.k.resize(old + added, 0.0);
        self.v.resize(old + added, 0.0);
        if added == 0 {
            return;
        }
        let at = (end - columns.len()) * d..end * d;
        self.k[old..]
            .par_chunks_mut(cap * d)
            .zip(self.v[old..].par_chunks_mut(cap * d))
            .enumerate()
            .for_each(|(rh, (keys, values))| {
                let from = rh * other.capacity * d;
                let src = from + columns.start * d..from + columns.end * d;
                keys[at.clone()].copy_from_slice(&other.k[src.clone()]);
                values[at.clone()].copy_from_slice(&other.v[src]);
            });
    }

    /// A cache whose row `i` copies row `rows[i]` of this one (rows may repeat).
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let per_row = self.heads * self.capacity * self.dim;
        let gather = |src: &[f32]| {
            rows.iter()
                .flat_map(|&r| src[r * per_row..(r + 1) * per_row].iter().copied())
                .collect()
        };
        Self {
            k: gather(&self.k),
            v: gather(&self.v),
            ..*self
        }
    }
}

/// The sizes of one attention call: `rows × tokens` queries of `heads` heads of `dim` values,
/// keys and values of `kv_heads` heads (grouped-query attention when fewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Sequences in the batch.
    pub rows: usize,
    /// New tokens per sequence.
    pub tokens: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (a divisor of `heads`).
    pub kv_heads: usize,
    /// Values per head.
    pub dim: usize,
}

/// Appends this step's keys and values (`[B, T, n_kv, Dh]`, token-major as the projections
/// write them) at position `past` of `cache` (allocated with `capacity` on first use) and
/// attends the queries (`[B, T, H, Dh]`) over every cached position that `key_valid` marks
/// real, causally. Returns `[B, T, H, Dh]`; a query that sees no key gets zeros (as torch's
/// SDPA).
#[allow(clippy::too_many_arguments)]
pub fn attend_rows(
    cache: &mut Option<HostKv>,
    capacity: usize,
    past: usize,
    key_valid: &[Vec<bool>],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    spec: AttentionSpec,
) -> Vec<f32> {
    let AttentionShape {
        rows: b,
        tokens: t,
        heads,
        kv_heads,
        dim: d,
    } = shape;
    let cache = cache.get_or_insert_with(|| HostKv::new(b, kv_heads, capacity, d));
    cache.write(k, v, b, t, past);
    let group = heads / kv_heads;
    let cache = &*cache;
    // One task per (row, head): its `[T, Dh]` output.
    let per_head: Vec<Vec<f32>> = (0..b * heads)
        .into_par_iter()
        .map(|task| {
            let (row, h) = (task / heads, task % heads);
            let kv = (row * kv_heads + h / group) * cache.capacity * d;
            let head = Head {
                keys: &cache.k[kv..kv + cache.capacity * d],
                values: &cache.v[kv..kv + cache.capacity * d],
                valid: &key_valid[row],
                dim: d,
                past,
                spec,
            };
            let mut queries = Vec::with_capacity(t * d);
            for i in 0..t {
                queries.extend_from_slice(&q[((row * t + i) * heads + h) * d..][..d]);
            }
            head.attend(&queries)
        })
        .collect();
    let mut out = vec![0.0f32; b * t * heads * d];
    if out.is_empty() {
        return out;
    }
    // Back to `[B, T, H, Dh]`, a row per task.
    out.par_chunks_mut(t * heads * d)
        .zip(per_head.par_chunks(heads))
        .for_each(|(out_row, row_heads)| {
            for (h, o) in row_heads.iter().enumerate() {
                for (i, oi) in o.chunks_exact(d).enumerate() {
                    out_row[(i * heads + h) * d..][..d].copy_from_slice(oi);
                }
            }
        });
    out
}

/// [`attend_rows`] for Burn tensors: `q: [B, H, T, Dh]`, `k, v: [B, n_kv, T, Dh]`; returns
/// `[B, H, T, Dh]` in `q`'s dtype.
#[allow(clippy::too_many_arguments)]
pub fn append_and_attend<B: Backend>(
    cache: &mut Option<HostKv>,
    capacity: usize,
    past: usize,
    key_valid: &[Vec<bool>],
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    spec: AttentionSpec,
) -> Tensor<B, 4> {
    let [rows, heads, tokens, dim] = q.dims();
    let shape = AttentionShape {
        rows,
        tokens,
        heads,
        kv_heads: k.dims()[1],
        dim,
    };
    let (device, dtype) = (q.device(), q.dtype());
    let token_major = |x: Tensor<B, 4>| host_f32(x.swap_dims(1, 2));
    let out = attend_rows(
        cache,
        capacity,
        past,
        key_valid,
        &token_major(q),
        &token_major(k),
        &token_major(v),
        shape,
        spec,
    );
    Tensor::<B, 4>::from_data(
        TensorData::new(out, [rows, tokens, heads, dim]),
        (&device, dtype),
    )
    .swap_dims(1, 2)
}

/// Queries per block of the prefill path (bounds the score matrix to `BLOCK × keys`).
const QUERY_BLOCK: usize = 128;

/// One (row, head): its cached keys and values and which positions are real.
struct Head<'a> {
    keys: &'a [f32],
    values: &'a [f32],
    valid: &'a [bool],
    dim: usize,
    past: usize,
    spec: AttentionSpec,
}

impl Head<'_> {
    /// Outputs `[T, Dh]` for queries `q` (`[T, Dh]`) at positions `past..past + T`.
    fn attend(&self, q: &[f32]) -> Vec<f32> {
        let d = self.dim;
        let t = q.len() / d;
        let mut out = vec![0.0f32; t * d];
        if t == 1 {
            let mut scores = Vec::with_capacity(self.past + 1);
            let lo = self.lowest_key(self.past);
            attend_one(
                q,
                self.keys,
                self.values,
                d,
                lo..self.past + 1,
                self.valid,
                self.spec,
                &mut scores,
                &mut out,
            );
            return out;
        }
        for i0 in (0..t).step_by(QUERY_BLOCK) {
            let i1 = (i0 + QUERY_BLOCK).min(t);
            self.attend_block(&q[i0 * d..i1 * d], i0, &mut out[i0 * d..i1 * d]);
        }
        out
    }

    /// The first key a query at `pos` may see (sliding window).
    fn lowest_key(&self, pos: usize) -> usize {
        self.spec.window.map_or(0, |w| (pos + 1).saturating_sub(w))
    }

    /// Queries `first..first + n` as matrix products: `S = Q·Kᵀ·scale`, masked soft-max per
    /// query, `O = P·V`.
    fn attend_block(&self, q: &[f32], first: usize, out: &mut [f32]) {
        use faer::linalg::matmul::matmul;
        use faer::{Accum, MatMut, MatRef, Par};
        let d = self.dim;
        let n = q.len() / d;
        let keys = self.past + first + n;
        let mut scores = vec![0.0f32; n * keys];
        matmul(
            MatMut::from_row_major_slice_mut(&mut scores, n, keys),
            Accum::Replace,
            MatRef::from_row_major_slice(q, n, d),
            MatRef::from_row_major_slice(&self.keys[..keys * d], keys, d).transpose(),
            self.spec.scale as f32,
            Par::Seq,
        );
        for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
            let pos = self.past + first + i;
            let lo = self.lowest_key(pos);
            for (j, s) in row.iter_mut().enumerate() {
                if j < lo || j > pos || !self.valid[j] {
                    *s = f32::NEG_INFINITY;
                } else if let Some(cap) = self.spec.softcap {
                    let cap = cap as f32;
                    *s = (*s / cap).tanh() * cap;
                }
            }
            softmax_visible(row);
        }
        matmul(
            MatMut::from_row_major_slice_mut(out, n, d),
            Accum::Replace,
            MatRef::from_row_major_slice(&scores, n, keys),
            MatRef::from_row_major_slice(&self.values[..keys * d], keys, d),
            1.0,
            Par::Seq,
        );
    }
}

with_widest_vectors! {
    /// Soft-max over the entries that are not `-∞` (masked keys get exactly 0; a row with no
    /// visible key becomes all zeros). Weights below `e^-87` relative to the largest are flushed
    /// to zero: they cannot change an f32 sum, and as subnormals they would slow every later
    /// product.
    fn softmax_visible(row: &mut [f32]) = softmax_visible_lanes;
}

#[inline(always)]
fn softmax_visible_lanes(row: &mut [f32]) {
    let max = max_lanes(row);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    for s in row.iter_mut() {
        *s = exp_nonpositive(*s - max);
    }
    let inv = 1.0 / sum_lanes(row);
    for s in row.iter_mut() {
        *s *= inv;
    }
}

with_widest_vectors! {
    /// One query over keys `span` (those `valid` marks real): softmax-weighted sum of values.
    /// `scores` is scratch space.
    #[allow(clippy::too_many_arguments)]
    fn attend_one(
        query: &[f32],
        keys: &[f32],
        values: &[f32],
        d: usize,
        span: std::ops::Range<usize>,
        valid: &[bool],
        spec: AttentionSpec,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) = attend_one_lanes;
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_one_lanes(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    d: usize,
    span: std::ops::Range<usize>,
    valid: &[bool],
    spec: AttentionSpec,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    scores.clear();
    let scale = spec.scale as f32;
    scores.extend(span.clone().map(|j| {
        if !valid[j] {
            return f32::NEG_INFINITY;
        }
        let s = dot(query, &keys[j * d..][..d]) * scale;
        match spec.softcap {
            Some(cap) => (s / cap as f32).tanh() * cap as f32,
            None => s,
        }
    }));
    out.fill(0.0);
    let max = max_lanes(scores);
    if max == f32::NEG_INFINITY {
        return;
    }
    for s in scores.iter_mut() {
        *s = exp_nonpositive(*s - max);
    }
    let total = sum_lanes(scores);
    for (j, &p) in span.zip(scores.iter()).filter(|s| *s.1 != 0.0) {
        let w = p / total;
        for (o, v) in out.iter_mut().zip(&values[j * d..][..d]) {
            *o += w * v;
        }
    }
}

/// Dot product in [`LANES`] independent lanes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_ignores_masked_keys_and_zeroes_blind_rows() {
        let mut row = [1.0, f32::NEG_INFINITY, 3.0, 2.0];
        softmax_visible(&mut row);
        let e = [1.0f64.exp(), 0.0, 3.0f64.exp(), 2.0f64.exp()];
        let total: f64 = e.iter().sum();
        for (got, e) in row.iter().zip(e) {
            assert!((*got as f64 - e / total).abs() < 1e-6, "{row:?}");
        }
        let mut blind = [f32::NEG_INFINITY; 3];
        softmax_visible(&mut blind);
        assert_eq!(blind, [0.0; 3]);
    }
}

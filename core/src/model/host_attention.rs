//! Attention on the CPU backend straight from a host-side key/value cache. Burn's Flex backend
//! would copy the whole cached history into a contiguous tensor for every layer of every step
//! (the cache is a slice of a preallocated buffer) and run its attention on one core; here the
//! keys and values stay in one `Vec` per layer and each (row, head) is computed on the rayon pool.

use super::linear::host_f32;
use crate::kernels::math::{LANES, exp_nonpositive, max_lanes, sum_lanes};
use crate::kernels::with_widest_vectors;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use faer::{MatMut, MatRef};
use rayon::prelude::*;
use std::mem::MaybeUninit;
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
            k: zeros(n),
            v: zeros(n),
            heads,
            capacity,
            dim,
        }
    }

    /// Writes this step's keys and values (`rows × t` tokens of [`Heads`]) at positions
    /// `start..start + t`. Each (row, head) on the rayon pool: a prefill writes megabytes per
    /// layer.
    fn write(&mut self, k: Heads<'_>, v: Heads<'_>, rows: usize, t: usize, start: usize) {
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
                    let at = (start + i) * d;
                    keys[at..at + d].copy_from_slice(k.vector(row * t + i, h, d));
                    values[at..at + d].copy_from_slice(v.vector(row * t + i, h, d));
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

/// One step's head vectors inside a buffer: the vector of head `h` of token `i` (tokens counted
/// over rows, `row · t + position`) starts at `offset + i · token_stride + h · head_stride`. It
/// lets attention read queries, keys and values where the projections wrote them, e.g. inside
/// GPT-NeoX's fused projection, instead of from copies.
#[derive(Debug, Clone, Copy)]
pub struct Heads<'a> {
    data: &'a [f32],
    offset: usize,
    token_stride: usize,
    head_stride: usize,
}

impl<'a> Heads<'a> {
    /// Vectors laid out `[tokens, heads, dim]`, one after another.
    pub fn contiguous(data: &'a [f32], heads: usize, dim: usize) -> Self {
        Self {
            data,
            offset: 0,
            token_stride: heads * dim,
            head_stride: dim,
        }
    }

    /// Part `part` (0 queries, 1 keys, 2 values) of a fused projection whose tokens hold, head
    /// by head, the head's query, key and value (`dim` values each), as GPT-NeoX's
    /// `query_key_value` writes them.
    pub fn fused(data: &'a [f32], heads: usize, dim: usize, part: usize) -> Self {
        Self {
            data,
            offset: part * dim,
            token_stride: 3 * heads * dim,
            head_stride: 3 * dim,
        }
    }

    /// Where head `h` of token `i` starts.
    fn start(&self, i: usize, h: usize) -> usize {
        self.offset + i * self.token_stride + h * self.head_stride
    }

    /// Head `h` of token `i`: `dim` values.
    fn vector(&self, i: usize, h: usize, dim: usize) -> &'a [f32] {
        &self.data[self.start(i, h)..][..dim]
    }

    /// Head `h` of tokens `i..i + n` as an `n × dim` matrix (rows `token_stride` apart).
    fn matrix(&self, i: usize, n: usize, h: usize, dim: usize) -> MatRef<'a, f32> {
        MatRef::from_row_major_slice_with_stride(
            &self.data[self.start(i, h)..],
            n,
            dim,
            self.token_stride,
        )
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

/// Appends this step's keys and values (`rows × tokens` tokens of `kv_heads` heads) at position
/// `past` of `cache` (allocated with `capacity` on first use) and attends the queries (of
/// `heads` heads) over every cached position that `key_valid` marks real, causally. Returns
/// `[B, T, H, Dh]`; a query that sees no key gets zeros (as torch's SDPA).
#[allow(clippy::too_many_arguments)]
pub fn attend_rows(
    cache: &mut Option<HostKv>,
    capacity: usize,
    past: usize,
    key_valid: &[Vec<bool>],
    q: Heads<'_>,
    k: Heads<'_>,
    v: Heads<'_>,
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
    let mut out = zeros(b * t * heads * d);
    if out.is_empty() {
        return out;
    }
    let out_ptr = OutRows(out.as_mut_ptr());
    // One task per (row, head), writing its `[T, Dh]` outputs straight into `out`.
    (0..b * heads).into_par_iter().for_each(|task| {
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
        let first = ((row * t) * heads + h) * d;
        // SAFETY: head `h` of the `t` tokens of `row` is `t` vectors of `d` values, `heads · d`
        // apart from `first`, inside `out`'s `b · t · heads · d` values; no other task writes
        // them, and `out` outlives the parallel loop.
        let rows_out = unsafe {
            MatMut::from_raw_parts_mut(out_ptr.get().add(first), t, d, (heads * d) as isize, 1)
        };
        head.attend(q, row * t, h, rows_out);
    });
    out
}

/// `n` zeros written on the rayon pool: a prefill's cache takes hundreds of megabytes, which
/// one thread would zero while the others wait.
fn zeros(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(1 << 16)
        .for_each(|chunk| chunk.fill(MaybeUninit::new(0.0)));
    // SAFETY: the loop above wrote all `n` elements.
    unsafe { v.set_len(n) };
    v
}

/// The output pointer that attention tasks write their disjoint cells through.
#[derive(Clone, Copy)]
struct OutRows(*mut f32);

impl OutRows {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: each task writes only its own (row, head) cells, and the buffer outlives the loop.
unsafe impl Send for OutRows {}
// SAFETY: as above.
unsafe impl Sync for OutRows {}

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
    let (q, k, v) = (token_major(q), token_major(k), token_major(v));
    let out = attend_rows(
        cache,
        capacity,
        past,
        key_valid,
        Heads::contiguous(&q, heads, dim),
        Heads::contiguous(&k, shape.kv_heads, dim),
        Heads::contiguous(&v, shape.kv_heads, dim),
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
    /// Writes into `out` (`[T, Dh]`) the outputs of the queries of head `h` of tokens
    /// `first..first + T` of `q`, at positions `past..past + T`.
    fn attend(&self, q: Heads<'_>, first: usize, h: usize, mut out: MatMut<'_, f32>) {
        let d = self.dim;
        let t = out.nrows();
        if t == 1 {
            let mut scores = Vec::with_capacity(self.past + 1);
            let lo = self.lowest_key(self.past);
            let row = out
                .row_mut(0)
                .try_as_row_major_mut()
                .expect("an output row is contiguous");
            attend_one(
                q.vector(first, h, d),
                self.keys,
                self.values,
                d,
                lo..self.past + 1,
                self.valid,
                self.spec,
                &mut scores,
                row.as_slice_mut(),
            );
            return;
        }
        for i0 in (0..t).step_by(QUERY_BLOCK) {
            let n = QUERY_BLOCK.min(t - i0);
            self.attend_block(
                q.matrix(first + i0, n, h, d),
                i0,
                out.as_mut().subrows_mut(i0, n),
            );
        }
    }

    /// The first key a query at `pos` may see (sliding window).
    fn lowest_key(&self, pos: usize) -> usize {
        self.spec.window.map_or(0, |w| (pos + 1).saturating_sub(w))
    }

    /// Queries `first..first + n` (`q`, `n × Dh`) as matrix products: `S = Q·Kᵀ·scale`, masked
    /// soft-max per query, `O = P·V` written to `out`.
    fn attend_block(&self, q: MatRef<'_, f32>, first: usize, out: MatMut<'_, f32>) {
        use faer::linalg::matmul::matmul;
        use faer::{Accum, Par};
        let d = self.dim;
        let n = q.nrows();
        let keys = self.past + first + n;
        let mut scores = vec![0.0f32; n * keys];
        matmul(
            MatMut::from_row_major_slice_mut(&mut scores, n, keys),
            Accum::Replace,
            q,
            MatRef::from_row_major_slice(&self.keys[..keys * d], keys, d).transpose(),
            self.spec.scale as f32,
            Par::Seq,
        );
        for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
            let pos = self.past + first + i;
            let lo = self.lowest_key(pos);
            if let Some(cap) = self.spec.softcap {
                let cap = cap as f32;
                for s in &mut row[lo..=pos] {
                    *s = (*s / cap).tanh() * cap;
                }
            }
            row[..lo].fill(f32::NEG_INFINITY);
            row[pos + 1..].fill(f32::NEG_INFINITY);
            for (s, _) in row[lo..=pos]
                .iter_mut()
                .zip(&self.valid[lo..=pos])
                .filter(|(_, valid)| !**valid)
            {
                *s = f32::NEG_INFINITY;
            }
            softmax_visible(row);
        }
        matmul(
            out,
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

    /// Attention computed the obvious way in f64: token `i` of `row` (at position `past + i`)
    /// over the keys `0..=past + i` that `valid` marks, `keys[row][j]`, `values[row][j]` per
    /// head.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        q: &[f32],
        keys: &[Vec<Vec<f32>>],
        values: &[Vec<Vec<f32>>],
        valid: &[Vec<bool>],
        rows: usize,
        t: usize,
        heads: usize,
        d: usize,
        past: usize,
        scale: f64,
    ) -> Vec<f64> {
        let mut out = vec![0.0f64; rows * t * heads * d];
        for row in 0..rows {
            for i in 0..t {
                for h in 0..heads {
                    let qv = &q[((row * t + i) * heads + h) * d..][..d];
                    let seen: Vec<usize> = (0..=past + i).filter(|&j| valid[row][j]).collect();
                    let scores: Vec<f64> = seen
                        .iter()
                        .map(|&j| {
                            let kv = &keys[row][j][h * d..][..d];
                            qv.iter()
                                .zip(kv)
                                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                                .sum::<f64>()
                                * scale
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for (&j, s) in seen.iter().zip(&scores) {
                        let w = (s - max).exp() / total;
                        for c in 0..d {
                            out[((row * t + i) * heads + h) * d + c] +=
                                w * f64::from(values[row][j][h * d + c]);
                        }
                    }
                }
            }
        }
        out
    }

    /// A prefill from a fused projection (queries, keys and values read in place, with a
    /// padded position in one row), then a one-token step from contiguous vectors, against
    /// the obvious computation.
    #[test]
    fn attention_reads_fused_and_contiguous_heads_as_the_obvious_computation() {
        let (rows, t, heads, d, capacity) = (2, 5, 3, 8, 8);
        let value = |n: usize| ((n * 7919 % 211) as f32 / 211.0 - 0.5) * 2.0;
        let fused: Vec<f32> = (0..rows * t * 3 * heads * d).map(value).collect();
        let valid = vec![vec![true; capacity], {
            let mut v = vec![true; capacity];
            v[0] = false;
            v
        }];
        let spec = AttentionSpec {
            scale: 0.35,
            softcap: None,
            window: None,
        };
        let shape = AttentionShape {
            rows,
            tokens: t,
            heads,
            kv_heads: heads,
            dim: d,
        };
        let part = |p: usize| Heads::fused(&fused, heads, d, p);
        let mut cache = None;
        let got = attend_rows(
            &mut cache,
            capacity,
            0,
            &valid,
            part(0),
            part(1),
            part(2),
            shape,
            spec,
        );
        // `[tokens, heads, dim]` copies of the fused parts.
        let split = |p: usize| -> Vec<f32> {
            let mut x = Vec::new();
            for i in 0..rows * t {
                for h in 0..heads {
                    x.extend_from_slice(part(p).vector(i, h, d));
                }
            }
            x
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let by_position = |x: &[f32]| -> Vec<Vec<Vec<f32>>> {
            (0..rows)
                .map(|r| {
                    (0..t)
                        .map(|i| x[(r * t + i) * heads * d..][..heads * d].to_vec())
                        .collect()
                })
                .collect()
        };
        let (mut keys, mut values) = (by_position(&k), by_position(&v));
        let expected = naive(&q, &keys, &values, &valid, rows, t, heads, d, 0, 0.35);
        for (g, e) in got.iter().zip(&expected) {
            assert!((f64::from(*g) - e).abs() < 1e-5, "prefill: {g} vs {e}");
        }

        let step: Vec<f32> = (0..3 * rows * heads * d).map(|n| value(n + 5)).collect();
        let (q1, rest) = step.split_at(rows * heads * d);
        let (k1, v1) = rest.split_at(rows * heads * d);
        let one = AttentionShape { tokens: 1, ..shape };
        let got = attend_rows(
            &mut cache,
            capacity,
            t,
            &valid,
            Heads::contiguous(q1, heads, d),
            Heads::contiguous(k1, heads, d),
            Heads::contiguous(v1, heads, d),
            one,
            spec,
        );
        for r in 0..rows {
            keys[r].push(k1[r * heads * d..][..heads * d].to_vec());
            values[r].push(v1[r * heads * d..][..heads * d].to_vec());
        }
        let expected = naive(q1, &keys, &values, &valid, rows, 1, heads, d, t, 0.35);
        for (g, e) in got.iter().zip(&expected) {
            assert!((f64::from(*g) - e).abs() < 1e-5, "decode: {g} vs {e}");
        }
    }

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

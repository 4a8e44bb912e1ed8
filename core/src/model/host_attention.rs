//! Attention on the CPU backend straight from a host-side key/value cache. Burn's Flex backend
//! would copy the whole cached history into a contiguous tensor for every layer of every step
//! (the cache is a slice of a preallocated buffer) and run its attention on one core; here the
//! keys and values stay in one `Vec` per layer and each (row, head) is computed on the rayon pool.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

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

    /// Writes `[rows, heads, t, dim]` keys and values at positions `start..start + t`.
    fn write(&mut self, k: &[f32], v: &[f32], t: usize, start: usize) {
        let (cap, d) = (self.capacity, self.dim);
        for (seq, (ks, vs)) in k.chunks_exact(t * d).zip(v.chunks_exact(t * d)).enumerate() {
            let at = (seq * cap + start) * d;
            self.k[at..at + t * d].copy_from_slice(ks);
            self.v[at..at + t * d].copy_from_slice(vs);
        }
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

/// Values of a tensor as f32 in row-major order.
fn host_values<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    let data = x.into_data();
    if data.dtype == DType::F32 {
        data.into_vec::<f32>()
            .expect("f32 tensor data converts to Vec<f32>")
    } else {
        data.iter::<f32>().collect()
    }
}

/// Appends this step's `k`, `v` (`[B, n_kv, T, Dh]`) at position `past` of `cache` (allocated
/// with `capacity` on first use) and attends `q` (`[B, H, T, Dh]`) over every cached position
/// that `key_valid` marks real, causally. Returns `[B, H, T, Dh]` in `q`'s dtype; a query that
/// sees no key gets zeros (as torch's SDPA).
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
    let [b, heads, t, d] = q.dims();
    let kv_heads = k.dims()[1];
    let (device, dtype) = (q.device(), q.dtype());
    let cache = cache.get_or_insert_with(|| HostKv::new(b, kv_heads, capacity, d));
    cache.write(&host_values(k), &host_values(v), t, past);
    let q = host_values(q);
    // Output laid out [B, T, H, Dh]: callers swap back to [B, T, H·Dh] without a copy.
    let mut out = vec![0.0f32; b * t * heads * d];
    let group = heads / kv_heads;
    let cache = &*cache;
    out.par_chunks_mut(t * heads * d)
        .enumerate()
        .for_each(|(row, out_row)| {
            let mut scores = Vec::with_capacity(past + t);
            for h in 0..heads {
                let kv = (row * kv_heads + h / group) * cache.capacity * d;
                let (keys, values) = (&cache.k[kv..], &cache.v[kv..]);
                for i in 0..t {
                    let query = &q[((row * heads + h) * t + i) * d..][..d];
                    let out = &mut out_row[(i * heads + h) * d..][..d];
                    let pos = past + i;
                    let lo = spec.window.map_or(0, |w| (pos + 1).saturating_sub(w));
                    attend_one(
                        query,
                        keys,
                        values,
                        d,
                        lo..pos + 1,
                        &key_valid[row],
                        spec,
                        &mut scores,
                        out,
                    );
                }
            }
        });
    Tensor::<B, 4>::from_data(TensorData::new(out, [b, t, heads, d]), (&device, dtype))
        .swap_dims(1, 2)
}

/// One query over keys `span` (those `valid` marks real): softmax-weighted sum of values.
#[allow(clippy::too_many_arguments)]
fn attend_one(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    d: usize,
    span: std::ops::Range<usize>,
    valid: &[bool],
    spec: AttentionSpec,
    scores: &mut Vec<(usize, f32)>,
    out: &mut [f32],
) {
    scores.clear();
    let scale = spec.scale as f32;
    for j in span.filter(|&j| valid[j]) {
        let mut s = dot(query, &keys[j * d..][..d]) * scale;
        if let Some(cap) = spec.softcap {
            let cap = cap as f32;
            s = (s / cap).tanh() * cap;
        }
        scores.push((j, s));
    }
    out.fill(0.0);
    if scores.is_empty() {
        return;
    }
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, s| m.max(s.1));
    let mut total = 0.0f32;
    for s in scores.iter_mut() {
        s.1 = (s.1 - max).exp();
        total += s.1;
    }
    for &(j, p) in scores.iter() {
        let w = p / total;
        for (o, v) in out.iter_mut().zip(&values[j * d..][..d]) {
            *o += w * v;
        }
    }
}

/// Dot product in 16 independent lanes (vectorised by the compiler).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..16 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

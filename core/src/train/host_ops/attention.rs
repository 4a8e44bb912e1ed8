//! Softmax attention for training on the CPU: the heads split from the fused projection's rows
//! and rotated ([`super::heads`]), `softmax(cap(q·kᵀ·scale) + bias)·v` per batch row and head,
//! with its backward pass, on host values. Burn's version forms about twenty
//! `[rows, heads, seq, seq]` tensors per layer (scores, the mask's broadcast, each step of the
//! softmax and their gradients) on views its copies walk element by element; here each head's
//! scores stay in one `seq × seq` buffer and the probabilities are the only thing kept for the
//! backward pass.

use super::heads::{Part, QkvLayout, gather, scatter};
use super::{Cpu, InputGrad, Unary, cast, flex_tensor, host_values};
use crate::kernels::math::exp_nonpositive;
use crate::kernels::{Strided, matmul_serial};
use crate::model::rope::HostRope;
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;
use std::sync::Arc;

/// The shapes of one attention call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    rows: usize,
    heads: usize,
    kv_heads: usize,
    seq: usize,
    head_dim: usize,
}

impl Dims {
    /// The shapes of attention over `rows × seq` tokens with `layout`'s heads.
    fn of(layout: QkvLayout, rows: usize, seq: usize) -> Self {
        Self {
            rows,
            heads: layout.heads(),
            kv_heads: layout.kv_heads(),
            seq,
            head_dim: layout.head_dim(),
        }
    }

    fn head_len(&self) -> usize {
        self.seq * self.head_dim
    }

    fn scores_len(&self) -> usize {
        self.seq * self.seq
    }

    /// Query heads per key/value head.
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// What the backward pass needs: the heads (queries and keys rotated), the probabilities and
/// (with a cap) the tanh of the scaled scores, and how to carry the heads' gradients back to
/// the projection's rows.
#[derive(Clone)]
struct Saved {
    dims: Dims,
    scale: f32,
    layout: QkvLayout,
    rope: Arc<HostRope>,
    q: Arc<Vec<f32>>,
    k: Arc<Vec<f32>>,
    v: Arc<Vec<f32>>,
    probs: Arc<Vec<f32>>,
    tanh: Option<Arc<Vec<f32>>>,
    /// Per batch row: the mask is causal (see [`causal_rows`]).
    causal: Arc<Vec<bool>>,
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Saved({:?})", self.dims)
    }
}

/// Attention over the heads of a fused projection's output `qkv` (`[rows·seq, width]`, heads
/// placed as `layout` says): queries and keys rotated by `rope` (built for the same tokens),
/// then `softmax(cap(q·kᵀ·scale) + bias)·v` with the constant additive `bias` `[B, 1, T, T]`,
/// the heads merged: `[B, T, H·D]`, ready for the output projection. The gradient reaches
/// `qkv`.
///
/// # Panics
/// When `B` is not the backend these paths serve (callers check [`super::serves`]), or `qkv`
/// does not have `rows · seq` rows of the layout's width (a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn attention<B: Backend>(
    qkv: Tensor<B, 2>,
    layout: QkvLayout,
    rope: &Arc<HostRope>,
    rows: usize,
    seq: usize,
    scale: f64,
    softcap: Option<f64>,
    bias: &Tensor<B, 4>,
) -> Tensor<B, 3> {
    let dims = Dims::of(layout, rows, seq);
    assert_eq!(
        qkv.dims(),
        [rows * seq, layout.width()],
        "the projection's rows"
    );
    cast(attention_cpu(
        cast(qkv),
        dims,
        layout,
        rope.clone(),
        scale,
        softcap,
        cast(bias.clone()),
    ))
}

fn attention_cpu(
    qkv: Tensor<Cpu, 2>,
    dims: Dims,
    layout: QkvLayout,
    rope: Arc<HostRope>,
    scale: f64,
    softcap: Option<f64>,
    bias: Tensor<Cpu, 4>,
) -> Tensor<Cpu, 3> {
    let bias = bias.into_primitive().tensor().primitive;
    let qkv = qkv.into_primitive().tensor();
    let values = host_values(&qkv.primitive);
    let heads = |part| gather(&values, layout, part, dims.rows, dims.seq, &rope);
    let bias = host_values(&bias);
    let saved = Saved {
        dims,
        scale: scale as f32,
        layout,
        q: Arc::new(heads(Part::Query)),
        k: Arc::new(heads(Part::Key)),
        v: Arc::new(heads(Part::Value)),
        rope,
        probs: Arc::new(Vec::new()),
        tanh: None,
        causal: Arc::new(causal_rows(&bias, dims)),
    };
    drop(values);
    let (out, probs, tanh) = forward_pass(&saved, &bias, softcap.map(|c| c as f32));
    let out = flex_tensor(out, [dims.rows, dims.seq, dims.heads * dims.head_dim]);
    Unary::new(&qkv).finish(out, || Saved {
        probs: Arc::new(probs),
        tanh: tanh.map(Arc::new),
        ..saved
    })
}

impl InputGrad for Saved {
    /// The projection rows' gradient: the heads' gradients, rotated back into their columns.
    fn input_grad(self, grad: FlexTensor) -> FlexTensor {
        let (dq, dk, dv) = backward_pass(&self, &host_values(&grad));
        let d = self.dims;
        let dqkv = scatter([&dq, &dk, &dv], self.layout, d.rows, d.seq, &self.rope);
        flex_tensor(dqkv, [d.rows * d.seq, self.layout.width()])
    }
}

/// Query rows per block: with a causal mask, block `[q0, q1)` needs only keys `[0, q1)`, so about
/// half of each head's products are skipped.
const QUERY_BLOCK: usize = 64;

/// Keys that queries `[.., q1)` of a batch row can see: `q1` under a causal mask, else all.
fn key_extent(causal: bool, q1: usize, seq: usize) -> usize {
    if causal { q1 } else { seq }
}

/// For each batch row, true when its mask hides every key after its query (as
/// `model::layers::mask_bias` builds it), so that blocks of queries can stop at their last row.
fn causal_rows(bias: &[f32], d: Dims) -> Vec<bool> {
    let t = d.seq;
    bias.chunks(d.scores_len())
        .map(|mask| {
            (0..t).all(|i| {
                mask[i * t + i + 1..(i + 1) * t]
                    .iter()
                    .all(|&m| m == f32::MIN)
            })
        })
        .collect()
}

/// The output `[B, T, H·D]`, the probabilities `[B, H, T, T]` and, with a cap, the tanh of the
/// scaled scores (same layout).
fn forward_pass(
    s: &Saved,
    bias: &[f32],
    softcap: Option<f32>,
) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let d = s.dims;
    let (t, hd, tt) = (d.seq, d.head_dim, d.scores_len());
    let mut probs = vec![0f32; d.rows * d.heads * tt];
    let mut tanh = softcap.map(|_| vec![0f32; d.rows * d.heads * tt]);
    let mut tanh_chunks: Vec<Option<&mut [f32]>> = match &mut tanh {
        Some(v) => v.chunks_mut(tt).map(Some).collect(),
        None => (0..d.rows * d.heads).map(|_| None).collect(),
    };
    let per_head: Vec<Vec<f32>> = probs
        .par_chunks_mut(tt)
        .zip(tanh_chunks.par_iter_mut())
        .enumerate()
        .map(|(bh, (p, th))| {
            let (b, h) = (bh / d.heads, bh % d.heads);
            let kv = b * d.kv_heads + h / d.group();
            let q = &s.q[bh * d.head_len()..(bh + 1) * d.head_len()];
            let k = &s.k[kv * d.head_len()..(kv + 1) * d.head_len()];
            let v = &s.v[kv * d.head_len()..(kv + 1) * d.head_len()];
            let mask = &bias[b * tt..(b + 1) * tt];
            let mut o = vec![0f32; d.head_len()];
            for q0 in (0..t).step_by(QUERY_BLOCK) {
                let q1 = (q0 + QUERY_BLOCK).min(t);
                let (n, kn) = (q1 - q0, key_extent(s.causal[b], q1, t));
                // p[q0..q1, ..kn] = q[q0..q1]·k[..kn]ᵀ
                let block = Strided::rows(&q[q0 * hd..], hd);
                matmul_serial(
                    &mut p[q0 * t..],
                    t,
                    n,
                    kn,
                    hd,
                    block,
                    Strided::cols(k, hd),
                    false,
                );
                for i in q0..q1 {
                    let row = &mut p[i * t..i * t + kn];
                    for (j, x) in row.iter_mut().enumerate() {
                        let mut y = *x * s.scale;
                        if let (Some(cap), Some(th)) = (softcap, th.as_deref_mut()) {
                            let tv = (y / cap).tanh();
                            th[i * t + j] = tv;
                            y = cap * tv;
                        }
                        *x = y + mask[i * t + j];
                    }
                    softmax_in_place(row);
                }
                // o[q0..q1] = p[q0..q1, ..kn]·v[..kn]
                let probs = Strided::rows(&p[q0 * t..], t);
                matmul_serial(
                    &mut o[q0 * hd..],
                    hd,
                    n,
                    hd,
                    kn,
                    probs,
                    Strided::rows(v, hd),
                    false,
                );
            }
            o
        })
        .collect();
    // Merge the heads: row (b, t) is every head's output at t, head after head.
    let mut out = vec![0f32; d.rows * d.heads * d.head_len()];
    out.par_chunks_mut(d.heads * hd)
        .enumerate()
        .for_each(|(bt, row)| {
            let (b, pos) = (bt / t, bt % t);
            for (h, dst) in row.chunks_mut(hd).enumerate() {
                dst.copy_from_slice(&per_head[b * d.heads + h][pos * hd..(pos + 1) * hd]);
            }
        });
    (out, probs, tanh)
}

/// The gradients of `q`, `k` and `v` from the output's `grad` (`[B, T, H·D]`). Each task takes
/// one batch row's key/value head and the query heads it serves, so the key and value gradients
/// are summed within one task.
fn backward_pass(s: &Saved, grad: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = s.dims;
    let (t, hd, tt, g) = (d.seq, d.head_dim, d.scores_len(), d.group());
    let mut dq = vec![0f32; d.rows * d.heads * d.head_len()];
    let mut dk = vec![0f32; d.rows * d.kv_heads * d.head_len()];
    let mut dv = vec![0f32; d.rows * d.kv_heads * d.head_len()];
    dq.par_chunks_mut(g * d.head_len())
        .zip(dk.par_chunks_mut(d.head_len()))
        .zip(dv.par_chunks_mut(d.head_len()))
        .enumerate()
        .for_each(|(kv, ((dq, dk), dv))| {
            let b = kv / d.kv_heads;
            let k = &s.k[kv * d.head_len()..(kv + 1) * d.head_len()];
            let v = &s.v[kv * d.head_len()..(kv + 1) * d.head_len()];
            let mut ds = vec![0f32; QUERY_BLOCK * t];
            let mut go = vec![0f32; d.head_len()];
            for (i, dq) in dq.chunks_mut(d.head_len()).enumerate() {
                let bh = kv * g + i;
                let h = bh % d.heads;
                let q = &s.q[bh * d.head_len()..(bh + 1) * d.head_len()];
                let p = &s.probs[bh * tt..(bh + 1) * tt];
                // This head's slice of the merged gradient.
                for (pos, dst) in go.chunks_mut(hd).enumerate() {
                    let at = ((b * t + pos) * d.heads + h) * hd;
                    dst.copy_from_slice(&grad[at..at + hd]);
                }
                for q0 in (0..t).step_by(QUERY_BLOCK) {
                    let q1 = (q0 + QUERY_BLOCK).min(t);
                    let (n, kn) = (q1 - q0, key_extent(s.causal[b], q1, t));
                    let (p_block, go_block) = (&p[q0 * t..], Strided::rows(&go[q0 * hd..], hd));
                    // dv[..kn] += p[q0..q1, ..kn]ᵀ·go[q0..q1]
                    matmul_serial(dv, hd, kn, hd, n, Strided::cols(p_block, t), go_block, true);
                    // ds = go[q0..q1]·v[..kn]ᵀ, then through the softmax, the cap and the scale
                    matmul_serial(
                        &mut ds,
                        kn,
                        n,
                        kn,
                        hd,
                        go_block,
                        Strided::cols(v, hd),
                        false,
                    );
                    for (r, row) in ds.chunks_mut(kn).take(n).enumerate() {
                        let prow = &p_block[r * t..r * t + kn];
                        let dot: f32 = row.iter().zip(prow).map(|(a, b)| a * b).sum();
                        for (j, (x, pv)) in row.iter_mut().zip(prow).enumerate() {
                            let mut y = pv * (*x - dot);
                            if let Some(th) = &s.tanh {
                                let tv = th[bh * tt + (q0 + r) * t + j];
                                y *= 1.0 - tv * tv;
                            }
                            *x = y * s.scale;
                        }
                    }
                    // dq[q0..q1] = ds·k[..kn], dk[..kn] += dsᵀ·q[q0..q1]
                    let q_block = Strided::rows(&q[q0 * hd..], hd);
                    matmul_serial(
                        &mut dq[q0 * hd..],
                        hd,
                        n,
                        hd,
                        kn,
                        Strided::rows(&ds, kn),
                        Strided::rows(k, hd),
                        false,
                    );
                    matmul_serial(dk, hd, kn, hd, n, Strided::cols(&ds, kn), q_block, true);
                }
            }
        });
    (dq, dk, dv)
}

/// Softmax of one row in place (the row's maximum subtracted first; a row of equal values,
/// such as one fully masked, becomes uniform as in Burn).
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = exp_nonpositive(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
mod tests {
    use super::super::testing::{host, max_diff, tensor, values};
    use super::*;
    use crate::model::config::{RopeConfig, RopeScaling};
    use crate::model::rope::Rope;
    use crate::train::model::layers::attention_burn;

    /// Outputs and the gradient of the projection's rows against Burn's operations (as the
    /// models run on other backends), for both layouts (grouped key/value heads in the stacked
    /// one, partial rotation in the interleaved one), with a padded row (its padding keys
    /// masked and its positions shifted), Gemma-2's cap, more queries than one block, and a
    /// mask that is not causal.
    #[test]
    fn attention_equals_burns_and_so_does_its_gradient() {
        let (rows, seq) = (2, QUERY_BLOCK + 9);
        let mut causal = vec![0f32; rows * seq * seq];
        for r in 0..rows {
            let valid = if r == 0 { seq } else { seq - 3 };
            for i in 0..seq {
                for j in 0..seq {
                    if j > i || j >= valid {
                        causal[(r * seq + i) * seq + j] = f32::MIN;
                    }
                }
            }
        }
        // Every key visible but the second row's last three.
        let open: Vec<f32> = (0..rows * seq * seq)
            .map(|x| {
                if x / (seq * seq) == 1 && x % seq >= seq - 3 {
                    f32::MIN
                } else {
                    0.0
                }
            })
            .collect();
        let positions: Vec<i64> = (0..rows * seq)
            .map(|i| (i % seq) as i64 - if i >= seq { 3 } else { 0 })
            .map(|p| p.max(0))
            .collect();
        for (layout, rotary_dim) in super::super::heads::test_layouts() {
            let dims = Dims::of(layout, rows, seq);
            assert_eq!(causal_rows(&causal, dims), [true, true]);
            assert_eq!(causal_rows(&open, dims), [false, false]);
            let rope = Rope::new(
                rotary_dim,
                RopeConfig {
                    theta: 10_000.0,
                    scaling: RopeScaling::None,
                },
            );
            let host_rope = Arc::new(rope.host_tables(&positions));
            let tables = rope.tables::<Cpu>(
                &positions,
                rows,
                seq,
                burn::tensor::DType::F32,
                &Default::default(),
            );
            let width = layout.width();
            let qkv = values(rows * seq * width, 1);
            let out_width = layout.heads() * layout.head_dim();
            let upstream = tensor(values(rows * seq * out_width, 4), [rows, seq, out_width]);
            for (mask, softcap) in [(&causal, None), (&causal, Some(0.8)), (&open, None)] {
                let run = |host_path: bool| {
                    let x = tensor(qkv.clone(), [rows * seq, width]).require_grad();
                    let bias = tensor(mask.clone(), [rows, 1, seq, seq]);
                    let out = if host_path {
                        attention(
                            x.clone(),
                            layout,
                            &host_rope,
                            rows,
                            seq,
                            0.45,
                            softcap,
                            &bias,
                        )
                    } else {
                        let x3 = x.clone().reshape([rows, seq, width]);
                        attention_burn(x3, layout, &tables, 0.45, softcap, &bias)
                    };
                    let grads = (out.clone() * upstream.clone()).sum().backward();
                    [host(out.inner()), host(x.grad(&grads).unwrap())]
                };
                let (ours, theirs) = (run(true), run(false));
                for (what, (a, b)) in ["out", "dqkv"].iter().zip(ours.iter().zip(&theirs)) {
                    let d = max_diff(a, b);
                    assert!(
                        d < 1e-5,
                        "{layout:?} {softcap:?} causal {}: {what}: {d}",
                        mask == &causal
                    );
                }
            }
        }
    }

    /// A strided input (a transposed view) is read in its logical order.
    #[test]
    fn strided_inputs_are_read_in_their_logical_order() {
        let (rows, seq) = (2, 4);
        let layout = QkvLayout::Interleaved {
            heads: 2,
            head_dim: 4,
        };
        let width = layout.width();
        let base = values(rows * seq * width, 9);
        let strided = tensor(base, [width, rows * seq]).transpose();
        let contiguous = tensor(host(strided.clone().inner()), [rows * seq, width]);
        let bias = tensor(vec![0.0; rows * seq * seq], [rows, 1, seq, seq]);
        let rope = Arc::new(
            Rope::new(
                4,
                RopeConfig {
                    theta: 10_000.0,
                    scaling: RopeScaling::None,
                },
            )
            .host_tables(&[0, 1, 2, 3, 0, 1, 2, 3]),
        );
        let run = |x| attention(x, layout, &rope, rows, seq, 0.3, None, &bias);
        assert_eq!(host(run(strided).inner()), host(run(contiguous).inner()));
    }
}

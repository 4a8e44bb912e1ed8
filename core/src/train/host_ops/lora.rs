//! A frozen dense layer with its LoRA branch in one operation on host values:
//! `x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ`. Burn's version is two broadcast batched products, a scaling and a
//! sum over the whole output forward, and as many again backward; here the low-rank products
//! are row loops over the `r` factor rows, fused with the frozen product's output and the
//! input's gradient.

use super::{Cpu, HostWeight, cast, flex_tensor, host_values};
use crate::model::weights::transpose;
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use rayon::prelude::*;
use std::sync::Arc;

/// Input rows per parallel task of the low-rank products.
const ROWS_PER_TASK: usize = 32;

/// What the backward pass needs.
#[derive(Clone)]
struct Saved {
    weight: Arc<HostWeight>,
    scale: f32,
    rank: usize,
    /// The branch's input: `x`, or with dropout `x ⊙ keep`.
    x: Arc<Vec<f32>>,
    /// Dropout's kept-input factors (0 or `1 / (1 − p)`), when there is dropout.
    keep: Option<Arc<Vec<f32>>>,
    /// `A` `[r, in]`.
    a: Arc<Vec<f32>>,
    /// `Bᵀ` `[r, out]`.
    bt: Arc<Vec<f32>>,
    /// `x·Aᵀ` `[m, r]`.
    low: Arc<Vec<f32>>,
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Saved(rank {}, {:?})", self.rank, self.weight)
    }
}

/// `x·Wᵀ + b + scale·((x ⊙ keep)·Aᵀ)·Bᵀ` for `x` `[m, in]`, the frozen layer `weight`, the
/// adapter's factors `a` `[r, in]` and `b` `[out, r]`, and dropout's factors `keep` (`[m, in]`,
/// 0 or `1 / (1 − p)`; none without dropout); the gradients reach `x`, `a` and `b`. No dense
/// `B·A` is formed.
///
/// # Panics
/// When `B` is not the backend these paths serve (callers check [`super::serves`]), or the
/// shapes do not fit together (a caller bug).
pub fn lora_linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: &Arc<HostWeight>,
    a: Tensor<B, 2>,
    b: Tensor<B, 2>,
    keep: Option<Tensor<B, 2>>,
    scale: f64,
) -> Tensor<B, 2> {
    let [rank, inp] = a.dims();
    let keep = keep.map(|k| {
        assert_eq!(k.dims(), x.dims(), "dropout's factors match the input");
        let k: Tensor<Cpu, 2> = cast(k);
        host_values(&k.into_primitive().tensor().primitive).into_owned()
    });
    assert_eq!(
        inp,
        weight.in_features(),
        "A's columns are the layer's inputs"
    );
    assert_eq!(
        b.dims(),
        [weight.out_features(), rank],
        "B is [out, r] for A's rank"
    );
    cast(lora_cpu(
        cast(x),
        weight.clone(),
        cast(a),
        cast(b),
        keep,
        scale as f32,
    ))
}

fn lora_cpu(
    x: Tensor<Cpu, 2>,
    weight: Arc<HostWeight>,
    a: Tensor<Cpu, 2>,
    b: Tensor<Cpu, 2>,
    keep: Option<Vec<f32>>,
    scale: f32,
) -> Tensor<Cpu, 2> {
    #[derive(Debug)]
    struct LoraBackward;

    impl Backward<Flex, 3> for LoraBackward {
        type State = Saved;

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let Ops {
                parents,
                node,
                state: s,
            } = ops;
            let grad = grads.consume::<Flex>(&node);
            let g = host_values(&grad);
            let (inp, out, r) = (s.weight.in_features(), s.weight.out_features(), s.rank);
            let m = g.len() / out.max(1);
            // dlow = scale·g·B  [m, r]
            let mut dlow = rows_times_transposed(&g, &s.bt, out);
            dlow.iter_mut().for_each(|v| *v *= s.scale);
            let [px, pa, pb] = parents;
            if let Some(n) = pb {
                // dBᵀ = lowᵀ·(scale·g) [r, out], returned as dB [out, r]
                let mut dbt = transposed_times_rows(&s.low, &g, r, out);
                dbt.iter_mut().for_each(|v| *v *= s.scale);
                grads.register::<Flex>(n.id, flex_tensor(transpose(&dbt, r, out), [out, r]));
            }
            if let Some(n) = pa {
                // dA = dlowᵀ·x [r, in]
                let da = transposed_times_rows(&dlow, &s.x, r, inp);
                grads.register::<Flex>(n.id, flex_tensor(da, [r, inp]));
            }
            if let Some(n) = px {
                // dx = g·W + (dlow·A) ⊙ keep [m, in]
                let mut dx = s.weight.backward.matmul(&g, m);
                match &s.keep {
                    None => add_rows_times(&mut dx, &dlow, &s.a, inp),
                    Some(keep) => {
                        let mut branch = vec![0f32; dx.len()];
                        add_rows_times(&mut branch, &dlow, &s.a, inp);
                        for ((d, b), k) in dx.iter_mut().zip(branch).zip(keep.iter()) {
                            *d += b * k;
                        }
                    }
                }
                grads.register::<Flex>(n.id, flex_tensor(dx, [m, inp]));
            }
        }
    }

    let [m, inp] = x.dims();
    let rank = a.dims()[0];
    let out_features = weight.out_features();
    let x = x.into_primitive().tensor();
    let a = a.into_primitive().tensor();
    let b = b.into_primitive().tensor();
    let x_values = host_values(&x.primitive);
    let a_values = host_values(&a.primitive).into_owned();
    let bt = transpose(&host_values(&b.primitive), out_features, rank);
    let mut y = weight.apply(&x_values, m);
    // The branch's input, then low = input·Aᵀ [m, r] and y += scale·low·Bᵀ.
    let branch_input: Vec<f32> = match &keep {
        None => x_values.into_owned(),
        Some(keep) => x_values.iter().zip(keep).map(|(x, k)| x * k).collect(),
    };
    let low = rows_times_transposed(&branch_input, &a_values, inp);
    let scaled: Vec<f32> = low.iter().map(|v| v * scale).collect();
    add_rows_times(&mut y, &scaled, &bt, out_features);
    let out = flex_tensor(y, [m, out_features]);
    let result = match LoraBackward
        .prepare::<NoCheckpointing>([x.node.clone(), a.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Saved {
                weight,
                scale,
                rank,
                x: Arc::new(branch_input),
                keep: keep.map(Arc::new),
                a: Arc::new(a_values),
                bt: Arc::new(bt),
                low: Arc::new(low),
            },
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}

/// `rows · factorsᵀ`: for `rows` `[m, width]` and `factors` `[r, width]`, the `[m, r]` dot
/// products.
fn rows_times_transposed(rows: &[f32], factors: &[f32], width: usize) -> Vec<f32> {
    let r = factors.len() / width.max(1);
    let m = rows.len() / width.max(1);
    let mut out = vec![0f32; m * r];
    out.par_chunks_mut(r * ROWS_PER_TASK)
        .zip(rows.par_chunks(width * ROWS_PER_TASK))
        .for_each(|(out, rows)| {
            for (o, row) in out.chunks_mut(r).zip(rows.chunks(width)) {
                for (v, f) in o.iter_mut().zip(factors.chunks(width)) {
                    *v = row.iter().zip(f).map(|(a, b)| a * b).sum();
                }
            }
        });
    out
}

/// `target += coefficients · factors`: for `coefficients` `[m, r]` and `factors` `[r, width]`,
/// adds to each of the `m` rows of `target` its coefficients' combination of the factor rows.
fn add_rows_times(target: &mut [f32], coefficients: &[f32], factors: &[f32], width: usize) {
    let r = factors.len() / width.max(1);
    target
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(coefficients.par_chunks(r * ROWS_PER_TASK))
        .for_each(|(target, coefficients)| {
            for (t, c) in target.chunks_mut(width).zip(coefficients.chunks(r)) {
                for (&cj, f) in c.iter().zip(factors.chunks(width)) {
                    for (tv, fv) in t.iter_mut().zip(f) {
                        *tv += cj * fv;
                    }
                }
            }
        });
}

/// `coefficientsᵀ · rows`: for `coefficients` `[m, r]` and `rows` `[m, width]`, the `[r, width]`
/// sums over the `m` rows (partial sums per task, added in task order).
fn transposed_times_rows(coefficients: &[f32], rows: &[f32], r: usize, width: usize) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = coefficients
        .par_chunks(r * ROWS_PER_TASK)
        .zip(rows.par_chunks(width * ROWS_PER_TASK))
        .map(|(coefficients, rows)| {
            let mut sum = vec![0f32; r * width];
            for (c, row) in coefficients.chunks(r).zip(rows.chunks(width)) {
                for (&cj, s) in c.iter().zip(sum.chunks_mut(width)) {
                    for (sv, xv) in s.iter_mut().zip(row) {
                        *sv += cj * xv;
                    }
                }
            }
            sum
        })
        .collect();
    let mut total = vec![0f32; r * width];
    for p in partials {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::super::testing::{host, max_diff, tensor, values};
    use super::*;

    /// The output and the gradients of `x`, `A` and `B` equal Burn's products of the same
    /// factors, over more rows than one task holds.
    #[test]
    fn lora_linear_and_its_gradients_equal_burns() {
        let (m, inp, out, r, scale) = (70, 24, 33, 4, 0.75);
        let (w, bias) = (values(out * inp, 1), values(out, 2));
        let weight = Arc::new(HostWeight::new(&w, out, inp, Some(bias.clone())));
        let upstream = tensor(values(m * out, 3), [m, out]);
        // Dropout's factors: every third input dropped, the rest scaled by 1 / (1 − p).
        let keep: Vec<f32> = (0..m * inp)
            .map(|i| if i % 3 == 0 { 0.0 } else { 1.5 })
            .collect();
        for dropout in [false, true] {
            let run = |host_path: bool| {
                let x = tensor(values(m * inp, 4), [m, inp]).require_grad();
                let a = tensor(values(r * inp, 5), [r, inp]).require_grad();
                let b = tensor(values(out * r, 6), [out, r]).require_grad();
                let keep = dropout.then(|| tensor(keep.clone(), [m, inp]));
                let y = if host_path {
                    lora_linear(x.clone(), &weight, a.clone(), b.clone(), keep, scale)
                } else {
                    let branch = match keep {
                        Some(k) => x.clone() * k,
                        None => x.clone(),
                    };
                    x.clone().matmul(tensor(w.clone(), [out, inp]).transpose())
                        + tensor(bias.clone(), [out]).unsqueeze::<2>()
                        + branch
                            .matmul(a.clone().transpose())
                            .matmul(b.clone().transpose())
                            .mul_scalar(scale)
                };
                let grads = (y.clone() * upstream.clone()).sum().backward();
                [
                    host(y.inner()),
                    host(x.grad(&grads).unwrap()),
                    host(a.grad(&grads).unwrap()),
                    host(b.grad(&grads).unwrap()),
                ]
            };
            let (ours, theirs) = (run(true), run(false));
            for (what, (a, b)) in ["y", "dx", "dA", "dB"].iter().zip(ours.iter().zip(&theirs)) {
                let d = max_diff(a, b);
                assert!(d < 1e-4, "dropout {dropout}, {what}: {d}");
            }
        }
    }

    #[test]
    fn the_row_products_agree_with_plain_loops() {
        let (m, r, width) = (5, 3, 7);
        let rows = values(m * width, 7);
        let factors = values(r * width, 8);
        let low = rows_times_transposed(&rows, &factors, width);
        for i in 0..m {
            for j in 0..r {
                let want: f32 = (0..width)
                    .map(|k| rows[i * width + k] * factors[j * width + k])
                    .sum();
                assert!((low[i * r + j] - want).abs() < 1e-6);
            }
        }
        let sums = transposed_times_rows(&low, &rows, r, width);
        for j in 0..r {
            for k in 0..width {
                let want: f32 = (0..m).map(|i| low[i * r + j] * rows[i * width + k]).sum();
                assert!((sums[j * width + k] - want).abs() < 1e-5);
            }
        }
        assert_eq!(
            transpose(&[1., 2., 3., 4., 5., 6.], 2, 3),
            [1., 4., 2., 5., 3., 6.]
        );
    }
}

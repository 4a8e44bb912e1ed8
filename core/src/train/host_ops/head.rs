//! The language-model head fused with its cross-entropy: logits a chunk of counted targets at a
//! time on the CPU kernels, never a `[rows, seq, vocab]` tensor, and the hidden states' gradient
//! made in the same pass.

use super::{Cpu, HostWeight, InputGrad, Unary, cast, flex_tensor, host_values};
use crate::kernels::math::exp_nonpositive;
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;
use std::sync::Arc;

/// Bytes of logits computed at once; the rows this holds (at least 64) share each pass of the
/// head's weights through the caches: 333 rows of a 50k vocabulary, 65 of a 256k one.
const HEAD_CHUNK_BYTES: usize = 64 << 20;

/// Rows of logits per chunk for a vocabulary of `vocab` entries.
fn chunk_rows(vocab: usize) -> usize {
    (HEAD_CHUNK_BYTES / (4 * vocab.max(1))).max(64)
}

/// The targets of a causal-LM loss over a padded batch: position `t` of row `r` predicts the
/// token at `t + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    /// Tokens per row of the hidden states.
    pub seq: usize,
    /// The id at `t + 1` for every `(row, t < seq − 1)`, row-major.
    pub ids: &'a [u32],
    /// Each target's weight (0 for padding and uncounted tokens), same layout.
    pub weights: &'a [f32],
}

/// `Σ weight · −log softmax(cap(h·Eᵀ))[target]` over the targets, for `hidden` `[rows · seq, H]`
/// (row-major by row, then position), the head `E` and Gemma's final soft cap. The logits are
/// made [`chunk_rows`] rows at a time and only for counted targets; when `hidden` takes a gradient
/// it is computed in the same pass (the loss is the graph's end, so the backward pass only scales
/// it by the incoming gradient).
///
/// # Panics
/// When `B` is not the backend these paths serve (callers check [`super::serves`]).
pub fn head_nll<B: Backend>(
    hidden: Tensor<B, 2>,
    head: &Arc<HostWeight>,
    targets: Targets<'_>,
    softcap: Option<f64>,
) -> Tensor<B, 1> {
    cast(head_nll_cpu(cast(hidden), head, targets, softcap))
}

/// The gradient of the summed loss with respect to the hidden states, kept for the backward pass.
#[derive(Clone)]
struct HiddenGrad {
    values: Arc<Vec<f32>>,
    shape: [usize; 2],
}

impl std::fmt::Debug for HiddenGrad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HiddenGrad({:?})", self.shape)
    }
}

fn head_nll_cpu(
    hidden: Tensor<Cpu, 2>,
    head: &HostWeight,
    targets: Targets<'_>,
    softcap: Option<f64>,
) -> Tensor<Cpu, 1> {
    let shape = hidden.dims();
    let x = hidden.into_primitive().tensor();
    let record = Unary::new(&x);
    let (loss, grad) = head_pass(
        &host_values(&x.primitive),
        shape,
        head,
        targets,
        softcap,
        record.tracked(),
        chunk_rows(head.out_features()),
    );
    record.finish(flex_tensor(vec![loss as f32], [1]), || HiddenGrad {
        values: Arc::new(grad),
        shape,
    })
}

impl InputGrad for HiddenGrad {
    /// The gradient computed with the loss, scaled by the loss's incoming gradient.
    fn input_grad(self, grad: FlexTensor) -> FlexTensor {
        let scale = host_values(&grad)[0];
        let mut values = Arc::try_unwrap(self.values).unwrap_or_else(|shared| (*shared).clone());
        values.par_iter_mut().for_each(|v| *v *= scale);
        flex_tensor(values, self.shape)
    }
}

/// The loss (and, `with_grad`, its gradient with respect to `hidden`, else empty) on host
/// values: chunks of `chunk` counted targets, their hidden rows gathered, logits on the kernels, a
/// log-softmax per row in f64 sums, and `weight · (softmax − one-hot)` (times the soft cap's
/// derivative) multiplied back through the head.
fn head_pass(
    hidden: &[f32],
    [n, h]: [usize; 2],
    head: &HostWeight,
    targets: Targets<'_>,
    softcap: Option<f64>,
    with_grad: bool,
    chunk: usize,
) -> (f64, Vec<f32>) {
    let vocab = head.out_features();
    let width = targets.seq.saturating_sub(1);
    let counted: Vec<usize> = (0..targets.ids.len())
        .filter(|&k| targets.weights[k] != 0.0)
        .collect();
    let mut grad = if with_grad {
        vec![0f32; n * h]
    } else {
        Vec::new()
    };
    let mut loss = 0.0f64;
    for chunk in counted.chunks(chunk) {
        let row_of = |k: usize| (k / width) * targets.seq + k % width;
        let mut x = Vec::with_capacity(chunk.len() * h);
        for &k in chunk {
            let r = row_of(k);
            x.extend_from_slice(&hidden[r * h..(r + 1) * h]);
        }
        let mut logits = head.forward.matmul(&x, chunk.len());
        loss += logits
            .par_chunks_mut(vocab)
            .zip(chunk.par_iter())
            .map(|(row, &k)| {
                let target = targets.ids[k] as usize;
                let weight = targets.weights[k];
                weight as f64 * row_nll(row, target, softcap, with_grad.then_some(weight))
            })
            .sum::<f64>();
        if with_grad {
            let dx = head.backward.matmul(&logits, chunk.len());
            for (i, &k) in chunk.iter().enumerate() {
                let r = row_of(k);
                grad[r * h..(r + 1) * h].copy_from_slice(&dx[i * h..(i + 1) * h]);
            }
        }
    }
    (loss, grad)
}

/// `−log softmax(cap(z))[target]` of one row of logits `z`; with `grad_weight`, the row is
/// overwritten by the gradient of `weight · nll` with respect to `z`.
fn row_nll(row: &mut [f32], target: usize, softcap: Option<f64>, grad_weight: Option<f32>) -> f64 {
    // With a cap the row becomes `cap·tanh(z/cap)`; the tanh values give its derivative.
    let tanh: Option<Vec<f32>> = softcap.map(|cap| {
        let cap = cap as f32;
        row.iter_mut()
            .map(|v| {
                let t = (*v / cap).tanh();
                *v = t * cap;
                t
            })
            .collect()
    });
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let picked = row[target] as f64;
    let Some(weight) = grad_weight else {
        let sum: f64 = row.iter().map(|&v| exp_nonpositive(v - max) as f64).sum();
        return max as f64 + sum.ln() - picked;
    };
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        let e = exp_nonpositive(*v - max);
        sum += e as f64;
        *v = e;
    }
    let scale = (weight as f64 / sum) as f32;
    row.iter_mut().for_each(|v| *v *= scale);
    row[target] -= weight;
    if let Some(tanh) = tanh {
        for (v, t) in row.iter_mut().zip(tanh) {
            *v *= 1.0 - t * t;
        }
    }
    max as f64 + sum.ln() - picked
}

#[cfg(test)]
mod tests {
    use super::super::testing::{host, max_diff, tensor, values};
    use super::*;
    use burn::backend::flex::FlexDevice;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Int, TensorData};

    /// The fused head against logits, log-softmax and gather in Burn: the summed loss and the
    /// hidden states' gradient, with uncounted targets, a weight other than 1 and Gemma's cap.
    #[test]
    fn the_fused_head_equals_the_loss_over_burns_logits() {
        let (rows, seq, h, vocab) = (3, 5, 12, 150);
        let width = seq - 1;
        let hidden = values(rows * seq * h, 5);
        let head = values(vocab * h, 6);
        let ids: Vec<u32> = (0..rows * width)
            .map(|k| ((k * 37) % vocab) as u32)
            .collect();
        let weights: Vec<f32> = (0..rows * width)
            .map(|k| match k % 5 {
                0 => 0.0,
                3 => 2.0,
                _ => 1.0,
            })
            .collect();
        let packed = Arc::new(HostWeight::new(&head, vocab, h, None));
        for softcap in [None, Some(0.5)] {
            let x1 = tensor(hidden.clone(), [rows * seq, h]).require_grad();
            let targets = Targets {
                seq,
                ids: &ids,
                weights: &weights,
            };
            let loss1 = head_nll(x1.clone(), &packed, targets, softcap).mul_scalar(0.5);
            let grads = loss1.backward();
            let dx1 = host(x1.grad(&grads).unwrap());

            let x2 = tensor(hidden.clone(), [rows * seq, h]).require_grad();
            let logits = x2
                .clone()
                .matmul(tensor(head.clone(), [vocab, h]).transpose())
                .reshape([rows, seq, vocab])
                .narrow(1, 0, width)
                .reshape([rows * width, vocab]);
            let logits = match softcap {
                Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
                None => logits,
            };
            let picked = log_softmax(logits, 1).gather(
                1,
                Tensor::<Cpu, 2, Int>::from_data(
                    TensorData::new(ids.iter().map(|&i| i as i64).collect(), [rows * width, 1]),
                    &FlexDevice,
                ),
            );
            let loss2 = (picked * tensor(weights.clone(), [rows * width, 1]))
                .sum()
                .neg()
                .mul_scalar(0.5);
            let grads = loss2.backward();
            let dx2 = host(x2.grad(&grads).unwrap());

            let (l1, l2) = (host(loss1.inner())[0], host(loss2.inner())[0]);
            assert!(
                (l1 - l2).abs() < 1e-4 * l2.abs(),
                "{softcap:?}: {l1} vs {l2}"
            );
            assert!(
                max_diff(&dx1, &dx2) < 1e-5,
                "{softcap:?}: {}",
                max_diff(&dx1, &dx2)
            );
            // The last position of every row predicts nothing: no gradient.
            assert!(dx1[(seq - 1) * h..seq * h].iter().all(|v| *v == 0.0));
        }
    }

    #[test]
    fn chunks_of_targets_add_up_to_one_pass() {
        let (rows, seq, h, vocab) = (2, 9, 6, 30);
        let hidden = values(rows * seq * h, 9);
        let head = HostWeight::new(&values(vocab * h, 10), vocab, h, None);
        let ids: Vec<u32> = (0..rows * (seq - 1))
            .map(|k| (k * 7 % vocab) as u32)
            .collect();
        let weights: Vec<f32> = (0..ids.len()).map(|k| (k % 3) as f32).collect();
        let targets = Targets {
            seq,
            ids: &ids,
            weights: &weights,
        };
        let pass = |chunk| head_pass(&hidden, [rows * seq, h], &head, targets, None, true, chunk);
        let ((l1, g1), (l2, g2)) = (pass(3), pass(1000));
        assert!((l1 - l2).abs() < 1e-12 * l2.abs(), "{l1} vs {l2}");
        assert_eq!(g1, g2);
        assert_eq!(chunk_rows(50_304), 333);
        assert_eq!(chunk_rows(256_000), 65);
        assert_eq!(chunk_rows(10_000_000), 64);
    }

    #[test]
    fn an_untracked_head_gives_the_same_loss() {
        let (seq, h, vocab) = (4, 8, 40);
        let hidden = values(seq * h, 7);
        let packed = Arc::new(HostWeight::new(&values(vocab * h, 8), vocab, h, None));
        let ids = [3u32, 9, 27];
        let weights = [1.0f32, 1.0, 1.0];
        let targets = Targets {
            seq,
            ids: &ids,
            weights: &weights,
        };
        let tracked = tensor(hidden.clone(), [seq, h]).require_grad();
        let a = host(head_nll(tracked, &packed, targets, None).inner())[0];
        let b = host(head_nll(tensor(hidden, [seq, h]), &packed, targets, None).inner())[0];
        assert_eq!(a, b);
    }
}

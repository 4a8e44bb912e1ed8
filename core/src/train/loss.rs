//! Masked next-token cross-entropy: the summed negative log-likelihood of the counted targets
//! of a batch ([`super::data::Batch::targets`] / `weights`). The trainer divides by the counted
//! tokens of the whole optimizer step, so a step's loss is the mean over all its micro-batches'
//! counted tokens.

use super::data::Batch;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// `Σ −log p(target)` over the counted positions of `batch`, from logits `[rows, seq, V]`.
pub fn summed_nll<B: Backend>(logits: Tensor<B, 3>, batch: &Batch) -> Tensor<B, 1> {
    weighted_logp(logits, batch).sum().neg()
}

/// `Σ −log p(target)` over the counted positions of each row of `batch`: `[rows]`.
pub fn row_nll<B: Backend>(logits: Tensor<B, 3>, batch: &Batch) -> Tensor<B, 1> {
    let [rows, seq, _] = logits.dims();
    weighted_logp(logits, batch)
        .reshape([rows, seq - 1])
        .sum_dim(1)
        .reshape([rows])
        .neg()
}

/// `log p(target) · weight` at every position, `[rows · (seq − 1), 1]` row-major.
fn weighted_logp<B: Backend>(logits: Tensor<B, 3>, batch: &Batch) -> Tensor<B, 2> {
    let [rows, seq, vocab] = logits.dims();
    let device = logits.device();
    let n = rows * (seq - 1);
    let logp = log_softmax(logits.narrow(1, 0, seq - 1).reshape([n, vocab]), 1);
    let targets: Vec<i64> = batch.targets.iter().map(|&t| t as i64).collect();
    let targets = Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [n, 1]), &device);
    let weights =
        Tensor::<B, 2>::from_data(TensorData::new(batch.weights.clone(), [n, 1]), &device);
    logp.gather(1, targets) * weights
}

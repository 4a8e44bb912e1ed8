//! Teacher-forced scoring (per-token log-probabilities) and embeddings (mean of the final-normed
//! hidden states over the real tokens), both batched with left padding.

use super::EngineError;
use super::batch::PaddedBatch;
use crate::model::{LanguageModel, Step};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};

/// Per-token log-probabilities of one sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScores {
    /// The sequence's token ids.
    pub token_ids: Vec<u32>,
    /// `log p(token_i | tokens_<i)` for `i >= 1` (one fewer than `token_ids`).
    pub logprobs: Vec<f32>,
}

impl TokenScores {
    /// Sum of the log-probabilities.
    pub fn total(&self) -> f64 {
        self.logprobs.iter().map(|&v| v as f64).sum()
    }
}

fn check_rows(rows: &[Vec<u32>], context: usize) -> Result<(), EngineError> {
    for (i, r) in rows.iter().enumerate() {
        if r.is_empty() {
            return Err(EngineError::Input {
                message: format!("text {i} is empty after tokenization"),
            });
        }
        if r.len() > context {
            return Err(EngineError::Input {
                message: format!(
                    "text {i} has {} tokens but the model's context is {context}; shorten it",
                    r.len()
                ),
            });
        }
    }
    Ok(())
}

fn prefill<B: Backend>(
    model: &LanguageModel<B>,
    batch: &PaddedBatch,
) -> Result<Tensor<B, 3>, EngineError> {
    let mut cache = model.new_cache(batch.batch, batch.seq);
    Ok(model.forward(
        &Step {
            ids: &batch.ids,
            positions: &batch.positions,
            valid: &batch.valid,
            batch: batch.batch,
            seq: batch.seq,
        },
        &mut cache,
    )?)
}

/// Scores `rows` (already tokenized) as one left-padded batch.
pub fn score<B: Backend>(
    model: &LanguageModel<B>,
    rows: &[Vec<u32>],
    pad_id: u32,
) -> Result<Vec<TokenScores>, EngineError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    check_rows(rows, model.max_positions())?;
    let batch = PaddedBatch::left_pad(rows, pad_id);
    let (b, t) = (batch.batch, batch.seq);
    if t < 2 {
        return Ok(rows
            .iter()
            .map(|r| TokenScores {
                token_ids: r.clone(),
                logprobs: Vec::new(),
            })
            .collect());
    }
    let hidden = prefill(model, &batch)?;
    let device = hidden.device();
    let logits = model
        .logits(hidden.narrow(1, 0, t - 1))
        .cast(FloatDType::F32);
    let logp = log_softmax(logits, 2);
    let targets: Vec<i64> = (0..b)
        .flat_map(|r| batch.ids[r * t + 1..(r + 1) * t].iter().map(|&i| i as i64))
        .collect();
    let targets = Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [b, t - 1, 1]), &device);
    let picked = logp.gather(2, targets).reshape([b * (t - 1)]);
    let values = picked
        .into_data()
        .into_vec::<f32>()
        .map_err(|e| EngineError::Backend {
            message: format!("cannot read scores back from the device: {e:?}"),
        })?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(r, ids)| {
            let pad = batch.padding(r);
            // Column c of `values` scores token c + 1; the first real token is at column `pad`.
            let start = r * (t - 1) + pad;
            TokenScores {
                token_ids: ids.clone(),
                logprobs: values[start..start + ids.len() - 1].to_vec(),
            }
        })
        .collect())
}

/// Mean of the final-normed hidden states over each row's real tokens, as one batch.
pub fn embed<B: Backend>(
    model: &LanguageModel<B>,
    rows: &[Vec<u32>],
    pad_id: u32,
) -> Result<Vec<Vec<f32>>, EngineError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    check_rows(rows, model.max_positions())?;
    let batch = PaddedBatch::left_pad(rows, pad_id);
    let (b, t) = (batch.batch, batch.seq);
    let hidden = prefill(model, &batch)?.cast(FloatDType::F32);
    let h = hidden.dims()[2];
    let device = hidden.device();
    let weights: Vec<f32> = (0..b)
        .flat_map(|r| {
            let n = batch.lengths[r] as f32;
            batch.valid[r * t..(r + 1) * t]
                .iter()
                .map(move |&v| if v { 1.0 / n } else { 0.0 })
        })
        .collect();
    let weights = Tensor::<B, 3>::from_data(
        TensorData::new(weights, [b, t, 1]),
        (&device, burn::tensor::DType::F32),
    );
    let mean = (hidden * weights).sum_dim(1).reshape([b * h]);
    let values = mean
        .into_data()
        .into_vec::<f32>()
        .map_err(|e| EngineError::Backend {
            message: format!("cannot read embeddings back from the device: {e:?}"),
        })?;
    Ok(values.chunks_exact(h).map(<[f32]>::to_vec).collect())
}

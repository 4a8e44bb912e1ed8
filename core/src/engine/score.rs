//! Teacher-forced scoring (per-token log-probabilities) and embeddings (mean of the final-normed
//! hidden states over the real tokens, or over every position as the `cell2sentence` package
//! does), all batched with left padding.

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

/// Most logits (rows × positions × vocabulary f32 values) [`score`] forms at once: 16 Mi
/// values, 64 MiB. A batch of 16 Gemma texts of 800 tokens would otherwise form 13 GB of them.
pub const LOGIT_BUDGET: usize = 1 << 24;

/// Positions whose logits are formed together for `rows` rows of a `vocab`-wide head under
/// `budget` values (at least one position).
fn positions_per_chunk(rows: usize, vocab: usize, budget: usize) -> usize {
    (budget / (rows * vocab).max(1)).max(1)
}

/// Scores `rows` (already tokenized) as one left-padded batch, forming the logits of at most
/// [`LOGIT_BUDGET`] values at a time.
pub fn score<B: Backend>(
    model: &LanguageModel<B>,
    rows: &[Vec<u32>],
    pad_id: u32,
) -> Result<Vec<TokenScores>, EngineError> {
    score_with_logit_budget(model, rows, pad_id, LOGIT_BUDGET)
}

/// [`score`] with its own bound on the logits formed at once (`budget` f32 values; a chunk
/// holds at least one position of every row).
pub fn score_with_logit_budget<B: Backend>(
    model: &LanguageModel<B>,
    rows: &[Vec<u32>],
    pad_id: u32,
    budget: usize,
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
    let chunk = positions_per_chunk(b, model.vocab_rows(), budget);
    let mut picked = Vec::with_capacity((t - 1).div_ceil(chunk));
    for start in (0..t - 1).step_by(chunk) {
        let len = chunk.min(t - 1 - start);
        let logits = model
            .logits(hidden.clone().narrow(1, start, len))
            .cast(FloatDType::F32);
        let logp = log_softmax(logits, 2);
        // Position `c` scores token `c + 1`.
        let targets: Vec<i64> = (0..b)
            .flat_map(|r| {
                let from = r * t + start + 1;
                batch.ids[from..from + len].iter().map(|&i| i as i64)
            })
            .collect();
        let targets =
            Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [b, len, 1]), &device);
        picked.push(logp.gather(2, targets).reshape([b, len]));
    }
    let picked = Tensor::cat(picked, 1).reshape([b * (t - 1)]);
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
    let t = batch.seq;
    let weights: Vec<f32> = (0..batch.batch)
        .flat_map(|r| {
            let n = batch.lengths[r] as f32;
            batch.valid[r * t..(r + 1) * t]
                .iter()
                .map(move |&v| if v { 1.0 / n } else { 0.0 })
        })
        .collect();
    weighted_mean(model, &batch, weights)
}

/// The `cell2sentence` package's embedding of `rows` as one left-padded batch
/// (`CSModel.embed_cells_batched`): positions `0..T-1` on every row, padding included; a padding
/// position sees no key, so its attention output is zero (torch's SDPA) and its hidden state is
/// the pad token's own; the mean runs over all `T` positions, padding included. A row's embedding
/// therefore depends on the rows it is batched with; a batch of one equals [`embed`].
pub fn embed_compat<B: Backend>(
    model: &LanguageModel<B>,
    rows: &[Vec<u32>],
    pad_id: u32,
) -> Result<Vec<Vec<f32>>, EngineError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    check_rows(rows, model.max_positions())?;
    let batch = PaddedBatch::left_pad(rows, pad_id).with_column_positions();
    let weights = vec![1.0 / batch.seq as f32; batch.batch * batch.seq];
    weighted_mean(model, &batch, weights)
}

/// `Σ_t weights[r, t] · hidden[r, t]` of the final-normed hidden states, one vector per row.
fn weighted_mean<B: Backend>(
    model: &LanguageModel<B>,
    batch: &PaddedBatch,
    weights: Vec<f32>,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let (b, t) = (batch.batch, batch.seq);
    let hidden = prefill(model, batch)?.cast(FloatDType::F32);
    let h = hidden.dims()[2];
    let device = hidden.device();
    let weights = Tensor::<B, 3>::from_data(
        TensorData::new(weights, [b, t, 1]),
        (&device, burn::tensor::DType::F32),
    );
    let mean = (hidden * weights).sum_dim(1).reshape([b * h]);
    let values = read_f32(mean, "embeddings")?;
    Ok(values.chunks_exact(h).map(<[f32]>::to_vec).collect())
}

/// Rows of continuations run through the model in one step (bounds the `[rows, T, V]` logits).
const CONTINUATION_ROWS: usize = 64;

/// Sum of log-probabilities of each continuation after its prompt:
/// `out[p][c] = Σ_j log p(continuations[p][c][j] | prompts[p], continuations[p][c][..j])`.
///
/// The prompts run once, as one left-padded batch; their keys and values are then shared by all
/// of their continuations, which run together, right-padded, in chunks of
/// [`CONTINUATION_ROWS`] rows. Equal (to rounding) to scoring each `prompt + continuation`
/// alone with [`score`].
pub fn score_continuations<B: Backend>(
    model: &LanguageModel<B>,
    prompts: &[Vec<u32>],
    continuations: &[Vec<Vec<u32>>],
    pad_id: u32,
) -> Result<Vec<Vec<f64>>, EngineError> {
    if prompts.len() != continuations.len() {
        return Err(EngineError::Input {
            message: format!(
                "{} prompts but {} lists of continuations",
                prompts.len(),
                continuations.len()
            ),
        });
    }
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    check_rows(prompts, model.max_positions())?;
    let longest = continuations
        .iter()
        .flatten()
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    if continuations.iter().flatten().any(Vec::is_empty) {
        return Err(EngineError::Input {
            message: "a continuation is empty after tokenization".into(),
        });
    }
    if let Some(bad) = continuations
        .iter()
        .flatten()
        .flatten()
        .find(|&&id| id as usize >= model.vocab_rows())
    {
        return Err(EngineError::Input {
            message: format!(
                "token id {bad} is outside the model's vocabulary of {} rows",
                model.vocab_rows()
            ),
        });
    }
    let batch = PaddedBatch::left_pad(prompts, pad_id);
    let (p, t) = (batch.batch, batch.seq);
    if let Some(long) = batch
        .lengths
        .iter()
        .map(|l| l + longest)
        .find(|&l| l > model.max_positions())
    {
        return Err(EngineError::Input {
            message: format!(
                "a prompt with its longest continuation has {long} tokens but the model's \
                 context is {}; shorten the prompt (fewer genes) or the candidates",
                model.max_positions()
            ),
        });
    }
    let mut cache = model.new_cache(p, t + longest.saturating_sub(1).max(1));
    let hidden = model.forward(
        &Step {
            ids: &batch.ids,
            positions: &batch.positions,
            valid: &batch.valid,
            batch: p,
            seq: t,
        },
        &mut cache,
    )?;
    // Each prompt's next-token distribution scores the first token of its continuations.
    let last = log_softmax(
        model
            .logits(hidden.narrow(1, t - 1, 1))
            .cast(FloatDType::F32),
        2,
    );
    let vocab = model.vocab_rows();
    let first = read_f32(last.reshape([p * vocab]), "scores")?;
    let mut out: Vec<Vec<f64>> = continuations
        .iter()
        .enumerate()
        .map(|(r, conts)| {
            conts
                .iter()
                .map(|c| f64::from(first[r * vocab + c[0] as usize]))
                .collect()
        })
        .collect();
    if longest < 2 {
        return Ok(out);
    }
    // The remaining tokens: (prompt row, continuation index) pairs in chunks.
    let pairs: Vec<(usize, usize)> = continuations
        .iter()
        .enumerate()
        .flat_map(|(r, conts)| (0..conts.len()).map(move |c| (r, c)))
        .filter(|&(r, c)| continuations[r][c].len() > 1)
        .collect();
    for chunk in pairs.chunks(CONTINUATION_ROWS) {
        let rows: Vec<usize> = chunk.iter().map(|&(r, _)| r).collect();
        let mut shared = cache.select_rows(&rows);
        let seq = chunk
            .iter()
            .map(|&(r, c)| continuations[r][c].len() - 1)
            .max()
            .unwrap_or(1);
        let n = chunk.len();
        let mut ids = vec![pad_id; n * seq];
        let mut positions = vec![0i64; n * seq];
        let mut valid = vec![false; n * seq];
        let mut targets = vec![0i64; n * seq];
        for (i, &(r, c)) in chunk.iter().enumerate() {
            let cont = &continuations[r][c];
            let start = batch.lengths[r] as i64;
            for j in 0..seq {
                let at = i * seq + j;
                positions[at] = start + j as i64;
                if j + 1 < cont.len() {
                    ids[at] = cont[j];
                    valid[at] = true;
                    targets[at] = i64::from(cont[j + 1]);
                }
            }
        }
        let hidden = model.forward(
            &Step {
                ids: &ids,
                positions: &positions,
                valid: &valid,
                batch: n,
                seq,
            },
            &mut shared,
        )?;
        let device = hidden.device();
        let logp = log_softmax(model.logits(hidden).cast(FloatDType::F32), 2);
        let targets =
            Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [n, seq, 1]), &device);
        let picked = read_f32(logp.gather(2, targets).reshape([n * seq]), "scores")?;
        for (i, &(r, c)) in chunk.iter().enumerate() {
            let used = continuations[r][c].len() - 1;
            out[r][c] += picked[i * seq..i * seq + used]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>();
        }
    }
    Ok(out)
}

fn read_f32<B: Backend>(tensor: Tensor<B, 1>, what: &str) -> Result<Vec<f32>, EngineError> {
    tensor
        .into_data()
        .into_vec::<f32>()
        .map_err(|e| EngineError::Backend {
            message: format!("cannot read {what} back from the device: {e:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_chunks_stay_within_the_budget() {
        // 16 Gemma texts of 800 tokens: 64 MiB of logits at a time, not 13 GB.
        let (rows, vocab) = (16, 256_000);
        let chunk = positions_per_chunk(rows, vocab, LOGIT_BUDGET);
        assert!(
            chunk >= 1 && rows * chunk * vocab <= LOGIT_BUDGET,
            "{chunk}"
        );
        assert_eq!(positions_per_chunk(2, 10, 100), 5);
        // A budget below one position still makes progress, one position at a time.
        assert_eq!(positions_per_chunk(64, 256_000, 1), 1);
    }
}

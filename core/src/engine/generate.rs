//! Batched generation with a preallocated KV cache: one prefill over the left-padded prompts,
//! then one decode step per token, each row continuing from its own position. Rows stop at an
//! EOS id, a stop string, the token budget or the context end; the whole call stops early when
//! the cancel flag is raised. Tokens stream to a callback as they are chosen.

use super::EngineError;
use super::batch::PaddedBatch;
use super::sampling::{SamplingParams, choose};
use super::tokenizer::TextTokenizer;
use crate::model::{LanguageModel, Step};
use crate::rng::SplitMix64;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Settings of one generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Upper bound on new tokens per row.
    pub max_new_tokens: usize,
    /// Temperature, top-k, top-p, seed.
    pub sampling: SamplingParams,
    /// A row stops once its text contains one of these (the text is cut before it).
    pub stop_strings: Vec<String>,
    /// Keep going past EOS ids (benchmarks want a fixed number of tokens).
    pub ignore_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            sampling: SamplingParams::default(),
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-sequence id.
    Eos,
    /// `max_new_tokens` reached.
    MaxTokens,
    /// A stop string appeared.
    StopString,
    /// The model's context is full.
    ContextFull,
    /// The caller raised the cancel flag.
    Cancelled,
}

impl StopReason {
    /// A lowercase name for JSON output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::MaxTokens => "max_tokens",
            Self::StopString => "stop_string",
            Self::ContextFull => "context_full",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The result for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Decoded new text (special tokens skipped, cut before a stop string).
    pub text: String,
    /// New token ids only (the prompt is removed by token slicing), including a final EOS.
    pub token_ids: Vec<u32>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Why the row stopped.
    pub stop_reason: StopReason,
    /// Sum of the new tokens' log-probabilities under the model (before temperature and
    /// top-k/top-p), EOS included.
    pub logprob: f64,
}

/// Timing of a generation call (for benchmarks and progress displays).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Seconds spent in the prefill step (until its logits reached the host).
    pub prefill_secs: f64,
    /// Prompt tokens processed in the prefill (batch × padded length).
    pub prefill_tokens: usize,
    /// Seconds spent in decode steps.
    pub decode_secs: f64,
    /// Decode steps run (each produces one token per row).
    pub decode_steps: usize,
}

/// A streamed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent<'a> {
    /// Which prompt.
    pub row: usize,
    /// The new token.
    pub token_id: u32,
    /// Text that became final with this token (may be empty mid-character).
    pub text_delta: &'a str,
}

struct RowState {
    ids: Vec<u32>,
    text: String,
    emitted: usize,
    position: i64,
    done: Option<StopReason>,
    logprob: f64,
}

/// Generates continuations of already tokenized `prompts`.
#[allow(clippy::too_many_arguments)]
pub fn generate<B: Backend>(
    model: &LanguageModel<B>,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    eos_ids: &[u32],
    pad_id: u32,
    on_token: &mut dyn FnMut(TokenEvent<'_>),
    cancel: Option<&AtomicBool>,
) -> Result<(Vec<Generation>, GenerationStats), EngineError> {
    options
        .sampling
        .validate()
        .map_err(|message| EngineError::Input { message })?;
    if prompts.is_empty() {
        return Ok((Vec::new(), GenerationStats::default()));
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(EngineError::Input {
            message: format!(
                "prompt {i} is empty after tokenization; give some text (this tokenizer adds no \
                 start token)"
            ),
        });
    }
    let context = model.max_positions();
    let batch = PaddedBatch::left_pad(prompts, pad_id);
    if let Some(long) = batch.lengths.iter().find(|&&l| l > context) {
        return Err(EngineError::Input {
            message: format!(
                "the prompt has {long} tokens but the model's context is {context}; shorten it"
            ),
        });
    }
    let budget = options
        .max_new_tokens
        .min(context.saturating_sub(batch.seq));
    let rows = batch.batch;
    let mut stats = GenerationStats {
        prefill_tokens: rows * batch.seq,
        ..Default::default()
    };
    let mut states: Vec<RowState> = batch
        .lengths
        .iter()
        .map(|&l| RowState {
            ids: Vec::new(),
            text: String::new(),
            emitted: 0,
            position: l as i64,
            done: None,
            logprob: 0.0,
        })
        .collect();
    if options.max_new_tokens == 0 {
        return Ok((finish(states, &batch.lengths), stats));
    }
    let seed = options.sampling.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let mut rng = SplitMix64::new(seed);
    let vocab_rows = model.vocab_rows();
    let allowed = |id: usize| id < vocab_rows && tokenizer.knows(id as u32);

    let mut cache = model.new_cache(rows, batch.seq + budget.max(1));
    let started = Instant::now();
    let hidden = model.forward(
        &Step {
            ids: &batch.ids,
            positions: &batch.positions,
            valid: &batch.valid,
            batch: rows,
            seq: batch.seq,
        },
        &mut cache,
    )?;
    let mut logits = last_logits(model, hidden)?;
    stats.prefill_secs = started.elapsed().as_secs_f64();

    let decode_started = Instant::now();
    loop {
        let cancelled = cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let mut next_ids = vec![pad_id; rows];
        for (row, state) in states.iter_mut().enumerate() {
            if state.done.is_some() {
                continue;
            }
            if cancelled {
                state.done = Some(StopReason::Cancelled);
                continue;
            }
            let row_logits = &logits[row * vocab_rows..(row + 1) * vocab_rows];
            let id = choose(row_logits, &options.sampling, &mut rng, allowed);
            next_ids[row] = id;
            state.logprob += token_logprob(row_logits, id);
            state.ids.push(id);
            state.position += 1;
            state.text = tokenizer.decode(&state.ids)?;
            if let Some(cut) = find_stop(&state.text, &options.stop_strings) {
                state.text.truncate(cut);
                state.done = Some(StopReason::StopString);
            } else if !options.ignore_eos && eos_ids.contains(&id) {
                state.done = Some(StopReason::Eos);
            } else if state.ids.len() >= options.max_new_tokens {
                state.done = Some(StopReason::MaxTokens);
            } else if state.ids.len() >= budget {
                state.done = Some(StopReason::ContextFull);
            }
            // Hold back a trailing replacement char: it may be half of a multi-byte character.
            let stable = if state.done.is_none() && state.text.ends_with('\u{FFFD}') {
                state.text.trim_end_matches('\u{FFFD}').len()
            } else {
                state.text.len()
            };
            let delta = if stable >= state.emitted && state.text.is_char_boundary(state.emitted) {
                &state.text[state.emitted..stable]
            } else {
                ""
            };
            on_token(TokenEvent {
                row,
                token_id: id,
                text_delta: delta,
            });
            state.emitted = state.emitted.max(stable);
        }
        if states.iter().all(|s| s.done.is_some()) {
            break;
        }
        let positions: Vec<i64> = states.iter().map(|s| s.position - 1).collect();
        let valid = vec![true; rows];
        let hidden = model.forward(
            &Step {
                ids: &next_ids,
                positions: &positions,
                valid: &valid,
                batch: rows,
                seq: 1,
            },
            &mut cache,
        )?;
        logits = last_logits(model, hidden)?;
        stats.decode_steps += 1;
    }
    stats.decode_secs = decode_started.elapsed().as_secs_f64();
    Ok((finish(states, &batch.lengths), stats))
}

fn finish(states: Vec<RowState>, lengths: &[usize]) -> Vec<Generation> {
    states
        .into_iter()
        .zip(lengths)
        .map(|(s, &l)| Generation {
            text: s.text,
            token_ids: s.ids,
            prompt_tokens: l,
            stop_reason: s.done.unwrap_or(StopReason::MaxTokens),
            logprob: s.logprob,
        })
        .collect()
}

/// `log softmax(logits)[id]`, in f64 (NaN logits count as impossible).
fn token_logprob(logits: &[f32], id: u32) -> f64 {
    let max = logits
        .iter()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let total: f64 = logits
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| f64::from(v - max).exp())
        .sum();
    f64::from(logits[id as usize] - max) - total.ln()
}

/// Byte offset of the earliest stop string in `text`.
fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// Logits of the last position of every row, on the host as f32 (`[B · V]`).
fn last_logits<B: Backend>(
    model: &LanguageModel<B>,
    hidden: Tensor<B, 3>,
) -> Result<Vec<f32>, EngineError> {
    let [b, t, _] = hidden.dims();
    let last = hidden.narrow(1, t - 1, 1);
    let logits = model.logits(last).cast(FloatDType::F32);
    let v = logits.dims()[2];
    let data = logits.reshape([b * v]).into_data();
    data.into_vec::<f32>().map_err(|e| EngineError::Backend {
        message: format!("cannot read logits back from the device: {e:?}"),
    })
}

//! Generation in bounded, continuously refilled batches with a preallocated KV cache. Requests
//! wait sorted by prompt length and are taken into batches under a row cap and a KV-memory
//! budget ([`super::scheduler`]); a batch runs one prefill over its left-padded prompts, then one
//! decode step per token, each row continuing from its own position. A row stops at an EOS id,
//! a stop string, its token budget or the context end, and then leaves the batch (its cache row
//! is dropped), so finished rows cost nothing; once a quarter of the batch is free the next
//! requests are prefilled and join it (continuous batching), so the batch stays full while work
//! waits. Every row samples from its own random stream, derived from the seed and its request,
//! so its output does not depend on what shares its batch. Tokens stream to a callback as they
//! are chosen, text incrementally decoded and never showing a stop string; results come back in
//! request order.

use super::EngineError;
use super::batch::PaddedBatch;
use super::detokenize::IncrementalDecoder;
use super::sampling::{SampleError, SamplingParams, choose};
use super::scheduler::{self, Batch, Group, Limits, Queue, Running, Work};
use super::stop::StopFilter;
use super::tokenizer::TextTokenizer;
use crate::model::kv_cache::KvCache;
use crate::model::{LanguageModel, Step};
use crate::rng::{SplitMix64, mix64};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Default cap on the rows of one batch.
pub const DEFAULT_MAX_BATCH_ROWS: usize = 32;

/// Default key/value cache budget of one batch: 1 GiB.
pub const DEFAULT_KV_BUDGET_BYTES: u64 = 1 << 30;

/// Settings of one generation call.
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
    /// Most rows (prompts × samples) decoded together in one batch.
    pub max_batch_rows: usize,
    /// Most bytes the key/value cache of one batch may take (rows × columns × bytes per cached
    /// token); a single row larger than this still runs, alone. While rows join a running batch
    /// its cache is copied into a new one, so memory briefly holds both.
    pub kv_budget_bytes: u64,
    /// Refill a running batch with waiting requests as its rows finish (continuous batching);
    /// `false` runs each batch until its last row ends before the next starts.
    pub continuous: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            sampling: SamplingParams::default(),
            stop_strings: Vec::new(),
            ignore_eos: false,
            max_batch_rows: DEFAULT_MAX_BATCH_ROWS,
            kv_budget_bytes: DEFAULT_KV_BUDGET_BYTES,
            continuous: true,
        }
    }
}

impl GenerateOptions {
    /// Rejects values that have no meaning, with a message naming the fix.
    pub fn validate(&self) -> Result<(), String> {
        self.sampling.validate()?;
        if self.max_batch_rows == 0 {
            return Err("max_batch_rows must be at least 1".into());
        }
        if self.kv_budget_bytes == 0 {
            return Err("kv_budget_bytes must be at least 1 (default: 1 GiB)".into());
        }
        Ok(())
    }
}

/// One prompt to continue.
#[derive(Debug, Clone, Copy)]
pub struct GenerateRequest<'a> {
    /// The tokenized prompt.
    pub prompt: &'a [u32],
    /// Continuations to sample (at least 1); they share the prompt's prefill.
    pub samples: usize,
    /// This request's own seed; `None` derives its streams from the call's seed and the
    /// request's index.
    pub seed: Option<u64>,
    /// This request's own bound on new tokens; `None` takes the call's
    /// [`GenerateOptions::max_new_tokens`].
    pub max_new_tokens: Option<usize>,
    /// Raised, this request alone stops: its running rows end before their next token, its
    /// samples not yet started are never prefilled, and all come back with
    /// [`StopReason::Cancelled`] (with the tokens they had); the other requests go on.
    pub cancel: Option<&'a AtomicBool>,
}

impl<'a> GenerateRequest<'a> {
    /// One continuation of `prompt`, seeded from the call's seed.
    pub fn new(prompt: &'a [u32]) -> Self {
        Self {
            prompt,
            samples: 1,
            seed: None,
            max_new_tokens: None,
            cancel: None,
        }
    }

    /// Whether this request has been cancelled on its own.
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-sequence id.
    Eos,
    /// The row's `max_new_tokens` reached.
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

/// The result for one row (a prompt, or one sample of a request).
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Decoded new text (special tokens skipped, cut before a stop string): exactly the
    /// concatenated `text_delta`s streamed for this row.
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

/// Timing of a generation call, summed over its batches (for benchmarks and progress).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Seconds spent in prefill steps (until their logits reached the host and, for rows
    /// joining a running batch, their cache joined it).
    pub prefill_secs: f64,
    /// Prompt tokens processed in prefills (per batch: prompts × padded length).
    pub prefill_tokens: usize,
    /// Seconds spent in decode steps: choosing each row's token (the first after a prefill
    /// included) and running the step that feeds it back.
    pub decode_secs: f64,
    /// Decode steps run (each produces one token per row still running).
    pub decode_steps: usize,
    /// Rows computed over all decode steps (finished rows leave their batch and cost none).
    pub decode_rows: usize,
    /// Batches started (each with a prefill of its prompts).
    pub batches: usize,
    /// Prefills of waiting requests that joined a running batch (continuous batching).
    pub refills: usize,
}

/// A streamed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent<'a> {
    /// Which row: the prompt's index, or with several samples per request the row's index in
    /// the results (requests in order, each with its samples in order).
    pub row: usize,
    /// The new token.
    pub token_id: u32,
    /// Text that became final with this token (empty mid-character, or while the text's end
    /// could still be the start of a stop string).
    pub text_delta: &'a str,
}

/// The seed of one row's random stream: a hash of the call's (or the request's own) seed, the
/// request and the sample, so a row draws the same numbers whatever else runs with it.
fn stream_seed(seed: u64, request: u64, sample: u64) -> u64 {
    let a = mix64(seed ^ 0x243f_6a88_85a3_08d3);
    let b = mix64(a ^ mix64(request.wrapping_add(0x1319_8a2e_0370_7344)));
    mix64(b ^ mix64(sample.wrapping_add(0xa409_3822_299f_31d0)))
}

/// Generates continuations of already tokenized `prompts` (one row each, streams from the
/// call's seed and the prompt's index). Assumes an f32 key/value cache when sizing batches
/// (an upper bound for f16/bf16); [`Generator`] takes the real element size.
#[allow(clippy::too_many_arguments)]
pub fn generate<B: Backend>(
    model: &LanguageModel<B>,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    eos_ids: &[u32],
    pad_id: u32,
    on_token: &mut (dyn FnMut(TokenEvent<'_>) + Send),
    cancel: Option<&AtomicBool>,
) -> Result<(Vec<Generation>, GenerationStats), EngineError> {
    let requests: Vec<GenerateRequest<'_>> =
        prompts.iter().map(|p| GenerateRequest::new(p)).collect();
    Generator {
        model,
        tokenizer,
        eos_ids,
        pad_id,
        cache_dtype_bytes: 4,
    }
    .run(&requests, options, on_token, &mut |_, _| {}, cancel)
}

/// A model with what generation needs to know about it.
#[derive(Debug)]
pub struct Generator<'a, B: Backend> {
    /// The model.
    pub model: &'a LanguageModel<B>,
    /// Its tokenizer.
    pub tokenizer: &'a TextTokenizer,
    /// End-of-sequence ids.
    pub eos_ids: &'a [u32],
    /// Padding id.
    pub pad_id: u32,
    /// Bytes of one cached key or value element (the compute dtype's size).
    pub cache_dtype_bytes: usize,
}

/// Callbacks and cancel flag of one call.
struct Sinks<'c> {
    on_token: &'c mut (dyn FnMut(TokenEvent<'_>) + Send),
    on_done: &'c mut (dyn FnMut(usize, &Generation) + Send),
    cancel: Option<&'c AtomicBool>,
}

impl Sinks<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// The results of a call as rows finish.
struct Results<'r> {
    rows: Vec<Option<Generation>>,
    requests: &'r [GenerateRequest<'r>],
    /// Index of each request's first row.
    offsets: Vec<usize>,
}

impl Results<'_> {
    fn set(&mut self, row: usize, generation: Generation, sinks: &mut Sinks<'_>) {
        (sinks.on_done)(row, &generation);
        self.rows[row] = Some(generation);
    }

    /// The results in row order; rows never started (the call was cancelled) come back empty.
    fn finish(mut self, sinks: &mut Sinks<'_>) -> Vec<Generation> {
        for (r, request) in self.requests.iter().enumerate() {
            for row in self.offsets[r]..self.offsets[r] + request.samples {
                if self.rows[row].is_none() {
                    let empty = empty(request, StopReason::Cancelled);
                    self.set(row, empty, sinks);
                }
            }
        }
        self.rows.into_iter().flatten().collect()
    }
}

fn empty(request: &GenerateRequest<'_>, reason: StopReason) -> Generation {
    Generation {
        text: String::new(),
        token_ids: Vec::new(),
        prompt_tokens: request.prompt.len(),
        stop_reason: reason,
        logprob: 0.0,
    }
}

impl<B: Backend> Generator<'_, B> {
    /// Generates `samples` continuations of every request. `on_token` sees each token as it is
    /// chosen, `on_done(row, generation)` each row as it finishes (once per row, in finishing
    /// order); the results come back in row order: requests in order, each with its samples.
    /// A raised `cancel` stops the running batch and skips the rest (their rows come back
    /// empty with [`StopReason::Cancelled`]); a request's own [`GenerateRequest::cancel`]
    /// stops that request alone.
    ///
    /// The work runs on a thread of the rayon pool (the caller waits), so each step's many
    /// parallel products fork from a pool thread instead of being handed over from outside the
    /// pool and waited for, twice a context switch per product (a fifth of a decode step of
    /// one row); the callbacks run on that thread.
    pub fn run(
        &self,
        requests: &[GenerateRequest<'_>],
        options: &GenerateOptions,
        on_token: &mut (dyn FnMut(TokenEvent<'_>) + Send),
        on_done: &mut (dyn FnMut(usize, &Generation) + Send),
        cancel: Option<&AtomicBool>,
    ) -> Result<(Vec<Generation>, GenerationStats), EngineError> {
        rayon::scope(|_| self.run_here(requests, options, on_token, on_done, cancel))
    }

    /// [`Self::run`] on the calling thread.
    fn run_here(
        &self,
        requests: &[GenerateRequest<'_>],
        options: &GenerateOptions,
        on_token: &mut (dyn FnMut(TokenEvent<'_>) + Send),
        on_done: &mut (dyn FnMut(usize, &Generation) + Send),
        cancel: Option<&AtomicBool>,
    ) -> Result<(Vec<Generation>, GenerationStats), EngineError> {
        options
            .validate()
            .map_err(|message| EngineError::Input { message })?;
        let context = self.model.max_positions();
        let mut offsets = Vec::with_capacity(requests.len());
        let mut total = 0usize;
        for (i, r) in requests.iter().enumerate() {
            check_request(i, r, context)?;
            offsets.push(total);
            total += r.samples;
        }
        let mut sinks = Sinks {
            on_token,
            on_done,
            cancel,
        };
        let mut results = Results {
            rows: vec![None; total],
            requests,
            offsets,
        };
        let mut work = Vec::with_capacity(requests.len());
        for (request, r) in requests.iter().enumerate() {
            let max_tokens = r.max_new_tokens.unwrap_or(options.max_new_tokens);
            let budget = max_tokens.min(context - r.prompt.len());
            if budget == 0 {
                let reason = if max_tokens == 0 {
                    StopReason::MaxTokens
                } else {
                    StopReason::ContextFull
                };
                for row in results.offsets[request]..results.offsets[request] + r.samples {
                    results.set(row, empty(r, reason), &mut sinks);
                }
            } else {
                work.push(Work {
                    request,
                    prompt_len: r.prompt.len(),
                    samples: r.samples,
                    budget,
                });
            }
        }
        let limits = Limits {
            max_rows: options.max_batch_rows,
            kv_budget_bytes: options.kv_budget_bytes,
            kv_bytes_per_token: scheduler::kv_bytes_per_token(self.model, self.cache_dtype_bytes),
        };
        let mut run = Decoding {
            step: StepContext {
                generator: self,
                options,
                vocab_rows: self.model.vocab_rows(),
                seed: options.sampling.seed.unwrap_or_else(clock_seed),
            },
            queue: Queue::new(&work),
            cache: self.model.new_cache(0, 0),
            live: Vec::new(),
            logits: Vec::new(),
            logit_rows: Vec::new(),
            stats: GenerationStats::default(),
        };
        run.run(&limits, &mut results, &mut sinks)?;
        Ok((results.finish(&mut sinks), run.stats))
    }
}

/// Hands out the rows of `batch`'s requests that were cancelled on their own (empty, with
/// [`StopReason::Cancelled`]) and drops them from the batch, so they are never prefilled.
fn drop_cancelled(batch: &mut Batch, results: &mut Results<'_>, sinks: &mut Sinks<'_>) {
    let requests = results.requests;
    let (cancelled, kept): (Vec<Group>, Vec<Group>) = std::mem::take(&mut batch.groups)
        .into_iter()
        .partition(|g| requests[g.request].cancelled());
    for group in cancelled {
        let request = &requests[group.request];
        for sample in group.samples {
            let row = results.offsets[group.request] + sample;
            results.set(row, empty(request, StopReason::Cancelled), sinks);
        }
    }
    batch.rows = kept.iter().map(|g| g.samples.len()).sum();
    batch.groups = kept;
}

/// The state of one call: waiting work, the running batch's rows and cache, and the logits
/// each row chooses its next token from.
struct Decoding<'g, 'a, 'w, B: Backend> {
    step: StepContext<'g, 'a, B>,
    queue: Queue<'w>,
    cache: KvCache<B>,
    /// `live[slot]` is in cache row `slot`; its logits are row `logit_rows[slot]` of `logits`.
    live: Vec<Row<'g>>,
    logits: Vec<f32>,
    logit_rows: Vec<usize>,
    stats: GenerationStats,
}

impl<'g, B: Backend> Decoding<'g, '_, '_, B> {
    /// Until the queue is empty and every row has stopped: each row takes its next token,
    /// finished rows leave, the others run a decode step, and waiting requests are prefilled
    /// into the batch when there is room (a fresh batch when nothing runs).
    fn run(
        &mut self,
        limits: &Limits,
        results: &mut Results<'_>,
        sinks: &mut Sinks<'_>,
    ) -> Result<(), EngineError> {
        loop {
            if sinks.cancelled() {
                for mut row in self.live.drain(..) {
                    row.done = Some(StopReason::Cancelled);
                    results.set(row.out, row.into_generation(), sinks);
                }
                return Ok(());
            }
            // Decode time: choosing tokens, and the step that feeds them back.
            let started = Instant::now();
            let stepped = !self.live.is_empty();
            self.advance(results, sinks)?;
            if !self.live.is_empty() {
                self.decode()?;
            }
            if stepped {
                self.stats.decode_secs += started.elapsed().as_secs_f64();
            }
            // The running rows' share of the cache budget is what their cache holds.
            let running = match self.live.iter().map(Row::remaining).max() {
                Some(remaining) => Running {
                    rows: self.live.len(),
                    seq: self.cache.len(),
                    budget: remaining.max(self.cache.capacity() - self.cache.len()),
                },
                None => Running::default(),
            };
            let options = self.step.options;
            let mut batch = self.queue.take(running, limits, options.continuous);
            drop_cancelled(&mut batch, results, sinks);
            if !batch.groups.is_empty() {
                self.prefill(&batch, running, results)?;
            }
            if self.live.is_empty() && self.queue.waiting() == 0 {
                return Ok(());
            }
        }
    }

    /// Every live row takes its token from `logits`; finished rows are handed out and leave
    /// the batch (the last rows move into their cache slots).
    fn advance(
        &mut self,
        results: &mut Results<'_>,
        sinks: &mut Sinks<'_>,
    ) -> Result<(), EngineError> {
        if self.live.is_empty() {
            return Ok(());
        }
        // Rows of a request cancelled on its own stop before taking another token.
        for row in &mut self.live {
            if results.requests[row.request].cancelled() {
                row.done = Some(StopReason::Cancelled);
            }
        }
        let picks = pick_tokens(&mut self.live, &self.logits, &self.logit_rows, &self.step);
        for (row, pick) in self.live.iter_mut().zip(picks) {
            if row.done.is_none() {
                row.advance(pick, &self.step, sinks)?;
            }
        }
        let done: Vec<bool> = self.live.iter().map(|r| r.done.is_some()).collect();
        if !done.contains(&true) {
            return Ok(());
        }
        let keep = fill_from_the_end(&done);
        let mut slots: Vec<Option<Row<'g>>> = self.live.drain(..).map(Some).collect();
        self.live = keep.iter().filter_map(|&k| slots[k].take()).collect();
        for row in slots.into_iter().flatten() {
            results.set(row.out, row.into_generation(), sinks);
        }
        self.cache.retain_rows(&keep);
        Ok(())
    }

    /// One decode step of every live row.
    fn decode(&mut self) -> Result<(), EngineError> {
        let ids: Vec<u32> = self.live.iter().map(Row::last).collect();
        let positions: Vec<i64> = self.live.iter().map(Row::position).collect();
        let valid = vec![true; self.live.len()];
        let model = self.step.generator.model;
        let hidden = model.forward(
            &Step {
                ids: &ids,
                positions: &positions,
                valid: &valid,
                batch: self.live.len(),
                seq: 1,
            },
            &mut self.cache,
        )?;
        self.logits = last_logits(model, hidden)?;
        self.logit_rows = (0..self.live.len()).collect();
        self.stats.decode_steps += 1;
        self.stats.decode_rows += self.live.len();
        Ok(())
    }

    /// Prefills `batch`'s prompts and adds its rows (each group's samples) to the running
    /// ones: their cache joins the running cache, their last-position logits join `logits`.
    fn prefill(
        &mut self,
        batch: &Batch,
        running: Running,
        results: &Results<'_>,
    ) -> Result<(), EngineError> {
        let generator = self.step.generator;
        let model = generator.model;
        let requests = results.requests;
        let prompts: Vec<&[u32]> = batch
            .groups
            .iter()
            .map(|g| requests[g.request].prompt)
            .collect();
        let padded = PaddedBatch::left_pad(&prompts, generator.pad_id);
        // New tokens any row of the joined batch may still take, and the columns reserved for
        // them where a cache is made (room for joiners only while requests wait: the scheduler
        // charged it to the cache budget, and a batch that takes the last of them needs none).
        let needed = self
            .live
            .iter()
            .map(Row::remaining)
            .max()
            .unwrap_or(0)
            .max(batch.budget);
        let joiners_may_follow = self.step.options.continuous && self.queue.waiting() > 0;
        let reserve = scheduler::reserve(needed, joiners_may_follow);
        // A fresh batch prefills into its final cache; joiners into one just long enough, whose
        // rows then join the running cache.
        let own_capacity = if running.rows == 0 {
            padded.seq + reserve
        } else {
            padded.seq
        };
        let mut cache = model.new_cache(padded.batch, own_capacity);
        let started = Instant::now();
        let hidden = model.forward(
            &Step {
                ids: &padded.ids,
                positions: &padded.positions,
                valid: &padded.valid,
                batch: padded.batch,
                seq: padded.seq,
            },
            &mut cache,
        )?;
        let logits = last_logits(model, hidden)?;
        // Row `i` continues prefill row `source[i]`.
        let mut source = Vec::with_capacity(batch.rows);
        for (g, group) in batch.groups.iter().enumerate() {
            let request = &requests[group.request];
            for sample in group.samples.clone() {
                source.push(g);
                self.live.push(Row::new(
                    request,
                    group.request,
                    sample,
                    results.offsets[group.request] + sample,
                    &self.step,
                ));
            }
        }
        cache.retain_rows(&source);
        // The running rows' logits are rows `0..running.rows` (the decode step just run).
        if running.rows == 0 {
            self.logits = logits;
            self.logit_rows = source;
        } else {
            self.logits.extend_from_slice(&logits);
            self.logit_rows
                .extend(source.iter().map(|&g| running.rows + g));
        }
        let running_cache = std::mem::replace(&mut self.cache, model.new_cache(0, 0));
        self.cache = running_cache.join(cache, needed, reserve);
        self.stats.prefill_secs += started.elapsed().as_secs_f64();
        self.stats.prefill_tokens += padded.batch * padded.seq;
        if running.rows == 0 {
            self.stats.batches += 1;
        } else {
            self.stats.refills += 1;
        }
        Ok(())
    }
}

/// The rows kept when rows `done` leave: slot `i` keeps its row, or takes the last row still
/// running when its own has finished, so `keep[i] >= i` with no repeats (the cache moves only
/// the rows that change slot, in place).
fn fill_from_the_end(done: &[bool]) -> Vec<usize> {
    let mut keep = Vec::with_capacity(done.len());
    let mut end = done.len();
    let mut slot = 0;
    while slot < end {
        if !done[slot] {
            keep.push(slot);
        } else {
            while end > slot + 1 && done[end - 1] {
                end -= 1;
            }
            if end <= slot + 1 {
                break;
            }
            end -= 1;
            keep.push(end);
        }
        slot += 1;
    }
    keep
}

/// What every row's step reads.
struct StepContext<'g, 'a, B: Backend> {
    generator: &'g Generator<'a, B>,
    options: &'g GenerateOptions,
    vocab_rows: usize,
    /// The call's seed (requests without their own derive their streams from it).
    seed: u64,
}

/// One row being generated.
struct Row<'s> {
    /// Index in the results.
    out: usize,
    request: usize,
    prompt_len: usize,
    /// The request's bound on new tokens.
    max_tokens: usize,
    /// New tokens this row may take (its bound, or less where the context ends first).
    budget: usize,
    rng: SplitMix64,
    ids: Vec<u32>,
    decoder: IncrementalDecoder,
    stop: StopFilter<'s>,
    done: Option<StopReason>,
    logprob: f64,
}

impl<'s> Row<'s> {
    /// Sample `sample` of request `index`, result row `out`, before its first token.
    fn new<B: Backend>(
        request: &GenerateRequest<'_>,
        index: usize,
        sample: usize,
        out: usize,
        step: &StepContext<'s, '_, B>,
    ) -> Self {
        let stream = match request.seed {
            Some(own) => stream_seed(own, 0, sample as u64),
            None => stream_seed(step.seed, index as u64, sample as u64),
        };
        let options = step.options;
        let max_tokens = request.max_new_tokens.unwrap_or(options.max_new_tokens);
        let context = step.generator.model.max_positions();
        Row {
            out,
            request: index,
            prompt_len: request.prompt.len(),
            max_tokens,
            budget: max_tokens.min(context - request.prompt.len()),
            rng: SplitMix64::new(stream),
            ids: Vec::new(),
            decoder: IncrementalDecoder::default(),
            stop: StopFilter::new(&options.stop_strings),
            done: None,
            logprob: 0.0,
        }
    }

    /// New tokens this row may still take.
    fn remaining(&self) -> usize {
        self.budget - self.ids.len()
    }

    /// The newest token.
    fn last(&self) -> u32 {
        self.ids.last().copied().unwrap_or_default()
    }

    /// Position of the newest token.
    fn position(&self) -> i64 {
        (self.prompt_len + self.ids.len()) as i64 - 1
    }

    /// Takes the token [`pick_tokens`] chose for this row, updates the text and streams the
    /// token.
    fn advance<B: Backend>(
        &mut self,
        pick: Result<(u32, f64), SampleError>,
        step: &StepContext<'_, '_, B>,
        sinks: &mut Sinks<'_>,
    ) -> Result<(), EngineError> {
        let g = step.generator;
        let tokenizer = g.tokenizer;
        let (id, logprob) = pick.map_err(|e| self.sample_error(e, step.vocab_rows))?;
        self.logprob += logprob;
        self.ids.push(id);
        let before = self.stop.emitted();
        let new = self.decoder.next(tokenizer, &self.ids)?;
        let mut done = if self.stop.push(&new) {
            Some(StopReason::StopString)
        } else if !step.options.ignore_eos && g.eos_ids.contains(&id) {
            Some(StopReason::Eos)
        } else if self.ids.len() >= self.max_tokens {
            Some(StopReason::MaxTokens)
        } else if self.ids.len() >= self.budget {
            Some(StopReason::ContextFull)
        } else {
            None
        };
        if done.is_some_and(|d| d != StopReason::StopString) {
            // The row ends: hand out the incomplete tail too, unless it completes a stop string.
            let rest = self.decoder.finish(tokenizer, &self.ids)?;
            if self.stop.push(&rest) {
                done = Some(StopReason::StopString);
            } else {
                self.stop.release();
            }
        }
        self.done = done;
        (sinks.on_token)(TokenEvent {
            row: self.out,
            token_id: id,
            text_delta: &self.stop.text()[before..self.stop.emitted()],
        });
        Ok(())
    }

    fn sample_error(&self, e: SampleError, vocab_rows: usize) -> EngineError {
        match e {
            SampleError::NanLogits => EngineError::Backend {
                message: format!(
                    "the model produced NaN logits at step {} for request {}: the computation \
                     overflowed; load the model in f32 (--dtype f32) or run it on another device",
                    self.ids.len(),
                    self.request
                ),
            },
            SampleError::NothingAllowed => EngineError::Tokenizer {
                message: format!(
                    "the tokenizer knows none of the model's {vocab_rows} output ids; use the \
                     tokenizer.json that belongs to this model"
                ),
            },
        }
    }

    fn into_generation(self) -> Generation {
        Generation {
            text: self.stop.into_emitted(),
            token_ids: self.ids,
            prompt_tokens: self.prompt_len,
            stop_reason: self.done.unwrap_or(StopReason::MaxTokens),
            logprob: self.logprob,
        }
    }
}

/// Rejects a request that cannot run, naming it.
fn check_request(i: usize, r: &GenerateRequest<'_>, context: usize) -> Result<(), EngineError> {
    let fail = |message: String| Err(EngineError::Input { message });
    if r.samples == 0 {
        return fail(format!("request {i} asks for 0 samples; ask for 1 or more"));
    }
    if r.prompt.is_empty() {
        return fail(format!(
            "prompt {i} is empty after tokenization; give some text (this tokenizer adds no \
             start token)"
        ));
    }
    if r.prompt.len() > context {
        return fail(format!(
            "prompt {i} has {} tokens but the model's context is {context}; shorten it",
            r.prompt.len()
        ));
    }
    Ok(())
}

/// A seed from the clock, for calls without one.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Each live row's next token and its log-probability, chosen on the rayon pool (a row of
/// logits is a vocabulary-long pass; each row draws from its own stream, so the choice does not
/// depend on which thread makes it). `logit_rows[slot]` is the row of `logits` of `live[slot]`.
fn pick_tokens<B: Backend>(
    live: &mut [Row<'_>],
    logits: &[f32],
    logit_rows: &[usize],
    step: &StepContext<'_, '_, B>,
) -> Vec<Result<(u32, f64), SampleError>> {
    use rayon::prelude::*;
    let (vocab_rows, sampling) = (step.vocab_rows, &step.options.sampling);
    let tokenizer = step.generator.tokenizer;
    live.par_iter_mut()
        .zip(logit_rows)
        .map(|(row, &l)| {
            let logits = &logits[l * vocab_rows..(l + 1) * vocab_rows];
            let allowed = |id: usize| id < vocab_rows && tokenizer.knows(id as u32);
            let id = choose(logits, sampling, &mut row.rng, allowed)?;
            Ok((id, token_logprob(logits, id)))
        })
        .collect()
}

/// `log softmax(logits)[id]` (NaN logits count as impossible).
fn token_logprob(logits: &[f32], id: u32) -> f64 {
    let (max, sum) = max_and_sum_exp(logits);
    f64::from(logits[id as usize] - max) - sum.ln()
}

crate::kernels::with_widest_vectors! {
    /// The largest logit `m` and `Σ exp(v − m)`, NaN logits left out (`(-∞, 0)` if no logit
    /// is finite).
    fn max_and_sum_exp(logits: &[f32]) -> (f32, f64) = max_and_sum_exp_lanes;
}

#[inline(always)]
fn max_and_sum_exp_lanes(logits: &[f32]) -> (f32, f64) {
    use crate::kernels::math::{LANES, exp_nonpositive, max_lanes};
    // Lane sums of at most this many values each are added into the f64 total, so the f32
    // rounding stays near 1e-6 relative whatever the vocabulary size.
    const BLOCK: usize = 4096;
    let max = max_lanes(logits);
    if max == f32::NEG_INFINITY {
        return (max, 0.0);
    }
    let weight = |v: f32| {
        let x = v - max;
        if x.is_nan() { 0.0 } else { exp_nonpositive(x) }
    };
    let mut total = 0.0f64;
    for block in logits.chunks(BLOCK) {
        let mut acc = [0.0f32; LANES];
        let chunks = block.chunks_exact(LANES);
        let tail: f32 = chunks.remainder().iter().map(|&v| weight(v)).sum();
        for c in chunks {
            for l in 0..LANES {
                acc[l] += weight(c[l]);
            }
        }
        total += acc.iter().map(|&a| f64::from(a)).sum::<f64>() + f64::from(tail);
    }
    (max, total)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_logprob_matches_a_plain_log_softmax() {
        let mut rng = SplitMix64::new(7);
        // A Pythia-sized row (several f32 blocks and a short tail), spread as trained logits are.
        let mut logits: Vec<f32> = (0..50_277)
            .map(|_| (rng.next_f64() * 30.0 - 20.0) as f32)
            .collect();
        logits[123] = f32::NAN;
        logits[4_567] = f32::NEG_INFINITY;
        logits[40_000] = 15.5;
        let finite: Vec<f64> = logits
            .iter()
            .filter(|v| !v.is_nan())
            .map(|&v| f64::from(v))
            .collect();
        let max = finite.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let lse = max + finite.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        for id in [0u32, 40_000, 4_567, 50_276] {
            let want = f64::from(logits[id as usize]) - lse;
            let got = token_logprob(&logits, id);
            if want.is_infinite() {
                assert_eq!(got, want);
            } else {
                assert!((got - want).abs() < 1e-5, "id {id}: {got} vs {want}");
            }
        }
    }
}

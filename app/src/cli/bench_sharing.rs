//! The shared-prefix workloads of `bench-engine`: one prompt with many samples (its prefill
//! done once for all of them) and ranking candidate labels (each prompt run once, its cache
//! shared by its candidates). Each is timed against the same work without sharing, on our
//! engine, and against `transformers` doing it the way its API does
//! (`tools/models/bench_transformers.py samples|rank`).

use super::bench_engine::{bench_prompt, reference_json};
use c2s_core::engine::{Engine, GenerateOptions, GenerateRequest, GenerationStats, SamplingParams};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Tokens of each candidate label.
const CANDIDATE_LEN: usize = 3;

/// Where the `transformers` side runs; `None` skips it.
pub(super) struct Reference<'a> {
    /// Python with torch + transformers.
    pub python: &'a Path,
    /// `bench_transformers.py`.
    pub script: &'a Path,
    /// The benchmark checkpoint.
    pub model_dir: &'a Path,
    /// Threads for torch (the engine's pool has as many).
    pub threads: usize,
}

impl Reference<'_> {
    /// Runs `bench_transformers.py WORKLOAD` with `args` (flag, value) and reads its JSON line.
    pub(super) fn run(
        &self,
        workload: &str,
        args: &[(&str, &dyn std::fmt::Display)],
    ) -> Result<serde_json::Value, String> {
        let mut command = Command::new(self.python);
        command
            .arg(self.script)
            .arg(workload)
            .arg("--model")
            .arg(self.model_dir)
            .args(["--threads", &self.threads.to_string()]);
        for (flag, value) in args {
            command.args([*flag, &value.to_string()]);
        }
        reference_json(&mut command, self.python, "transformers")
    }
}

/// Candidate label `c` of prompt `r` (as `candidate` in `bench_transformers.py`).
fn candidate(r: usize, c: usize) -> Vec<u32> {
    (0..CANDIDATE_LEN)
        .map(|j| 1 + ((r * 31 + c * 17 + j * 1009) % 49_999) as u32)
        .collect()
}

/// Best of two timed runs of `work`.
fn best_of_two<T>(mut work: impl FnMut() -> Result<T, String>) -> Result<(f64, T), String> {
    let mut best: Option<(f64, T)> = None;
    for _ in 0..2 {
        let started = Instant::now();
        let out = work()?;
        let secs = started.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(b, _)| secs < *b) {
            best = Some((secs, out));
        }
    }
    best.ok_or_else(|| "no run".to_string())
}

/// One prompt of `prompt_len` tokens, `samples` continuations of `new_tokens` at temperature
/// 0.3: as one request whose samples share its prefill, as `samples` separate requests of the
/// same prompt (a prefill each), and with `transformers`' `num_return_sequences`.
pub(super) fn one_prompt_many_samples(
    engine: &Engine,
    prompt_len: usize,
    new_tokens: usize,
    samples: usize,
    reference: Option<&Reference<'_>>,
) -> Result<(), String> {
    let prompt = bench_prompt(0, prompt_len);
    let options = GenerateOptions {
        max_new_tokens: new_tokens,
        sampling: SamplingParams {
            temperature: 0.3,
            seed: Some(1),
            ..SamplingParams::default()
        },
        ignore_eos: true,
        // Every row in one batch, as transformers runs them.
        max_batch_rows: samples,
        kv_budget_bytes: u64::MAX,
        ..GenerateOptions::default()
    };
    let run = |requests: &[GenerateRequest<'_>]| -> Result<GenerationStats, String> {
        engine
            .generate_requests(requests, &options, &mut |_| {}, &mut |_, _| {}, None)
            .map(|(_, stats)| stats)
            .map_err(|e| e.to_string())
    };
    let shared_request = [GenerateRequest {
        samples,
        ..GenerateRequest::new(&prompt)
    }];
    let separate_requests = vec![GenerateRequest::new(&prompt); samples];
    let (shared_secs, shared) = best_of_two(|| run(&shared_request))?;
    let (separate_secs, separate) = best_of_two(|| run(&separate_requests))?;
    let tokens = (samples * new_tokens) as f64;
    println!(
        "\none prompt x {samples} samples ({prompt_len} prompt tokens, {new_tokens} new tokens \
         each, temperature 0.3):"
    );
    for (what, secs, stats) in [
        ("shared prefill", shared_secs, &shared),
        ("separate prefills", separate_secs, &separate),
    ] {
        println!(
            "  ours, {what:<17}: {secs:>7.2} s = {:>7.1} generated tok/s; {:>6} prompt tokens \
             prefilled in {:.2} s",
            tokens / secs,
            stats.prefill_tokens,
            stats.prefill_secs
        );
    }
    println!(
        "  sharing saves {:.2} s of prefill ({:.2}x the speed of separate prefills)",
        separate.prefill_secs - shared.prefill_secs,
        separate_secs / shared_secs
    );
    if let Some(reference) = reference {
        let r = reference.run(
            "samples",
            &[
                ("--prompt-len", &prompt_len),
                ("--new-tokens", &new_tokens),
                ("--samples", &samples),
            ],
        )?;
        let secs = r["secs"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  transformers (num_return_sequences={samples}): {secs:>7.2} s = {:>7.1} generated \
             tok/s; ours with shared prefill {:.2}x",
            tokens / secs,
            secs / shared_secs
        );
    }
    Ok(())
}

/// `prompts` prompts of `prompt_len` tokens, each with `candidates` labels of
/// [`CANDIDATE_LEN`] tokens ranked by summed log-probability: with the prompt's cache shared by
/// its candidates (`score_continuations`), as `prompt + label` texts scored separately, and with
/// `transformers` scoring the separate texts (a batch of `candidates` per prompt). Prints
/// prompts (cells) per second and the largest difference between the log-likelihoods.
pub(super) fn rank_candidates(
    engine: &Engine,
    prompt_len: usize,
    prompts: usize,
    candidates: usize,
    reference: Option<&Reference<'_>>,
) -> Result<(), String> {
    let heads: Vec<Vec<u32>> = (0..prompts).map(|r| bench_prompt(r, prompt_len)).collect();
    let labels: Vec<Vec<Vec<u32>>> = (0..prompts)
        .map(|r| (0..candidates).map(|c| candidate(r, c)).collect())
        .collect();
    let (shared_secs, shared) = best_of_two(|| {
        engine
            .score_continuations(&heads, &labels)
            .map_err(|e| e.to_string())
    })?;
    let texts: Vec<Vec<u32>> = heads
        .iter()
        .zip(&labels)
        .flat_map(|(h, ls)| ls.iter().map(move |l| [h.as_slice(), l].concat()))
        .collect();
    let (separate_secs, separate) = best_of_two(|| {
        let scores = engine.score_ids(&texts).map_err(|e| e.to_string())?;
        Ok(scores
            .iter()
            .map(|s| {
                s.logprobs[prompt_len - 1..]
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum::<f64>()
            })
            .collect::<Vec<f64>>())
    })?;
    let flat: Vec<f64> = shared.iter().flatten().copied().collect();
    let apart = max_abs_diff(&flat, &separate);
    println!(
        "\nranking {candidates} candidate labels ({CANDIDATE_LEN} tokens each) for {prompts} \
         prompts of {prompt_len} tokens:"
    );
    println!(
        "  ours, prompt cache shared: {shared_secs:>7.2} s = {:>7.2} prompts/s",
        prompts as f64 / shared_secs
    );
    println!(
        "  ours, {} separate texts: {separate_secs:>7.2} s = {:>7.2} prompts/s; sharing {:.2}x \
         (log-likelihoods differ by at most {apart:.1e})",
        texts.len(),
        prompts as f64 / separate_secs,
        separate_secs / shared_secs
    );
    if let Some(reference) = reference {
        let r = reference.run(
            "rank",
            &[
                ("--prompts", &prompts),
                ("--prompt-len", &prompt_len),
                ("--candidates", &candidates),
                ("--candidate-len", &CANDIDATE_LEN),
            ],
        )?;
        let secs = r["secs"].as_f64().unwrap_or(f64::NAN);
        let theirs: Vec<f64> = r["loglik"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| row.as_array())
            .flatten()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        let diff = if theirs.len() == flat.len() {
            format!("{:.1e}", max_abs_diff(&flat, &theirs))
        } else {
            "not comparable".into()
        };
        println!(
            "  transformers, separate texts: {secs:>7.2} s = {:>7.2} prompts/s; ours with the \
             shared cache {:.2}x (log-likelihoods differ from ours by at most {diff})",
            prompts as f64 / secs,
            secs / shared_secs
        );
    }
    Ok(())
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

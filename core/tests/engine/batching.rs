//! Batched results equal one-at-a-time results: scoring, embeddings and greedy generation of
//! prompts of different lengths in one left-padded batch, on the CPU engine; generation in
//! bounded, length-sorted batches equals one batch, finished rows stop costing decode work, and
//! each row's token budget follows its own prompt; rows joining a running batch (continuous
//! batching) generate what they would alone; a request cancelled on its own stops while the
//! others go on.

use crate::common::{FIXTURES, cpu_engine, eos_ids, fixtures_dir, reference};
use burn::backend::Flex;
use burn::backend::flex::FlexDevice;
use burn::tensor::DType;
use c2s_core::engine::generate::generate;
use c2s_core::engine::score::score_with_logit_budget;
use c2s_core::engine::tokenizer::TextTokenizer;
use c2s_core::engine::{GenerateOptions, GenerateRequest, SamplingParams, StopReason};
use c2s_core::model::LanguageModel;

#[test]
fn batched_scores_and_embeddings_equal_single_rows() {
    for name in FIXTURES {
        let engine = cpu_engine(name);
        let r = reference(name);
        let batched = engine.score_ids(&r.prompts).expect("batched score");
        let batched_emb = engine.embed_ids(&r.prompts).expect("batched embed");
        for (i, prompt) in r.prompts.iter().enumerate() {
            let single = engine
                .score_ids(std::slice::from_ref(prompt))
                .expect("score");
            assert_eq!(single[0].token_ids, batched[i].token_ids);
            assert_eq!(single[0].logprobs.len(), prompt.len() - 1);
            let d = single[0]
                .logprobs
                .iter()
                .zip(&batched[i].logprobs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                d <= 1e-4,
                "{name} prompt {i}: batched vs single log-prob |Δ| {d}"
            );
            let e = engine
                .embed_ids(std::slice::from_ref(prompt))
                .expect("embed");
            let d = e[0]
                .iter()
                .zip(&batched_emb[i])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                d <= 1e-4,
                "{name} prompt {i}: batched vs single embedding |Δ| {d}"
            );
            let expected = &r.embeddings[i];
            let d = e[0]
                .iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                d <= 1e-4,
                "{name} prompt {i}: embedding vs transformers |Δ| {d}"
            );
        }
    }
}

#[test]
fn batched_greedy_generation_equals_single_rows_and_transformers() {
    for name in FIXTURES {
        let engine = cpu_engine(name);
        let r = reference(name);
        let options = GenerateOptions {
            max_new_tokens: 16,
            ..Default::default()
        };
        let (batched, _) = engine
            .generate_ids(&r.prompts, &options, &mut |_| {}, None)
            .expect("batched generate");
        for (i, prompt) in r.prompts.iter().enumerate() {
            let (single, _) = engine
                .generate_ids(std::slice::from_ref(prompt), &options, &mut |_| {}, None)
                .expect("generate");
            assert_eq!(
                single[0].token_ids, batched[i].token_ids,
                "{name} prompt {i}"
            );
            assert_eq!(
                single[0].token_ids, r.greedy[i],
                "{name} prompt {i} vs transformers"
            );
        }
    }
}

#[test]
fn scoring_matches_transformers_log_probs() {
    for name in FIXTURES {
        let engine = cpu_engine(name);
        let r = reference(name);
        let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
        let scores = engine.score(&texts).expect("score");
        for (i, s) in scores.iter().enumerate() {
            assert_eq!(
                s.token_ids, r.prompts[i],
                "{name}: tokenization of prompt {i}"
            );
            let lp = crate::common::log_softmax(&r.logits[i]);
            for (k, v) in s.logprobs.iter().enumerate() {
                let expected = lp[k][s.token_ids[k + 1] as usize];
                assert!(
                    (*v as f64 - expected).abs() <= 1e-4,
                    "{name} prompt {i} token {k}: {v} vs {expected}"
                );
            }
        }
    }
}

#[test]
fn scores_formed_a_position_at_a_time_equal_one_pass() {
    // The logits of a scoring batch are formed in chunks bounded by a budget; the smallest
    // budget (one position of every row per chunk) must give the scores of a single pass.
    for name in FIXTURES {
        let dir = fixtures_dir().join(name);
        let r = reference(name);
        let model = LanguageModel::<Flex>::load(&dir, DType::F32, &FlexDevice).expect("model");
        let pad = cpu_engine(name).info().pad_id;
        let one_pass = score_with_logit_budget(&model, &r.prompts, pad, usize::MAX).expect("one");
        let chunked = score_with_logit_budget(&model, &r.prompts, pad, 1).expect("chunked");
        for (i, (a, b)) in one_pass.iter().zip(&chunked).enumerate() {
            assert_eq!(a.token_ids, b.token_ids);
            assert_eq!(a.logprobs.len(), b.logprobs.len());
            for (k, (x, y)) in a.logprobs.iter().zip(&b.logprobs).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-6,
                    "{name} text {i} token {k}: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn continuations_sharing_a_prompt_cache_match_transformers_and_scoring_alone() {
    for name in FIXTURES {
        let engine = cpu_engine(name);
        let r = reference(name);
        // Each reference prompt split into a prefix and continuations of 1, 2 and all the
        // remaining tokens: their log-probabilities are in transformers' logits of the whole.
        let mut prefixes = Vec::new();
        let mut continuations = Vec::new();
        for ids in &r.prompts {
            let k = ids.len() / 2;
            prefixes.push(ids[..k].to_vec());
            continuations.push(vec![
                ids[k..].to_vec(),
                ids[k..k + 1].to_vec(),
                ids[k..(k + 2).min(ids.len())].to_vec(),
            ]);
        }
        let shared = engine
            .score_continuations(&prefixes, &continuations)
            .expect("continuations");
        for (i, ids) in r.prompts.iter().enumerate() {
            let lp = crate::common::log_softmax(&r.logits[i]);
            let k = prefixes[i].len();
            for (c, cont) in continuations[i].iter().enumerate() {
                let expected: f64 = (0..cont.len())
                    .map(|j| lp[k + j - 1][ids[k + j] as usize])
                    .sum();
                let got = shared[i][c];
                assert!(
                    (got - expected).abs() <= 1e-4 * cont.len() as f64,
                    "{name} prompt {i} continuation {c}: {got} vs transformers {expected}"
                );
                let mut whole = prefixes[i].clone();
                whole.extend_from_slice(cont);
                let alone: f64 = engine.score_ids(&[whole]).expect("score")[0].logprobs[k - 1..]
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum();
                assert!(
                    (got - alone).abs() <= 1e-4,
                    "{name} prompt {i} continuation {c}: shared {got} vs alone {alone}"
                );
            }
        }
    }
}

/// Seven prompts of different lengths (3 to 42 tokens) for `gpt_neox_parallel`.
fn seven_prompts(engine: &c2s_core::engine::Engine) -> Vec<Vec<u32>> {
    let mut prompts = reference("gpt_neox_parallel").prompts;
    for text in [
        "MS4A1 CD79A",
        "The cell type is GNLY NKG7 PRF1 GZMB CCL5",
        "LYZ",
        "CD14 S100A8 S100A9 LYZ FCN1 VCAN CST3 TYROBP",
    ] {
        prompts.push(engine.tokenizer().encode(text).expect("encode"));
    }
    prompts
}

#[test]
fn bounded_batches_give_the_same_outputs_as_one_batch() {
    let engine = cpu_engine("gpt_neox_parallel");
    let prompts = seven_prompts(&engine);
    let lengths: std::collections::BTreeSet<usize> = prompts.iter().map(Vec::len).collect();
    assert_eq!(lengths.len(), 7, "seven different lengths");
    for temperature in [0.0, 0.9] {
        let one = GenerateOptions {
            max_new_tokens: 10,
            sampling: SamplingParams {
                temperature,
                seed: Some(3),
                ..Default::default()
            },
            ignore_eos: true,
            ..Default::default()
        };
        let (whole, stats) = engine
            .generate_ids(&prompts, &one, &mut |_| {}, None)
            .expect("one batch");
        assert_eq!(stats.batches, 1);
        // Two rows a batch (4 batches), or a cache budget of two rows of the longest prompt
        // (42 + 10 tokens; shorter prompts fit more rows).
        let per_token = 2 * 3 * 64 * 4; // k and v, 3 layers, width 64, f32
        for (bounded, batches) in [
            (
                GenerateOptions {
                    max_batch_rows: 2,
                    ..one.clone()
                },
                4..=4,
            ),
            (
                GenerateOptions {
                    kv_budget_bytes: 2 * 52 * per_token,
                    ..one.clone()
                },
                2..=6,
            ),
        ] {
            let mut streamed = vec![String::new(); prompts.len()];
            let (split, stats) = engine
                .generate_ids(
                    &prompts,
                    &bounded,
                    &mut |e| streamed[e.row].push_str(e.text_delta),
                    None,
                )
                .expect("bounded batches");
            assert!(
                batches.contains(&stats.batches),
                "{} batches",
                stats.batches
            );
            for (i, (a, b)) in whole.iter().zip(&split).enumerate() {
                assert_eq!(a.token_ids, b.token_ids, "prompt {i}, t = {temperature}");
                assert_eq!(a.text, b.text);
                assert_eq!(b.prompt_tokens, prompts[i].len(), "results in prompt order");
                assert_eq!(streamed[i], b.text, "events carry the prompt's index");
            }
        }
    }
}

#[test]
fn finished_rows_leave_the_batch() {
    let name = "gpt_neox_parallel";
    let dir = fixtures_dir().join(name);
    let r = reference(name);
    let model = LanguageModel::<Flex>::load(&dir, DType::F32, &FlexDevice).expect("model");
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json")).expect("tokenizer");
    let options = GenerateOptions {
        max_new_tokens: 16,
        ..Default::default()
    };
    // Pretend the third token of row 2's greedy output is an EOS id: row 2 ends early.
    let greedy = &r.greedy[2];
    let k = (1..greedy.len())
        .find(|&k| !greedy[..k].contains(&greedy[k]))
        .expect("a new token");
    let mut eos = eos_ids(&dir);
    eos.push(greedy[k]);
    let (out, stats) = generate(
        &model,
        &tokenizer,
        &r.prompts,
        &options,
        &eos,
        0,
        &mut |_| {},
        None,
    )
    .expect("generate");
    assert_eq!(out[2].stop_reason, StopReason::Eos);
    assert_eq!(out[2].token_ids, greedy[..=k].to_vec());
    let longest = out.iter().map(|g| g.token_ids.len()).max().unwrap();
    assert!(longest > k + 1, "another row runs on");
    // Every token after a row's first comes from a decode step that computed that row only.
    let tokens: usize = out.iter().map(|g| g.token_ids.len() - 1).sum();
    assert_eq!(stats.decode_steps, longest - 1);
    assert_eq!(stats.decode_rows, tokens);
    assert!(stats.decode_rows < out.len() * stats.decode_steps);
}

#[test]
fn each_row_fills_its_own_context() {
    // The fixtures have a 64-token context; prompts of 22, 42 and 5 tokens share a batch.
    let engine = cpu_engine("gpt_neox_parallel");
    let r = reference("gpt_neox_parallel");
    let (out, stats) = engine
        .generate_ids(
            &r.prompts,
            &GenerateOptions {
                max_new_tokens: 500,
                ignore_eos: true,
                ..Default::default()
            },
            &mut |_| {},
            None,
        )
        .expect("generate");
    assert_eq!(stats.batches, 1);
    for (i, g) in out.iter().enumerate() {
        assert_eq!(g.stop_reason, StopReason::ContextFull, "row {i}");
        assert_eq!(
            g.prompt_tokens + g.token_ids.len(),
            engine.info().context,
            "row {i}"
        );
    }
}

#[test]
fn samples_share_one_prefill_and_match_separate_prefills() {
    let engine = cpu_engine("gemma2");
    let r = reference("gemma2");
    let requests = [
        GenerateRequest {
            samples: 4,
            seed: Some(5),
            ..GenerateRequest::new(&r.prompts[1])
        },
        GenerateRequest::new(&r.prompts[2]),
    ];
    let options = GenerateOptions {
        max_new_tokens: 8,
        sampling: SamplingParams {
            temperature: 1.2,
            seed: Some(1),
            ..Default::default()
        },
        ignore_eos: true,
        ..Default::default()
    };
    let mut done = Vec::new();
    let (shared, stats) = engine
        .generate_requests(
            &requests,
            &options,
            &mut |_| {},
            &mut |row, _| done.push(row),
            None,
        )
        .expect("shared prefill");
    assert_eq!(shared.len(), 5);
    done.sort();
    assert_eq!(done, [0, 1, 2, 3, 4], "every row reported once");
    // One prefill row per request: 2 rows × the longer prompt.
    assert_eq!(stats.prefill_tokens, 2 * r.prompts[1].len());
    // One row a batch: each sample prefills the prompt itself.
    let (separate, stats) = engine
        .generate_requests(
            &requests,
            &GenerateOptions {
                max_batch_rows: 1,
                ..options.clone()
            },
            &mut |_| {},
            &mut |_, _| {},
            None,
        )
        .expect("separate prefills");
    assert_eq!(stats.batches, 5);
    for (i, (a, b)) in shared.iter().zip(&separate).enumerate() {
        assert_eq!(a.token_ids, b.token_ids, "row {i}");
        assert_eq!(a.text, b.text, "row {i}");
    }
    let distinct: std::collections::BTreeSet<_> =
        shared[..4].iter().map(|g| &g.token_ids).collect();
    assert!(distinct.len() > 1, "the samples differ");
}

#[test]
fn rows_joining_a_running_batch_generate_what_they_would_alone() {
    for name in ["gpt_neox_parallel", "gemma2"] {
        let engine = cpu_engine(name);
        let prompts = seven_prompts(&engine);
        // Each request its own bound, so rows finish at different steps and free their slots.
        let requests: Vec<GenerateRequest<'_>> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| GenerateRequest {
                max_new_tokens: Some(2 + (i * 5) % 11),
                ..GenerateRequest::new(p)
            })
            .collect();
        for temperature in [0.0, 0.9] {
            let options = GenerateOptions {
                max_new_tokens: 64,
                sampling: SamplingParams {
                    temperature,
                    seed: Some(3),
                    ..Default::default()
                },
                ignore_eos: true,
                max_batch_rows: 4,
                ..Default::default()
            };
            let run = |options: &GenerateOptions| {
                let mut streamed = vec![String::new(); requests.len()];
                let (rows, stats) = engine
                    .generate_requests(
                        &requests,
                        options,
                        &mut |e| streamed[e.row].push_str(e.text_delta),
                        &mut |_, _| {},
                        None,
                    )
                    .expect("generate");
                for (g, s) in rows.iter().zip(&streamed) {
                    assert_eq!(&g.text, s, "{name}: streamed text");
                }
                (rows, stats)
            };
            let (joined, stats) = run(&options);
            assert!(
                stats.refills > 0,
                "{name}: no request joined a running batch"
            );
            let (fixed, fixed_stats) = run(&GenerateOptions {
                continuous: false,
                ..options.clone()
            });
            assert_eq!(fixed_stats.refills, 0);
            let (alone, _) = run(&GenerateOptions {
                max_batch_rows: 1,
                ..options.clone()
            });
            for (i, ((a, b), c)) in joined.iter().zip(&fixed).zip(&alone).enumerate() {
                let bound = requests[i].max_new_tokens.unwrap();
                assert_eq!(a.token_ids.len(), bound, "{name}, request {i}");
                assert_eq!(a.stop_reason, StopReason::MaxTokens);
                assert_eq!(
                    a.token_ids, b.token_ids,
                    "{name}, request {i}, t = {temperature}"
                );
                assert_eq!(
                    a.token_ids, c.token_ids,
                    "{name}, request {i}, t = {temperature}"
                );
                assert_eq!(a.text, c.text);
            }
            // The same tokens in fewer steps: freed slots were refilled instead of idling.
            assert_eq!(stats.decode_rows, fixed_stats.decode_rows);
            assert!(
                stats.decode_steps < fixed_stats.decode_steps,
                "{name}: {} steps joined, {} in fixed batches",
                stats.decode_steps,
                fixed_stats.decode_steps
            );
        }
    }
}

/// A request cancelled on its own stops (before its next token when running, unstarted when
/// waiting) while the others generate what they would without it.
#[test]
fn a_request_cancelled_alone_stops_and_the_others_go_on() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let engine = cpu_engine("gpt_neox_parallel");
    let prompts = seven_prompts(&engine);
    let flags: Vec<AtomicBool> = prompts.iter().map(|_| AtomicBool::new(false)).collect();
    let requests: Vec<GenerateRequest<'_>> = prompts
        .iter()
        .zip(&flags)
        .map(|(p, flag)| GenerateRequest {
            cancel: Some(flag),
            ..GenerateRequest::new(p)
        })
        .collect();
    let plain: Vec<GenerateRequest<'_>> = prompts.iter().map(|p| GenerateRequest::new(p)).collect();
    let options = GenerateOptions {
        max_new_tokens: 10,
        sampling: SamplingParams {
            temperature: 0.0,
            ..Default::default()
        },
        ignore_eos: true,
        max_batch_rows: 3,
        ..Default::default()
    };
    let run = |requests: &[GenerateRequest<'_>], options: &GenerateOptions| {
        for flag in &flags {
            flag.store(false, Ordering::Relaxed);
        }
        // Request 6 is cancelled before the call: it waits in the queue and is never
        // prefilled. Request 1 is cancelled by the caller once it has streamed 3 tokens.
        flags[6].store(true, Ordering::Relaxed);
        let mut streamed = vec![0usize; requests.len()];
        engine
            .generate_requests(
                requests,
                options,
                &mut |e| {
                    streamed[e.row] += 1;
                    if e.row == 1 && streamed[1] == 3 {
                        flags[1].store(true, Ordering::Relaxed);
                    }
                },
                &mut |_, _| {},
                None,
            )
            .expect("generate")
    };
    let (expected, _) = run(&plain, &options);
    let (got, _) = run(&requests, &options);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        match i {
            1 => {
                assert_eq!(g.stop_reason, StopReason::Cancelled);
                assert_eq!(
                    g.token_ids,
                    e.token_ids[..3],
                    "request 1 keeps its 3 tokens"
                );
            }
            6 => {
                assert_eq!(g.stop_reason, StopReason::Cancelled);
                assert!(g.token_ids.is_empty() && g.text.is_empty());
            }
            _ => {
                assert_eq!(g.stop_reason, StopReason::MaxTokens, "request {i}");
                assert_eq!(g.token_ids, e.token_ids, "request {i}");
                assert_eq!(g.text, e.text, "request {i}");
            }
        }
    }
    // One request a batch: the cancelled request's prompt is never prefilled.
    let one = GenerateOptions {
        max_batch_rows: 1,
        ..options.clone()
    };
    let (_, stats) = run(&requests, &one);
    let prefilled: usize = prompts[..6].iter().map(Vec::len).sum();
    assert_eq!(stats.prefill_tokens, prefilled);
    assert_eq!(stats.batches, 6);
}

//! Generation controls through the CPU engine: seeded sampling (one random stream per request),
//! top-k/top-p, stop strings that never reach the stream, streaming to a callback,
//! cancellation from another thread, EOS handling, context limits.

use crate::common::{FIXTURES, cpu_engine, reference};
use c2s_core::engine::{GenerateOptions, GenerateRequest, SamplingParams, StopReason};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

fn sampled(seed: u64) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: 12,
        sampling: SamplingParams {
            temperature: 1.3,
            top_k: 40,
            top_p: 0.95,
            seed: Some(seed),
        },
        ignore_eos: true,
        ..Default::default()
    }
}

#[test]
fn same_seed_gives_same_sample_and_batch_rows_are_independent_of_order() {
    let engine = cpu_engine("gpt_neox_parallel");
    let r = reference("gpt_neox_parallel");
    let run = |seed| {
        engine
            .generate_ids(&r.prompts[..1], &sampled(seed), &mut |_| {}, None)
            .expect("generate")
            .0[0]
            .token_ids
            .clone()
    };
    assert_eq!(run(11), run(11));
    let distinct: std::collections::BTreeSet<_> = (0..6).map(run).collect();
    assert!(
        distinct.len() > 1,
        "different seeds should give different samples"
    );
}

#[test]
fn top_k_one_equals_greedy() {
    let engine = cpu_engine("gemma2");
    let r = reference("gemma2");
    let options = GenerateOptions {
        max_new_tokens: 16,
        sampling: SamplingParams {
            temperature: 0.7,
            top_k: 1,
            top_p: 1.0,
            seed: Some(5),
        },
        ..Default::default()
    };
    let (out, _) = engine
        .generate_ids(&r.prompts, &options, &mut |_| {}, None)
        .expect("generate");
    for (i, g) in out.iter().enumerate() {
        assert_eq!(g.token_ids, r.greedy[i]);
    }
}

#[test]
fn streamed_deltas_concatenate_to_the_final_text() {
    let engine = cpu_engine("gpt_neox_parallel");
    let r = reference("gpt_neox_parallel");
    let mut streamed = vec![String::new(); r.prompts.len()];
    let mut ids = vec![Vec::new(); r.prompts.len()];
    let (out, _) = engine
        .generate_ids(
            &r.prompts,
            &GenerateOptions {
                max_new_tokens: 16,
                ..Default::default()
            },
            &mut |e| {
                streamed[e.row].push_str(e.text_delta);
                ids[e.row].push(e.token_id);
            },
            None,
        )
        .expect("generate");
    for (i, g) in out.iter().enumerate() {
        assert_eq!(streamed[i], g.text, "row {i}");
        assert_eq!(ids[i], g.token_ids, "row {i}");
        assert_eq!(g.text, engine.tokenizer().decode(&g.token_ids).unwrap());
    }
}

#[test]
fn stop_string_cuts_the_text_and_stops_the_row() {
    let engine = cpu_engine("gpt_neox_parallel");
    let r = reference("gpt_neox_parallel");
    let tok = engine.tokenizer();
    let full = tok.decode(&r.greedy[0]).unwrap();
    // The first token (k >= 2) whose new text did not appear before: the row must stop there.
    let (k, stop) = (2..=r.greedy[0].len())
        .find_map(|k| {
            let before = tok.decode(&r.greedy[0][..k - 1]).unwrap();
            let after = tok.decode(&r.greedy[0][..k]).unwrap();
            let delta = after.get(before.len()..)?.to_string();
            (!delta.trim().is_empty() && !before.contains(&delta)).then_some((k, delta))
        })
        .expect("a token that adds new text");
    let options = GenerateOptions {
        max_new_tokens: 16,
        stop_strings: vec![stop.clone()],
        ..Default::default()
    };
    let (out, _) = engine
        .generate_ids(&r.prompts[..1], &options, &mut |_| {}, None)
        .expect("generate");
    assert_eq!(out[0].stop_reason, StopReason::StopString);
    assert!(
        !out[0].text.contains(&stop),
        "{:?} still contains {stop:?}",
        out[0].text
    );
    assert!(full.starts_with(&out[0].text));
    assert_eq!(out[0].token_ids, r.greedy[0][..k].to_vec());
}

#[test]
fn cancellation_from_another_thread_stops_generation() {
    let engine = cpu_engine("gpt_neox_parallel");
    let r = reference("gpt_neox_parallel");
    let cancel = Arc::new(AtomicBool::new(false));
    let (to_watcher, watcher_rx) = mpsc::channel::<()>();
    let (to_generator, generator_rx) = mpsc::channel::<()>();
    let flag = Arc::clone(&cancel);
    // The watcher thread raises the flag after the third token, then lets generation continue.
    let watcher = std::thread::spawn(move || {
        for _ in 0..3 {
            watcher_rx.recv().expect("token signal");
        }
        flag.store(true, Ordering::Relaxed);
        to_generator.send(()).expect("ack");
    });
    let mut seen = 0;
    let (out, _) = engine
        .generate_ids(
            &r.prompts[..1],
            &GenerateOptions {
                max_new_tokens: 40,
                ignore_eos: true,
                ..Default::default()
            },
            // Moved in: generation calls back from a thread of the rayon pool.
            &mut move |_| {
                seen += 1;
                if seen <= 3 {
                    to_watcher.send(()).expect("signal");
                }
                if seen == 3 {
                    generator_rx.recv().expect("flag raised");
                }
            },
            Some(&cancel),
        )
        .expect("generate");
    watcher.join().expect("watcher");
    assert_eq!(out[0].stop_reason, StopReason::Cancelled);
    assert_eq!(out[0].token_ids.len(), 3);
}

#[test]
fn eos_stops_a_row_and_is_kept_in_token_ids() {
    // gemma3_text's generation_config lists eos [1, 3]; force an EOS by scoring what greedy picks.
    let engine = cpu_engine("gemma3_text");
    assert_eq!(engine.info().eos_ids, vec![1, 3]);
    assert_eq!(engine.info().pad_id, 0);
    let r = reference("gemma3_text");
    let (out, _) = engine
        .generate_ids(
            &r.prompts,
            &GenerateOptions {
                max_new_tokens: 16,
                ..Default::default()
            },
            &mut |_| {},
            None,
        )
        .expect("generate");
    for (g, expected) in out.iter().zip(&r.greedy) {
        assert_eq!(&g.token_ids, expected);
        let ends_in_eos = g.token_ids.last().is_some_and(|t| [1, 3].contains(t));
        let reason = if ends_in_eos {
            StopReason::Eos
        } else {
            StopReason::MaxTokens
        };
        assert_eq!(g.stop_reason, reason);
    }
}

#[test]
fn generation_stops_at_the_context_end() {
    // The fixtures have a 64-token context.
    let engine = cpu_engine("gpt_neox_parallel");
    let r = reference("gpt_neox_parallel");
    let (out, _) = engine
        .generate_ids(
            &r.prompts[..1],
            &GenerateOptions {
                max_new_tokens: 500,
                ignore_eos: true,
                ..Default::default()
            },
            &mut |_| {},
            None,
        )
        .expect("generate");
    assert_eq!(out[0].stop_reason, StopReason::ContextFull);
    assert_eq!(
        out[0].prompt_tokens + out[0].token_ids.len(),
        engine.info().context
    );
}

/// Five different prompts of the fixture `gpt_neox_parallel` (the reference ones and two more).
fn five_prompts(engine: &c2s_core::engine::Engine) -> Vec<Vec<u32>> {
    let mut prompts = reference("gpt_neox_parallel").prompts;
    for text in ["MS4A1 CD79A CD79B", "The cell type is GNLY NKG7 PRF1 GZMB"] {
        prompts.push(engine.tokenizer().encode(text).expect("encode"));
    }
    prompts
}

#[test]
fn a_request_samples_the_same_alone_or_anywhere_in_a_batch() {
    let engine = cpu_engine("gpt_neox_parallel");
    let prompts = five_prompts(&engine);
    let options = GenerateOptions {
        max_new_tokens: 12,
        sampling: SamplingParams {
            temperature: 0.8,
            seed: Some(21),
            ..Default::default()
        },
        ignore_eos: true,
        ..Default::default()
    };
    // Prompt 0 with its own seed: alone, as row 3 of five, and in the reversed batch.
    let ids_of = |requests: &[GenerateRequest<'_>], row: usize| {
        engine
            .generate_requests(requests, &options, &mut |_| {}, &mut |_, _| {}, None)
            .expect("generate")
            .0[row]
            .token_ids
            .clone()
    };
    fn own(p: &[u32]) -> GenerateRequest<'_> {
        GenerateRequest {
            seed: Some(7),
            ..GenerateRequest::new(p)
        }
    }
    let others: Vec<GenerateRequest<'_>> = prompts[1..]
        .iter()
        .map(|p| GenerateRequest::new(p))
        .collect();
    let alone = ids_of(&[own(&prompts[0])], 0);
    let mut batch = others.clone();
    batch.insert(3, own(&prompts[0]));
    assert_eq!(ids_of(&batch, 3), alone, "row 3 of a batch of five");
    batch.reverse();
    assert_eq!(ids_of(&batch, 1), alone, "reversed batch");
    // Streams from the call's seed follow the request's index, not its batch: one batch of
    // five, or each prompt in a batch of its own, gives the same samples.
    let (together, _) = engine
        .generate_ids(&prompts, &options, &mut |_| {}, None)
        .expect("generate");
    let (apart, stats) = engine
        .generate_ids(
            &prompts,
            &GenerateOptions {
                max_batch_rows: 1,
                ..options.clone()
            },
            &mut |_| {},
            None,
        )
        .expect("generate");
    assert_eq!(stats.batches, 5);
    for (i, (a, b)) in together.iter().zip(&apart).enumerate() {
        assert_eq!(a.token_ids, b.token_ids, "prompt {i}");
    }
    // Different requests of the same prompt still sample differently.
    let same = vec![prompts[0].clone(); 4];
    let (rows, _) = engine
        .generate_ids(&same, &options, &mut |_| {}, None)
        .expect("generate");
    let distinct: std::collections::BTreeSet<_> = rows.iter().map(|g| &g.token_ids).collect();
    assert!(distinct.len() > 1, "every row drew the same sample");
}

/// What each token adds to the decoded text, where that is whole characters (no U+FFFD).
fn token_texts(
    tok: &c2s_core::engine::tokenizer::TextTokenizer,
    ids: &[u32],
) -> Vec<Option<String>> {
    (1..=ids.len())
        .map(|k| {
            let before = tok.decode(&ids[..k - 1]).unwrap();
            let after = tok.decode(&ids[..k]).unwrap();
            let added = after.strip_prefix(before.as_str())?;
            (!added.is_empty() && !added.contains('\u{FFFD}')).then(|| added.to_string())
        })
        .collect()
}

#[test]
fn a_stop_string_spanning_two_tokens_never_reaches_the_stream() {
    let engine = cpu_engine("gpt_neox_parallel");
    let r = reference("gpt_neox_parallel");
    let tok = engine.tokenizer();
    // The last character of token k and the first of token k + 1, first seen at their seam.
    let (row, k, stop) = (0..r.greedy.len())
        .find_map(|row| {
            let ids = &r.greedy[row];
            let texts = token_texts(tok, ids);
            let full = tok.decode(ids).unwrap();
            (0..ids.len() - 1).find_map(|k| {
                let (a, b) = (texts[k].as_ref()?, texts[k + 1].as_ref()?);
                let (a, b) = (a.chars().last()?, b.chars().next()?);
                let stop = format!("{a}{b}");
                let seam = tok.decode(&ids[..=k]).unwrap().len() - a.len_utf8();
                (full.find(&stop) == Some(seam)).then_some((row, k, stop))
            })
        })
        .expect("a stop string across two tokens");
    let full = tok.decode(&r.greedy[row]).unwrap();
    let mut streamed = String::new();
    let (out, _) = engine
        .generate_ids(
            &r.prompts[row..=row],
            &GenerateOptions {
                max_new_tokens: 16,
                stop_strings: vec![stop.clone()],
                ..Default::default()
            },
            &mut |e| streamed.push_str(e.text_delta),
            None,
        )
        .expect("generate");
    let g = &out[0];
    assert_eq!(g.stop_reason, StopReason::StopString);
    assert_eq!(g.token_ids, r.greedy[row][..k + 2].to_vec());
    assert!(!streamed.contains(&stop), "{streamed:?} shows {stop:?}");
    assert_eq!(streamed, g.text, "the stream is the final text");
    assert_eq!(
        g.text,
        full[..full.find(&stop).unwrap()],
        "cut before the stop string"
    );
}

#[test]
fn streamed_deltas_equal_the_final_text_with_stop_strings() {
    for name in FIXTURES {
        let engine = cpu_engine(name);
        let r = reference(name);
        let tok = engine.tokenizer();
        // Stop strings from the middle of each greedy text: some rows stop, all hold back.
        let stops: Vec<String> = r
            .greedy
            .iter()
            .filter_map(|ids| {
                let text = tok.decode(ids).unwrap();
                let chars: Vec<char> = text.chars().collect();
                let mid = chars.len() / 2;
                (chars.len() >= 4).then(|| chars[mid..mid + 2].iter().collect())
            })
            .collect();
        let mut streamed = vec![String::new(); r.prompts.len()];
        let (out, _) = engine
            .generate_ids(
                &r.prompts,
                &GenerateOptions {
                    max_new_tokens: 16,
                    stop_strings: stops.clone(),
                    ..Default::default()
                },
                &mut |e| streamed[e.row].push_str(e.text_delta),
                None,
            )
            .expect("generate");
        let mut stopped = 0;
        for (i, g) in out.iter().enumerate() {
            assert_eq!(streamed[i], g.text, "{name} row {i}");
            let whole = tok.decode(&g.token_ids).unwrap();
            assert!(whole.starts_with(&g.text), "{name} row {i}");
            for s in &stops {
                assert!(!g.text.contains(s.as_str()), "{name} row {i}: {s:?}");
            }
            stopped += usize::from(g.stop_reason == StopReason::StopString);
        }
        assert!(stopped > 0, "{name}: no row met a stop string");
    }
}

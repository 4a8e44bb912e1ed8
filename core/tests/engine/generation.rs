//! Generation controls through the CPU engine: seeded sampling, top-k/top-p, stop strings,
//! streaming to a callback, cancellation from another thread, EOS handling, context limits.

use crate::common::{cpu_engine, reference};
use c2s_core::engine::{GenerateOptions, SamplingParams, StopReason};
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
            &mut |_| {
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

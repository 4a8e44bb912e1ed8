//! Batched results equal one-at-a-time results: scoring, embeddings and greedy generation of
//! prompts of different lengths in one left-padded batch, on the CPU engine.

use crate::common::{FIXTURES, cpu_engine, reference};
use c2s_core::engine::GenerateOptions;

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

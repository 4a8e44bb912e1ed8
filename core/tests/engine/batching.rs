//! Batched results equal one-at-a-time results: scoring, embeddings and greedy generation of
//! prompts of different lengths in one left-padded batch, on the CPU engine.

use crate::common::{FIXTURES, fixtures_dir, reference};
use c2s_core::engine::{DTypeRequest, DeviceRequest, Engine, GenerateOptions, LoadOptions};

fn cpu_engine(name: &str) -> Engine {
    Engine::load_dir(
        &fixtures_dir().join(name),
        &LoadOptions {
            device: DeviceRequest::Cpu,
            dtype: DTypeRequest::F32,
            fusion: false,
        },
    )
    .expect("engine loads")
}

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

//! Annotation on the tiny checkpoints: ranking agrees with scoring each candidate after its
//! prompt, generation's score is the probability of its tokens, and a cancel keeps the batches
//! already done.

use crate::common::cpu_engine;

use c2s_core::tasks::annotate::{AnnotateMode, AnnotateRequest, annotate, label_of};
use std::sync::atomic::{AtomicBool, Ordering};

fn prompts() -> Vec<String> {
    [
        "CD3E IL7R LTB:",
        "MS4A1 CD79A:",
        "NKG7 GNLY GZMB PRF1:",
        "LYZ:",
        "CD14 S100A8:",
    ]
    .map(String::from)
    .to_vec()
}

fn request<'a>(prompts: &'a [String], mode: &'a AnnotateMode, batch: usize) -> AnnotateRequest<'a> {
    AnnotateRequest {
        prompts,
        response: "{cell_type}.",
        key: "cell_type",
        mode,
        batch,
        genes_per_prompt: 4,
    }
}

#[test]
fn ranking_picks_the_candidate_with_the_highest_log_likelihood() {
    for name in ["gpt_neox_parallel", "gemma2", "gemma3_text"] {
        let engine = cpu_engine(name);
        let labels: Vec<String> = ["T cell", "B cell", "NK cell", "Monocyte"]
            .map(String::from)
            .to_vec();
        let mode = AnnotateMode::Rank {
            labels: labels.clone(),
        };
        let prompts = prompts();
        let out = annotate(
            &engine,
            &request(&prompts, &mode, 2),
            &AtomicBool::new(false),
            &mut |_, _| {},
        )
        .expect("annotate");
        assert!(!out.cancelled);
        assert_eq!(out.cells.len(), prompts.len());
        for (p, a) in prompts.iter().zip(&out.cells) {
            // Each candidate scored alone: prompt tokens, then its response's own tokens.
            let prompt_ids = engine.tokenizer().encode(p).unwrap();
            for (i, l) in labels.iter().enumerate() {
                let cont = engine.tokenizer().encode_plain(&format!("{l}.")).unwrap();
                let mut whole = prompt_ids.clone();
                whole.extend(&cont);
                let alone: f64 = engine.score_ids(&[whole]).unwrap()[0].logprobs
                    [prompt_ids.len() - 1..]
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum();
                assert!(
                    (a.loglik[i] - alone).abs() < 1e-4,
                    "{name} {p:?} {l}: {} vs {alone}",
                    a.loglik[i]
                );
            }
            let best = (0..labels.len())
                .max_by(|&x, &y| a.loglik[x].total_cmp(&a.loglik[y]))
                .unwrap();
            assert_eq!(a.label, labels[best]);
            assert_eq!(a.output, format!("{}.", labels[best]));
            assert_eq!(a.top.len(), 3);
            let total: f64 = a.top.iter().map(|t| t.1).sum();
            assert!(total <= 1.0 + 1e-9 && a.score == a.top[0].1);
        }
    }
}

#[test]
fn generation_scores_are_the_probability_of_the_generated_tokens() {
    let engine = cpu_engine("gpt_neox_sequential");
    let mode = AnnotateMode::Generate {
        max_new_tokens: 6,
        sampling: Default::default(),
    };
    let prompts = prompts();
    let out = annotate(
        &engine,
        &request(&prompts, &mode, 3),
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .expect("annotate");
    for (p, a) in prompts.iter().zip(&out.cells) {
        assert_eq!(a.label, label_of(&a.output));
        let (generated, _) = engine
            .generate(
                &[p.as_str()],
                &c2s_core::engine::GenerateOptions {
                    max_new_tokens: 6,
                    ..Default::default()
                },
                &mut |_| {},
                None,
            )
            .unwrap();
        assert_eq!(generated[0].text, a.output, "batched equals alone");
        let mut whole = engine.tokenizer().encode(p).unwrap();
        let n = whole.len();
        whole.extend(&generated[0].token_ids);
        let lp: f64 = engine.score_ids(&[whole]).unwrap()[0].logprobs[n - 1..]
            .iter()
            .map(|&v| f64::from(v))
            .sum();
        assert!(
            (a.score.ln() - lp).abs() < 1e-3,
            "{p:?}: {} vs {lp}",
            a.score.ln()
        );
    }
}

#[test]
fn a_cancel_keeps_the_batches_already_done() {
    let engine = cpu_engine("gpt_neox_parallel");
    let mode = AnnotateMode::Rank {
        labels: vec!["T cell".into(), "B cell".into()],
    };
    let prompts = prompts();
    let cancel = AtomicBool::new(false);
    let mut seen = Vec::new();
    let out = annotate(
        &engine,
        &request(&prompts, &mode, 2),
        &cancel,
        &mut |done, new| {
            seen.push((done, new.len()));
            cancel.store(true, Ordering::Relaxed);
        },
    )
    .expect("annotate");
    assert!(out.cancelled);
    assert_eq!(out.cells.len(), 2, "the first batch is kept");
    assert_eq!(seen, [(2, 2)]);
}

#[test]
fn prompts_too_long_for_the_context_say_how_many_genes_fit() {
    let engine = cpu_engine("gpt_neox_parallel");
    let long = vec!["CD3E ".repeat(80)];
    let mode = AnnotateMode::greedy();
    let err = annotate(
        &engine,
        &request(&long, &mode, 1),
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("genes per cell fit"), "{err}");
    let mode = AnnotateMode::Rank {
        labels: vec!["T".into(), "T".into()],
    };
    let err = annotate(
        &engine,
        &request(&prompts(), &mode, 1),
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("listed twice"), "{err}");
}

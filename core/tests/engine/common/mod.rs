//! Shared helpers for the engine tests: fixture paths, `transformers` reference data, and a
//! backend-generic parity check.
#![allow(dead_code)]

use burn::tensor::FloatDType;
use burn::tensor::backend::Backend;
use c2s_core::engine::generate::{GenerateOptions, generate};
use c2s_core::engine::tokenizer::TextTokenizer;
use c2s_core::model::Step;
use c2s_core::model::{LanguageModel, Precision};
use serde_json::Value;
use std::path::PathBuf;

/// The committed fixture checkpoints (written by `tools/models/make_fixtures.sh`).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
}

/// The fixture `name` loaded on the CPU in f32.
pub fn cpu_engine(name: &str) -> c2s_core::engine::Engine {
    use c2s_core::engine::{DTypeRequest, DeviceRequest, Engine, LoadOptions};
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

/// Every fixture model, with the architecture feature it covers.
pub const FIXTURES: [&str; 5] = [
    "gpt_neox_parallel",
    "gpt_neox_sequential",
    "gemma2",
    "gemma3_text",
    "gemma3_nested",
];

/// `transformers` reference outputs of one fixture.
#[derive(Debug, Clone)]
pub struct Reference {
    pub texts: Vec<String>,
    pub prompts: Vec<Vec<u32>>,
    /// `[prompt][position][vocab]`.
    pub logits: Vec<Vec<Vec<f32>>>,
    /// Left-padded batch logits for the real positions, `[prompt][position][vocab]`.
    pub batch_logits: Vec<Vec<Vec<f32>>>,
    pub greedy: Vec<Vec<u32>>,
    pub embeddings: Vec<Vec<f32>>,
    /// `[layer][position][hidden]` for prompt 0 (last entry is after the final norm).
    pub hidden_states: Vec<Vec<Vec<f32>>>,
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().expect("array").iter().map(floats).collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Reads `reference.json` of a fixture.
pub fn reference(name: &str) -> Reference {
    let path = fixtures_dir().join(name).join("reference.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("reference.json"))
        .expect("valid json");
    let arr = |k: &str| v[k].as_array().expect(k).clone();
    Reference {
        texts: arr("prompts")
            .iter()
            .map(|p| p["text"].as_str().expect("text").to_string())
            .collect(),
        prompts: arr("prompts").iter().map(|p| ids(&p["ids"])).collect(),
        logits: arr("logits").iter().map(matrix).collect(),
        batch_logits: arr("batch_logits").iter().map(matrix).collect(),
        greedy: arr("greedy").iter().map(ids).collect(),
        embeddings: arr("embeddings").iter().map(floats).collect(),
        hidden_states: arr("hidden_states").iter().map(matrix).collect(),
    }
}

/// Log-softmax of each row, in f64.
pub fn log_softmax(rows: &[Vec<f32>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| {
            let max = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = r.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln() + max;
            r.iter().map(|&x| x as f64 - lse).collect()
        })
        .collect()
}

/// Largest absolute difference between two nested float tables.
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    assert_eq!(a.len(), b.len(), "row count");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "row width");
            x.iter()
                .zip(y)
                .map(|(p, q)| (*p as f64 - *q as f64).abs())
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max)
}

fn max_abs_diff64(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max)
}

/// Host copy of a `[1, T, N]` or `[B, T, N]` tensor as `[B][T][N]`.
pub fn to_host<B: Backend>(t: burn::tensor::Tensor<B, 3>) -> Vec<Vec<Vec<f32>>> {
    let [b, s, n] = t.dims();
    let v = t
        .cast(FloatDType::F32)
        .into_data()
        .into_vec::<f32>()
        .expect("f32");
    (0..b)
        .map(|i| {
            (0..s)
                .map(|j| v[(i * s + j) * n..(i * s + j + 1) * n].to_vec())
                .collect()
        })
        .collect()
}

/// Maximum deviations from `transformers` for one fixture on one backend.
#[derive(Debug, Clone, Default)]
pub struct Parity {
    pub logits: f64,
    pub logprobs: f64,
    pub batch_logprobs: f64,
    pub hidden: f64,
    pub embeddings: f64,
    pub greedy_equal: bool,
    pub greedy_ours: Vec<Vec<u32>>,
}

/// Runs every reference check of fixture `name` on backend `B` in `dtype`.
pub fn parity<B: Backend>(
    name: &str,
    device: &B::Device,
    precision: impl Into<Precision>,
) -> Parity {
    let dir = fixtures_dir().join(name);
    let r = reference(name);
    let model = LanguageModel::<B>::load(&dir, precision, device).expect("model loads");
    let mut out = Parity::default();
    for (i, prompt) in r.prompts.iter().enumerate() {
        let t = prompt.len();
        let positions: Vec<i64> = (0..t as i64).collect();
        let valid = vec![true; t];
        let mut cache = model.new_cache(1, t);
        let mut trace = Vec::new();
        let hidden = model
            .forward_traced(
                &Step {
                    ids: prompt,
                    positions: &positions,
                    valid: &valid,
                    batch: 1,
                    seq: t,
                },
                &mut cache,
                Some(&mut trace),
            )
            .expect("forward");
        if i == 0 {
            // transformers' hidden_states: embeddings, layers 0..L-2, then norm(layer L-1).
            let layers = r.hidden_states.len() - 1;
            for (l, expected) in r.hidden_states.iter().take(layers).enumerate() {
                let ours = &to_host(trace[l].clone())[0];
                out.hidden = out.hidden.max(max_abs_diff(ours, expected));
            }
            let ours = &to_host(hidden.clone())[0];
            out.hidden = out.hidden.max(max_abs_diff(ours, &r.hidden_states[layers]));
        }
        let emb: Vec<f32> = {
            let h = &to_host(hidden.clone())[0];
            (0..h[0].len())
                .map(|k| h.iter().map(|row| row[k] as f64).sum::<f64>() as f32 / t as f32)
                .collect()
        };
        out.embeddings = out
            .embeddings
            .max(max_abs_diff(&[emb], &[r.embeddings[i].clone()]));
        let logits = &to_host(model.logits(hidden))[0];
        out.logits = out.logits.max(max_abs_diff(logits, &r.logits[i]));
        out.logprobs = out.logprobs.max(max_abs_diff64(
            &log_softmax(logits),
            &log_softmax(&r.logits[i]),
        ));
    }
    // The left-padded batch, as transformers ran it.
    let batch = c2s_core::engine::batch::PaddedBatch::left_pad(&r.prompts, 0);
    let mut cache = model.new_cache(batch.batch, batch.seq);
    let hidden = model
        .forward(
            &Step {
                ids: &batch.ids,
                positions: &batch.positions,
                valid: &batch.valid,
                batch: batch.batch,
                seq: batch.seq,
            },
            &mut cache,
        )
        .expect("batched forward");
    let all = to_host(model.logits(hidden));
    for (b, expected) in r.batch_logits.iter().enumerate() {
        let ours = &all[b][batch.padding(b)..];
        out.batch_logprobs = out
            .batch_logprobs
            .max(max_abs_diff64(&log_softmax(ours), &log_softmax(expected)));
    }
    // Greedy generation, one prompt at a time, with the fixture's EOS ids.
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json")).expect("tokenizer");
    let eos = eos_ids(&dir);
    let options = GenerateOptions {
        max_new_tokens: 16,
        ..Default::default()
    };
    out.greedy_equal = true;
    for (i, prompt) in r.prompts.iter().enumerate() {
        let (gens, _) = generate(
            &model,
            &tokenizer,
            std::slice::from_ref(prompt),
            &options,
            &eos,
            0,
            &mut |_| {},
            None,
        )
        .expect("generate");
        out.greedy_equal &= gens[0].token_ids == r.greedy[i];
        out.greedy_ours.push(gens[0].token_ids.clone());
    }
    out
}

/// EOS ids from a fixture's `generation_config.json`.
pub fn eos_ids(dir: &std::path::Path) -> Vec<u32> {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("generation_config.json")).expect("generation config"),
    )
    .expect("json");
    match &v["eos_token_id"] {
        Value::Array(a) => a.iter().map(|x| x.as_u64().unwrap() as u32).collect(),
        x => vec![x.as_u64().unwrap() as u32],
    }
}

/// Asserts the f32 tolerances of the issue (log-probs within 1e-4, greedy identical).
pub fn assert_f32_parity(name: &str, backend: &str, p: &Parity) {
    println!(
        "{backend:>14} {name:<20} max|Δ| logits {:.2e} logprobs {:.2e} batched {:.2e} hidden {:.2e} \
         embeddings {:.2e} greedy {}",
        p.logits,
        p.logprobs,
        p.batch_logprobs,
        p.hidden,
        p.embeddings,
        if p.greedy_equal {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    assert!(
        p.logprobs <= 1e-4,
        "{name}: log-prob max |Δ| {}",
        p.logprobs
    );
    assert!(
        p.batch_logprobs <= 1e-4,
        "{name}: batched log-prob max |Δ| {}",
        p.batch_logprobs
    );
    assert!(
        p.hidden <= 1e-4,
        "{name}: hidden-state max |Δ| {}",
        p.hidden
    );
    assert!(
        p.embeddings <= 1e-4,
        "{name}: embedding max |Δ| {}",
        p.embeddings
    );
    assert!(
        p.greedy_equal,
        "{name}: greedy differs: ours {:?}",
        p.greedy_ours
    );
}

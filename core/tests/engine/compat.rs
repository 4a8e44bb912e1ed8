//! Cell embeddings through `tasks::embed::embed_cells`: `compat` pooling against the
//! `cell2sentence` package's own `embed_cells` (`compat_embeddings.json`, written by
//! `tools/models/make_compat_fixture.py`), and masked pooling the same batched and alone.

use crate::common::{cpu_engine, fixtures_dir};
use c2s_core::engine::Engine;
use c2s_core::tasks::embed::{EmbedPooling, embed_cells};
use serde_json::Value;
use std::sync::atomic::AtomicBool;

/// The package's embeddings of one fixture model.
struct PackageEmbeddings {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    pad_id: u32,
    rows: Vec<Vec<f32>>,
}

/// `compat_embeddings.json`: the package's `inference_batch_size` and its results per model.
fn package_fixture() -> (usize, Vec<(String, PackageEmbeddings)>) {
    let path = fixtures_dir().join("compat_embeddings.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture"))
        .expect("valid json");
    let batch = v["inference_batch_size"].as_u64().expect("batch size") as usize;
    let models = v["models"]
        .as_object()
        .expect("models")
        .iter()
        .map(|(name, m)| {
            let prompts = m["prompts"].as_array().expect("prompts");
            let numbers = |x: &Value| -> Vec<f64> {
                x.as_array()
                    .expect("array")
                    .iter()
                    .map(|n| n.as_f64().expect("number"))
                    .collect()
            };
            let fixture = PackageEmbeddings {
                texts: prompts
                    .iter()
                    .map(|p| p["text"].as_str().expect("text").to_string())
                    .collect(),
                ids: prompts
                    .iter()
                    .map(|p| numbers(&p["ids"]).iter().map(|&i| i as u32).collect())
                    .collect(),
                pad_id: m["pad_id"].as_u64().expect("pad id") as u32,
                rows: m["embeddings"]
                    .as_array()
                    .expect("embeddings")
                    .iter()
                    .map(|r| numbers(r).iter().map(|&x| x as f32).collect())
                    .collect(),
            };
            (name.clone(), fixture)
        })
        .collect();
    (batch, models)
}

/// `embed_cells` of `texts`, as rows.
fn embed(engine: &Engine, texts: &[String], batch: usize, pooling: EmbedPooling) -> Vec<Vec<f32>> {
    let out = embed_cells(
        engine,
        texts,
        batch,
        pooling,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .expect("embed_cells");
    assert_eq!(out.rows, texts.len());
    out.data
        .chunks_exact(out.width)
        .map(<[f32]>::to_vec)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "widths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn compat_embeddings_equal_the_packages_embed_cells() {
    let (batch, models) = package_fixture();
    assert!(models.len() >= 2, "fixture models");
    for (name, package) in &models {
        let engine = cpu_engine(name);
        assert_eq!(engine.info().pad_id, package.pad_id, "{name}: pad id");
        let ids = engine
            .encode_all(&package.texts.iter().map(String::as_str).collect::<Vec<_>>())
            .expect("encode");
        assert_eq!(ids, package.ids, "{name}: tokenization");
        let ours = embed(&engine, &package.texts, batch, EmbedPooling::Compat);
        for (i, (row, expected)) in ours.iter().zip(&package.rows).enumerate() {
            let d = max_abs_diff(row, expected);
            assert!(d <= 1e-4, "{name} cell {i}: compat vs package |Δ| {d}");
        }
    }
}

#[test]
fn compat_depends_on_the_batch_and_alone_is_the_masked_mean() {
    let (batch, models) = package_fixture();
    let (name, package) = &models[0];
    let engine = cpu_engine(name);
    let batched = embed(&engine, &package.texts, batch, EmbedPooling::Compat);
    let alone = embed(&engine, &package.texts, 1, EmbedPooling::Compat);
    let masked = embed(&engine, &package.texts, 1, EmbedPooling::Masked);
    let mut largest = 0.0f32;
    for i in 0..package.texts.len() {
        let d = max_abs_diff(&alone[i], &masked[i]);
        assert!(d <= 1e-5, "{name} cell {i}: compat alone vs masked |Δ| {d}");
        largest = largest.max(max_abs_diff(&batched[i], &alone[i]));
    }
    assert!(
        largest > 1e-2,
        "{name}: padding should move a batched compat embedding (largest |Δ| {largest})"
    );
}

#[test]
fn masked_embeddings_are_the_same_batched_and_alone() {
    let (_, models) = package_fixture();
    for (name, package) in &models {
        let engine = cpu_engine(name);
        let alone = embed(&engine, &package.texts, 1, EmbedPooling::Masked);
        for batch in [2, 3, package.texts.len()] {
            let batched = embed(&engine, &package.texts, batch, EmbedPooling::Masked);
            for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
                let d = max_abs_diff(a, b);
                assert!(
                    d <= 1e-4,
                    "{name} cell {i}, batch {batch}: masked batched vs alone |Δ| {d}"
                );
            }
        }
    }
}

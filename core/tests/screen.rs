//! A tiny virtual screen on the random GPT-NeoX fixture: a run cancelled part-way and resumed,
//! and the same screen as three shards merged, both equal one uninterrupted run.

use c2s_core::Progress;
use c2s_core::dataset::{ColumnData, Dataset, ObsColumn};
use c2s_core::engine::{DTypeRequest, DeviceRequest, Engine, LoadOptions};
use c2s_core::io::h5ad::{CreateOptions, Storage, ValueType, write_dataset_h5ad};
use c2s_core::matrix::CsrMatrix;
use c2s_core::screen::run::{RunOptions, load_contexts, run_screen};
use c2s_core::screen::spec::ScreenSpec;
use c2s_core::screen::store::{RESULTS, Store, merge};
use c2s_core::screen::units::Shard;
use std::path::{Path, PathBuf};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/gpt_neox_parallel")
}

/// Gene names that are single tokens of the fixture's tokenizer (as `perturb`'s test uses).
fn token_genes() -> Vec<String> {
    let tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("tokenizer.json")).unwrap())
            .unwrap();
    let mut names: Vec<String> = tokenizer["model"]["vocab"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            k.len() >= 3
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .cloned()
        .collect();
    names.sort();
    assert!(names.len() >= 13, "{names:?}");
    names
}

/// 24 cells in two groups, distinct counts per gene so sentences differ between cells.
fn write_h5ad(dir: &Path, genes: &[String]) -> PathBuf {
    let (n, g) = (24, genes.len());
    let mut m = CsrMatrix {
        n_rows: n,
        n_cols: g,
        indptr: vec![0],
        ..Default::default()
    };
    for i in 0..n {
        for j in 0..g {
            let v = ((i * 7 + j * 13) % 17) as f32;
            if v > 4.0 {
                m.indices.push(j as u32);
                m.data.push(v);
            }
        }
        m.indptr.push(m.data.len() as u64);
    }
    let ds = Dataset {
        obs_names: (0..n).map(|i| format!("cell{i}")).collect(),
        var_names: genes.to_vec(),
        obs: vec![ObsColumn {
            name: "group".into(),
            data: ColumnData::Text((0..n).map(|i| ["a", "b"][i % 2].to_string()).collect()),
        }],
        expression: m,
        ..Default::default()
    };
    let path = dir.join("cells.h5ad");
    write_dataset_h5ad(
        &path,
        &ds,
        &CreateOptions {
            x: Some((Storage::Csr, ValueType::F32)),
            ..Default::default()
        },
    )
    .unwrap();
    path
}

fn screen(dir: &Path) -> ScreenSpec {
    let genes = token_genes();
    write_h5ad(dir, &genes);
    std::fs::write(dir.join("lib.txt"), "DrugA\nDrugB\nDrugC\n").unwrap();
    std::fs::write(
        dir.join("sets.gmt"),
        format!(
            "UP\tx\t{}\nDOWN\tx\t{}\n",
            genes[..5].join("\t"),
            genes[8..13].join("\t")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("pert.json"),
        r#"{"model_input": ["{control_cell_sentence} + {perturbation_name}:"], "response": ["{perturbed_cell_sentence}."]}"#,
    )
    .unwrap();
    let text = format!(
        r#"
[[context]]
name = "A"
h5ad = "cells.h5ad"
filter = "group=a"
samples = 2
replicates = 2
preprocess = "none"

[[context]]
name = "B"
h5ad = "cells.h5ad"
filter = "group=b"
samples = 2
replicates = 2
seed = 3
preprocess = "none"

[library]
path = "lib.txt"

[model]
dir = "{}"
template_file = "pert.json"
top_k_genes = 3

[sampling]
temperature = 0.9
seed = 11
max_new_tokens = 24

[genesets]
gmt = "sets.gmt"
sets = ["UP", "DOWN"]
"#,
        model_dir().display()
    );
    ScreenSpec::parse(&text, dir).unwrap()
}

fn engine() -> Engine {
    Engine::load_dir(
        &model_dir(),
        &LoadOptions {
            device: DeviceRequest::Cpu,
            dtype: DTypeRequest::F32,
            fusion: false,
        },
    )
    .expect("the fixture loads")
}

#[test]
fn resumed_and_sharded_runs_equal_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = screen(tmp.path());
    let progress = Progress::new();
    let contexts = load_contexts(&spec, &progress).unwrap();
    let engine = engine();
    let run = |out: &Path, batch: usize, shard: Shard, progress: &Progress, stop_after: usize| {
        let store = Store::create_or_open(out, &spec).unwrap();
        let options = RunOptions::new(batch, shard);
        run_screen(
            &spec,
            &contexts,
            &store,
            &engine,
            options,
            progress,
            &mut |s| {
                if s.done_now >= stop_after {
                    progress.cancel();
                }
            },
        )
        .unwrap()
    };

    let whole = tmp.path().join("whole");
    let one = run(&whole, 4, Shard::ALL, &Progress::new(), usize::MAX);
    assert_eq!((one.shard_units, one.done_now), (3 * 2 * 2 * 2, 24));
    assert!(one.complete && !one.cancelled);
    assert!(whole.join(RESULTS).exists());
    let expected = Store::open(&whole).unwrap().results().unwrap();
    assert_eq!(expected.len(), 24);
    // The random model rarely writes a gene, but its raw output differs between units.
    let distinct: std::collections::HashSet<&str> =
        expected.iter().map(|r| r.generated.as_str()).collect();
    assert!(
        distinct.len() > 12,
        "outputs differ between units: {distinct:?}"
    );
    assert!(
        expected
            .iter()
            .all(|r| r.scores.iter().all(|x| x.is_finite()))
    );

    // Cancelled after the first batches, then resumed with another batch size.
    let resumed = tmp.path().join("resumed");
    let stopped = run(&resumed, 5, Shard::ALL, &Progress::new(), 5);
    assert!(stopped.cancelled && !stopped.complete, "{stopped:?}");
    assert_eq!(stopped.done_now, 5);
    assert!(!resumed.join(RESULTS).exists());
    let again = run(&resumed, 3, Shard::ALL, &Progress::new(), usize::MAX);
    assert_eq!((again.already_done, again.done_now), (5, 19));
    assert!(again.complete);
    assert_eq!(Store::open(&resumed).unwrap().results().unwrap(), expected);

    // Three shards, merged.
    let shards: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let dir = tmp.path().join(format!("shard{i}"));
            let s = run(
                &dir,
                2,
                Shard { index: i, count: 3 },
                &Progress::new(),
                usize::MAX,
            );
            assert_eq!(s.shard_units, 8);
            assert!(!s.complete);
            dir
        })
        .collect();
    let merged = merge(&shards, &tmp.path().join("merged")).unwrap();
    assert_eq!(merged.results().unwrap(), expected);
    assert_eq!(
        merged.controls().unwrap(),
        Store::open(&whole).unwrap().controls().unwrap()
    );
    assert!(merged.dir().join(RESULTS).exists());
}

#[test]
fn a_context_without_cells_or_a_foreign_gmt_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = screen(tmp.path());
    spec.contexts[1].filter = Some("group=zzz".into());
    let e = load_contexts(&spec, &Progress::new())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("context B: no cell has group = 'zzz'"), "{e}");
    let mut spec = screen(tmp.path());
    std::fs::write(tmp.path().join("mouse.gmt"), "UP\tx\tCd8a\tGzmb\n").unwrap();
    spec.genesets.gmt = tmp.path().join("mouse.gmt");
    spec.genesets.sets = vec!["UP".into()];
    let e = load_contexts(&spec, &Progress::new())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("context A") && e.contains("shares no gene with the data"),
        "{e}"
    );
}

#[test]
fn pseudobulk_samples_are_the_groups_mean_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = screen(tmp.path());
    spec.contexts.truncate(1);
    let context = &mut spec.contexts[0];
    context.filter = None;
    context.pseudobulk = Some("group".into());
    context.samples = 5;
    let loaded = load_contexts(&spec, &Progress::new()).unwrap();
    assert_eq!(loaded[0].sample_ids, ["a", "b"], "one sample per group");
    // The groups' means, computed here cell by cell, ranked as cell sentences are.
    let genes = token_genes();
    let (n, g) = (24, genes.len());
    let mut means = CsrMatrix {
        n_rows: 2,
        n_cols: g,
        indptr: vec![0],
        ..Default::default()
    };
    for group in 0..2 {
        for j in 0..g {
            let sum: f32 = (group..n)
                .step_by(2)
                .map(|i| ((i * 7 + j * 13) % 17) as f32)
                .filter(|&v| v > 4.0)
                .sum();
            if sum > 0.0 {
                means.indices.push(j as u32);
                means.data.push(sum / 12.0);
            }
        }
        means.indptr.push(means.data.len() as u64);
    }
    let expected = c2s_core::sentence::cell_sentences(
        &means,
        &["a".to_string(), "b".to_string()],
        &genes,
        &c2s_core::sentence::SentenceOptions {
            top_k: Some(spec.model.top_k_genes),
            ties: c2s_core::sentence::TieBreak::Seeded(0),
        },
        &Progress::new(),
    )
    .unwrap();
    assert_eq!(loaded[0].sentences, expected);

    spec.contexts[0].pseudobulk = Some("donor".into());
    let e = load_contexts(&spec, &Progress::new())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("obs has no column 'donor'"), "{e}");
}

#[test]
fn reconstructed_scoring_weighs_the_rebuilt_expression() {
    use c2s_core::screen::spec::ScoringMethod;
    let tmp = tempfile::tempdir().unwrap();
    let spec = screen(tmp.path());
    let texts: Vec<String> = {
        let genes = token_genes();
        vec![
            genes[..4].join(" "),
            genes[6..12].join(" "),
            format!("{} {}", genes[9], genes[2]),
        ]
    };
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let scores = |method, weight| {
        let mut s = spec.clone();
        s.genesets.method = method;
        s.genesets.weight = weight;
        let loaded = load_contexts(&s, &Progress::new()).unwrap();
        loaded[0].score_texts(&texts, &Progress::new()).unwrap()
    };
    let rank = scores(ScoringMethod::SentenceRank, None);
    // Weight 0 scores order alone; the short sentences' rebuilt values stay above 0, so the
    // order, and the ES, are the sentence's.
    let flat = scores(ScoringMethod::Reconstructed, Some(0.0));
    for (a, b) in rank.iter().zip(&flat) {
        assert_eq!(a.0, b.0);
        for (x, y) in a.1.iter().zip(&b.1) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }
    // The default weight (0.25) counts the values: the scores move.
    let weighted = scores(ScoringMethod::Reconstructed, None);
    assert!(
        rank.iter().zip(&weighted).any(|(a, b)| a
            .1
            .iter()
            .zip(&b.1)
            .any(|(x, y)| (x - y).abs() > 1e-6)),
        "{rank:?} vs {weighted:?}"
    );
    assert!(
        weighted
            .iter()
            .all(|(_, s)| s.iter().all(|v| v.is_finite()))
    );
    // Sentence-rank scoring takes no weight.
    let mut bad = spec.clone();
    bad.genesets.weight = Some(0.5);
    let text = bad.to_toml().unwrap();
    let e = ScreenSpec::parse(&text, tmp.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("sentence-rank scoring uses the order alone"),
        "{e}"
    );
}

/// A screen spec for a delta model: the fit (|Δ| = 100 / rank both ways) written
/// beside it, a delta template, through TOML and back.
fn delta_screen(dir: &Path) -> ScreenSpec {
    use c2s_core::screen::spec::OutputMode;
    use c2s_core::tasks::delta::{Changes, DeltaFitter, FIT_FILE};
    let mut spec = screen(dir);
    let mut fitter = DeltaFitter::default();
    fitter.add(&Changes {
        up: vec![(0, 100.0), (1, 50.0)],
        down: vec![(2, -100.0), (3, -50.0)],
    });
    let fit = dir.join(FIT_FILE);
    fitter.finish(5).unwrap().write(&fit).unwrap();
    std::fs::write(
        dir.join("delta.json"),
        r#"{"model_input": ["{control_cell_sentence} + {perturbation_name}:"], "response": ["{delta_sentence}"]}"#,
    )
    .unwrap();
    spec.model.output = OutputMode::Delta;
    spec.model.delta_fit = Some(fit);
    spec.model.template_file = Some(dir.join("delta.json"));
    spec.sampling.max_new_tokens = None;
    ScreenSpec::parse(&spec.to_toml().unwrap(), dir).unwrap()
}

#[test]
fn delta_output_adds_the_predicted_changes_to_each_sample_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = delta_screen(tmp.path());
    let genes = token_genes();
    let loaded = load_contexts(&spec, &Progress::new()).unwrap();
    let c = &loaded[0];
    assert_eq!(c.delta_genes(), Some(5));
    // The samples scored from their own, unchanged profiles: their own sentences.
    let own = c.score_samples(&Progress::new()).unwrap();
    let sentences: Vec<String> = own.iter().map(|o| o.0.clone()).collect();
    assert_eq!(sentences, c.sentences);

    // Raising the UP set's genes (by 100, 50, 33, 25, 20 by rank; the data's values stay
    // below 17) and lowering the DOWN set's (to 0) puts the raised genes first, in rank order
    // (the sentences keep 3 genes), and moves both scores.
    let text = format!(
        "Up: {}. Down: {}.",
        genes[..5].join(" "),
        genes[8..13].join(" ")
    );
    let out = c
        .score_outputs(&[text.as_str(), "no genes here"], &[1, 1], &Progress::new())
        .unwrap();
    assert_eq!(out[0].0, genes[..3].join(" "));
    assert!(
        out[0].1[0] > own[1].1[0],
        "UP rises: {:?} vs {:?}",
        out[0].1,
        own[1].1
    );
    assert!(
        out[0].1[1] < own[1].1[1],
        "DOWN falls: {:?} vs {:?}",
        out[0].1,
        own[1].1
    );
    // An output naming no gene predicts no change.
    assert_eq!(out[1], own[1]);
}

#[test]
fn a_delta_screen_runs_on_the_engine_with_its_own_prompts() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = delta_screen(tmp.path());
    let contexts = load_contexts(&spec, &Progress::new()).unwrap();
    let out = tmp.path().join("delta");
    let store = Store::create_or_open(&out, &spec).unwrap();
    let summary = run_screen(
        &spec,
        &contexts,
        &store,
        &engine(),
        RunOptions::new(8, Shard::ALL),
        &Progress::new(),
        &mut |_| {},
    )
    .unwrap();
    assert!(summary.complete, "{summary:?}");
    let results = store.results().unwrap();
    assert_eq!(results.len(), 24);
    assert!(
        results
            .iter()
            .all(|r| r.scores.iter().all(|x| x.is_finite()))
    );
    // The controls are the samples' own profiles, scored the same way.
    let controls = store.controls().unwrap().unwrap();
    let own = contexts[0].score_samples(&Progress::new()).unwrap();
    assert_eq!(controls[0].scores, own[0].1);

    // A delta screen without its fit is refused, naming the file to give.
    let mut bad = spec.clone();
    bad.model.delta_fit = None;
    let e = ScreenSpec::parse(&bad.to_toml().unwrap(), tmp.path())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("needs delta_fit"), "{e}");

    // A refitted model is another screen: its folder refuses the new fit's units.
    use c2s_core::tasks::delta::{Changes, DeltaFitter};
    let mut fitter = DeltaFitter::default();
    fitter.add(&Changes {
        up: vec![(0, 1.0)],
        down: vec![(1, -1.0)],
    });
    fitter
        .finish(5)
        .unwrap()
        .write(spec.model.delta_fit.as_ref().unwrap())
        .unwrap();
    let refit = ScreenSpec::parse(&spec.to_toml().unwrap(), tmp.path()).unwrap();
    assert_ne!(refit.hash(), spec.hash());
    assert!(Store::create_or_open(&out, &refit).is_err());
}

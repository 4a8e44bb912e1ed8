//! The task commands end to end: `prompt` against the `cell2sentence` package's formatter on
//! the shared PBMC file, and `annotate` on the committed tiny checkpoints.

use crate::common::*;
use c2s_core::io::h5ad::{ReadOptions, Storage, ValueType, read_h5ad};
use std::path::{Path, PathBuf};

fn prompt_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/prompts")
        .join(name)
}

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn assert_same_prompts(out: &Path, fixture: &str) {
    let df = read_parquet(out);
    let expected = jsonl(&prompt_fixture(fixture));
    let (ids, inputs, responses) = (
        strings(&df, "cell_id"),
        strings(&df, "model_input"),
        strings(&df, "response"),
    );
    assert_eq!(ids.len(), expected.len(), "{fixture}: number of prompts");
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(ids[i], e["cell_id"].as_str().unwrap(), "{fixture} row {i}");
        assert_eq!(
            inputs[i],
            e["model_input"].as_str().unwrap(),
            "{fixture} row {i}"
        );
        assert_eq!(
            responses[i],
            e["response"].as_str().unwrap(),
            "{fixture} row {i}"
        );
    }
}

#[test]
fn prompts_equal_the_packages_formatter_with_reference_choice() {
    let Some(data) = shared_data() else {
        c2s_core::test_support::skip("../shared/data is absent");
        return;
    };
    let input = data.join("expression/pbmc68k_reduced.h5ad");
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--matrix",
        "raw",
        "--preprocess",
        "none",
        "--ties",
        "reference",
        "--template-choice",
        "reference",
        "--label-column",
        "bulk_labels",
    ];
    let prompt = |task: &str, template: &str, extra: &[&str], out: &Path| {
        let template = prompt_fixture(template);
        let mut args = vec![
            "prompt",
            input.to_str().unwrap(),
            "--task",
            task,
            "--template-file",
            template.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(common);
        args.extend(extra);
        assert_ok(&cli(&args));
    };
    let single = dir.path().join("single.parquet");
    prompt(
        "cell_type_prediction",
        "cell_type_prediction_15.json",
        &["--top-k-genes", "100"],
        &single,
    );
    assert_same_prompts(&single, "pbmc_cell_type_prediction.jsonl");
    let multi = dir.path().join("multi.parquet");
    prompt(
        "tissue_prediction",
        "tissue_prediction_14.json",
        &["--top-k-genes", "20", "--cells-per-prompt", "5"],
        &multi,
    );
    assert_same_prompts(&multi, "pbmc_tissue_prediction.jsonl");
}

/// Asserts that a run succeeded, showing its stderr when it did not.
fn assert_ok(run: &std::process::Output) {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Read options that load `X`.
fn with_matrix() -> ReadOptions {
    ReadOptions {
        load_matrix: true,
        ..Default::default()
    }
}

/// A tiny dataset (genes Gene0.., obs `cell_type`) and a template short enough for the tiny
/// checkpoints' 64-token context.
fn tiny_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let ds = annotated(tied_counts(12, 8, 3), genes(8));
    let h5ad = write(dir, "tiny.h5ad", &ds, Storage::Csr, ValueType::F32);
    let template = dir.join("short.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{cell_sentence}:"], "response": ["{cell_type}."]}"#,
    )
    .unwrap();
    (h5ad, template)
}

fn annotate(h5ad: &Path, template: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let m = model("gpt_neox_parallel");
    let mut args = vec![
        "annotate",
        h5ad.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--device",
        "cpu",
        "--template-file",
        template.to_str().unwrap(),
        "--top-k-genes",
        "3",
        "--preprocess",
        "none",
        "--batch",
        "5",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    cli(&args)
}

#[test]
fn annotate_ranks_candidates_into_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, template) = tiny_inputs(dir.path());
    let out = dir.path().join("ranked.parquet");
    let run = annotate(
        &h5ad,
        &template,
        &out,
        &["--labels-from", "cell_type", "--compare", "cell_type"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("accuracy against cell_type: "), "{stderr}");
    let df = read_parquet(&out);
    assert_eq!(df.height(), 12);
    let labels = strings(&df, "label");
    let candidates = ["T cell", "B cell", "NK cell"];
    let score = df.column("score").unwrap().f64().unwrap();
    let lls: Vec<Vec<f64>> = candidates
        .iter()
        .map(|c| {
            df.column(&format!("ll:{c}"))
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect()
        })
        .collect();
    for (row, label) in labels.iter().enumerate() {
        let ll: Vec<f64> = lls.iter().map(|v| v[row]).collect();
        assert!(ll.iter().all(|v| v.is_finite() && *v < 0.0), "{ll:?}");
        let best = (0..3).max_by(|&a, &b| ll[a].total_cmp(&ll[b])).unwrap();
        assert_eq!(label, candidates[best], "row {row}");
        let total: f64 = ll.iter().map(|v| (v - ll[best]).exp()).sum();
        assert!((score.get(row).unwrap() - 1.0 / total).abs() < 1e-9);
    }
}

#[test]
fn annotate_generates_labels_into_an_h5ad_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, template) = tiny_inputs(dir.path());
    let before = std::fs::read(&h5ad).unwrap();
    let out = dir.path().join("annotated.h5ad");
    let run = annotate(
        &h5ad,
        &template,
        &out,
        &["--max-new-tokens", "4", "--cells", "cell_type=B cell"],
    );
    assert_ok(&run);
    assert_eq!(
        std::fs::read(&h5ad).unwrap(),
        before,
        "the input is untouched"
    );
    let ds = read_h5ad(&out, &ReadOptions::default(), &c2s_core::Progress::new()).unwrap();
    let labels = ds.obs_column("c2s_cell_type").expect("label column");
    let scores = ds.obs_column("c2s_cell_type_score").expect("score column");
    let kind = ds.obs_column("cell_type").unwrap();
    for i in 0..ds.n_cells() {
        let chosen = kind.data.text_at(i).as_deref() == Some("B cell");
        let score = scores.data.text_at(i);
        assert_eq!(
            score.is_some(),
            chosen,
            "cell {i}: only chosen cells get a score"
        );
        if let Some(s) = score {
            let s: f64 = s.parse().unwrap();
            assert!(s > 0.0 && s <= 1.0, "cell {i}: probability {s}");
        } else {
            assert_eq!(labels.data.text_at(i).unwrap_or_default(), "");
        }
    }
}

#[test]
fn annotate_and_prompt_refuse_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, template) = tiny_inputs(dir.path());
    let out = dir.path().join("x.parquet");
    let run = annotate(
        &h5ad,
        &template,
        &out,
        &["--labels", "B cell,T cell,B cell"],
    );
    assert_clean_error(&run, "'B cell' is listed twice");
    let run = annotate(&h5ad, &template, &out, &["--cells", "cell_type=Neuron"]);
    assert_clean_error(&run, "no cell has cell_type = 'Neuron'");
    let run = annotate(&h5ad, &template, &out, &["--labels-from", "tissue"]);
    assert_clean_error(&run, "obs has no column 'tissue'");
    let run = cli(&[
        "annotate",
        h5ad.to_str().unwrap(),
        "--model",
        dir.path().to_str().unwrap(),
        "--preprocess",
        "none",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&run, "config.json");
    // The default template with 200 genes does not fit a 64-token context.
    let long = cli(&[
        "annotate",
        h5ad.to_str().unwrap(),
        "--model",
        model("gpt_neox_parallel").to_str().unwrap(),
        "--device",
        "cpu",
        "--preprocess",
        "none",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&long, "context");
    let bad_template = dir.path().join("bad.json");
    std::fs::write(
        &bad_template,
        r#"{"model_input": ["{tissue}"], "response": ["{cell_type}."]}"#,
    )
    .unwrap();
    let run = cli(&[
        "prompt",
        h5ad.to_str().unwrap(),
        "--task",
        "cell_type_prediction",
        "--template-file",
        bad_template.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&run, "{tissue}");
    assert!(!out.exists(), "nothing is written on an error");
}

#[test]
fn embed_cells_writes_each_cells_prompt_embedding_to_obsm() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, template) = tiny_inputs(dir.path());
    let m = model("gpt_neox_parallel");
    let flags = [
        "--template-file",
        template.to_str().unwrap(),
        "--top-k-genes",
        "3",
        "--preprocess",
        "none",
    ];
    let out = dir.path().join("embedded.h5ad");
    let mut args = vec![
        "embed-cells",
        h5ad.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--device",
        "cpu",
        "--batch",
        "5",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(flags);
    let run = cli(&args);
    assert_ok(&run);
    let ds = read_h5ad(&out, &ReadOptions::default(), &c2s_core::Progress::new()).unwrap();
    let emb = ds.embedding("X_c2s").expect("obsm X_c2s");
    assert_eq!(emb.n_cols, 64);
    assert_eq!(emb.data.len(), 12 * 64);
    // Row 7 equals `embed` of that cell's prompt alone (batched with others or not).
    let prompts = dir.path().join("prompts.parquet");
    let mut args = vec![
        "prompt",
        h5ad.to_str().unwrap(),
        "--task",
        "cell_type_prediction",
        "--out",
        prompts.to_str().unwrap(),
    ];
    args.extend(flags);
    let run = cli(&args);
    assert_ok(&run);
    let text = strings(&read_parquet(&prompts), "model_input")[7].clone();
    let run = cli(&[
        "embed",
        "--model",
        m.to_str().unwrap(),
        "--device",
        "cpu",
        "--text",
        &text,
        "--json",
    ]);
    assert_ok(&run);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let alone: Vec<f64> = v["embedding"]
        .as_array()
        .expect("embedding array")
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let row = &emb.data[7 * 64..8 * 64];
    let d = row
        .iter()
        .zip(&alone)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    assert!(d < 1e-4, "batched vs alone |Δ| {d}");
}

#[test]
fn embed_cells_pooling_compat_writes_the_packages_batch_mean() {
    use c2s_core::engine::{DTypeRequest, DeviceRequest, Engine, LoadOptions};
    use c2s_core::tasks::embed::{EmbedPooling, embed_cells};
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, template) = tiny_inputs(dir.path());
    let m = model("gpt_neox_parallel");
    // Every expressed gene: sentences of different lengths, so the batches are padded.
    let flags = [
        "--template-file",
        template.to_str().unwrap(),
        "--top-k-genes",
        "8",
        "--preprocess",
        "none",
    ];
    let run_with = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "embed-cells",
            h5ad.to_str().unwrap(),
            "--model",
            m.to_str().unwrap(),
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(flags);
        args.extend(extra);
        cli(&args)
    };
    let out = dir.path().join("compat.h5ad");
    assert_ok(&run_with(&["--pooling", "compat"], &out));
    let ds = read_h5ad(&out, &ReadOptions::default(), &c2s_core::Progress::new()).unwrap();
    let written = ds.embedding("X_c2s").expect("obsm X_c2s").data.clone();
    assert_eq!(written.len(), 12 * 64);
    // The same prompts through the library: compat in groups of 8 (the package's default).
    let prompts = dir.path().join("prompts.parquet");
    let mut args = vec![
        "prompt",
        h5ad.to_str().unwrap(),
        "--task",
        "cell_type_prediction",
        "--out",
        prompts.to_str().unwrap(),
    ];
    args.extend(flags);
    assert_ok(&cli(&args));
    let texts = strings(&read_parquet(&prompts), "model_input");
    let engine = Engine::load_dir(
        &m,
        &LoadOptions {
            device: DeviceRequest::Cpu,
            dtype: DTypeRequest::F32,
            fusion: false,
        },
    )
    .unwrap();
    let library = |pooling: EmbedPooling| {
        embed_cells(
            &engine,
            &texts,
            8,
            pooling,
            &Default::default(),
            &mut |_| {},
        )
        .unwrap()
        .data
    };
    let largest = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let d = largest(&written, &library(EmbedPooling::Compat));
    assert!(d < 1e-4, "CLI vs library compat |Δ| {d}");
    let d = largest(&written, &library(EmbedPooling::Masked));
    assert!(
        d > 1e-3,
        "compat should differ from the masked mean (|Δ| {d})"
    );
    let bad = run_with(&["--pooling", "mean"], &dir.path().join("bad.h5ad"));
    assert_clean_error(&bad, "masked or compat");
}

#[test]
fn ask_streams_the_models_answer_about_sampled_cells() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, _) = tiny_inputs(dir.path());
    let template = dir.path().join("question.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{multi_cell_sentences}Q: {question}\nA:"], "response": ["{answer}"]}"#,
    )
    .unwrap();
    let m = model("gpt_neox_parallel");
    let run = cli(&[
        "ask",
        h5ad.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--device",
        "cpu",
        "--question",
        "Which?",
        "--n-cells",
        "2",
        "--sample-seed",
        "3",
        "--top-k-genes",
        "2",
        "--max-new-tokens",
        "8",
        "--template-file",
        template.to_str().unwrap(),
        "--preprocess",
        "none",
        "--cells",
        "cell_type=T cell",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("cells (2 of 4, seed 3): cell"), "{stderr}");
    let prompt = stderr
        .split_once("prompt:\n")
        .and_then(|(_, rest)| rest.split_once("\n---"))
        .map(|(p, _)| p.to_string())
        .expect("the prompt is shown");
    assert!(
        prompt.starts_with("Cell 1:\n") && prompt.ends_with("Q: Which?\nA:"),
        "{prompt:?}"
    );
    // The streamed answer is the model's greedy continuation of that exact prompt.
    let reference = cli(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--device",
        "cpu",
        "--prompt",
        &prompt,
        "--max-new-tokens",
        "8",
        "--json",
    ]);
    assert!(reference.status.success());
    let v: serde_json::Value = serde_json::from_slice(&reference.stdout).unwrap();
    let answer = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        answer.strip_suffix('\n').unwrap(),
        v["text"].as_str().unwrap()
    );
    let empty = cli(&[
        "ask",
        h5ad.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--question",
        " ",
    ]);
    assert_clean_error(&empty, "--question is empty");
}

/// A 30-cell `.h5ad` whose genes are named like whole tokens of the tiny checkpoint's
/// tokenizer, so that some of the random model's words are genes; and those names.
fn token_named_h5ad(dir: &Path) -> (PathBuf, Vec<String>) {
    let tokenizer: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model("gpt_neox_parallel").join("tokenizer.json")).unwrap(),
    )
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
    names.truncate(40);
    assert!(names.len() >= 10, "{names:?}");
    let ds = annotated(tied_counts(30, names.len(), 5), names.clone());
    (
        write(dir, "like.h5ad", &ds, Storage::Csr, ValueType::F32),
        names,
    )
}

#[test]
fn generated_cells_take_their_expression_from_their_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let (like, names) = token_named_h5ad(dir.path());
    let template = dir.path().join("gen.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{cell_type}:"], "response": ["{cell_sentence}."]}"#,
    )
    .unwrap();
    let run = |out: &Path| {
        cli(&[
            "generate-cells",
            "--model",
            model("gpt_neox_parallel").to_str().unwrap(),
            "--device",
            "cpu",
            "--cell-type",
            "T cell",
            "--cell-type",
            "B cell",
            "--n",
            "3",
            "--like",
            like.to_str().unwrap(),
            "--preprocess",
            "none",
            "--template-file",
            template.to_str().unwrap(),
            "--max-new-tokens",
            "16",
            "--sampling-seed",
            "4",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (a, b) = (dir.path().join("a.h5ad"), dir.path().join("b.h5ad"));
    for out in [&a, &b] {
        let r = run(out);
        assert_ok(&r);
    }
    let read = |p: &Path| read_h5ad(p, &with_matrix(), &c2s_core::Progress::new()).unwrap();
    let (ga, gb) = (read(&a), read(&b));
    assert_eq!(ga.n_cells(), 6);
    assert_eq!(ga.var_names, names);
    let text = |d: &c2s_core::dataset::Dataset, col: &str| -> Vec<String> {
        (0..d.n_cells())
            .map(|i| {
                d.obs_column(col)
                    .unwrap()
                    .data
                    .text_at(i)
                    .unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(
        text(&ga, "c2s_generated_text"),
        text(&gb, "c2s_generated_text"),
        "seeded"
    );
    assert_eq!(
        &text(&ga, "cell_type")[..4],
        ["T cell", "T cell", "T cell", "B cell"]
    );
    let sentences = text(&ga, "c2s_cell_sentence");
    for (i, s) in sentences.iter().enumerate() {
        let (cols, vals) = ga.expression.row(i);
        let words: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(
            cols.len(),
            words.len(),
            "cell {i}: one value per gene of {s:?}"
        );
        // Earlier genes are more expressed.
        let by_position: Vec<f32> = words
            .iter()
            .map(|w| {
                let j = names.iter().position(|n| n == w).unwrap() as u32;
                vals[cols.iter().position(|&c| c == j).unwrap()]
            })
            .collect();
        let sorted = {
            let mut v = by_position.clone();
            v.sort_by(|x, y| y.total_cmp(x));
            v
        };
        assert_eq!(by_position, sorted, "cell {i}");
    }
}

#[test]
fn perturbation_changes_are_predicted_means_against_the_controls() {
    let dir = tempfile::tempdir().unwrap();
    let (input, names) = token_named_h5ad(dir.path());
    let template = dir.path().join("pert.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{control_cell_sentence} + {perturbation_name}:"], "response": ["{perturbed_cell_sentence}."]}"#,
    )
    .unwrap();
    let (out, table) = (dir.path().join("pred.h5ad"), dir.path().join("lfc.parquet"));
    let run = cli(&[
        "perturb",
        input.to_str().unwrap(),
        "--model",
        model("gpt_neox_parallel").to_str().unwrap(),
        "--device",
        "cpu",
        "--perturbation",
        "DrugA",
        "--perturbation",
        "DrugB",
        "--n-controls",
        "4",
        "--top-k-genes",
        "3",
        "--max-new-tokens",
        "12",
        "--template-file",
        template.to_str().unwrap(),
        "--preprocess",
        "none",
        "--table",
        table.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("DrugA (4 cells vs 4 controls):"),
        "{stderr}"
    );
    let read = |p: &Path| read_h5ad(p, &with_matrix(), &c2s_core::Progress::new()).unwrap();
    let (pred, real) = (read(&out), read(&input));
    assert_eq!(pred.n_cells(), 8);
    let col = |d: &c2s_core::dataset::Dataset, c: &str, i: usize| {
        d.obs_column(c).unwrap().data.text_at(i).unwrap()
    };
    let df = read_parquet(&table);
    assert_eq!(df.height(), 2 * names.len());
    let genes = strings(&df, "gene");
    let perts = strings(&df, "perturbation");
    let num = |c: &str| -> Vec<f64> {
        df.column(c)
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    };
    let (lfc, pm, cm) = (
        num("log_fold_change"),
        num("predicted_mean"),
        num("control_mean"),
    );
    let mean = |d: &c2s_core::dataset::Dataset, rows: &[usize], g: usize| -> f64 {
        rows.iter()
            .map(|&r| {
                let (cols, vals) = d.expression.row(r);
                cols.iter()
                    .position(|&c| c as usize == g)
                    .map_or(0.0, |k| f64::from(vals[k]))
            })
            .sum::<f64>()
            / rows.len() as f64
    };
    for k in 0..df.height() {
        let g = names.iter().position(|n| *n == genes[k]).unwrap();
        let rows: Vec<usize> = (0..8)
            .filter(|&i| col(&pred, "perturbation", i) == perts[k])
            .collect();
        let controls: Vec<usize> = rows
            .iter()
            .map(|&i| {
                let id = col(&pred, "control_cell", i);
                real.obs_names.iter().position(|n| *n == id).unwrap()
            })
            .collect();
        assert!((pm[k] - mean(&pred, &rows, g)).abs() < 1e-6, "row {k}");
        assert!((cm[k] - mean(&real, &controls, g)).abs() < 1e-6, "row {k}");
        assert!((lfc[k] - (pm[k] - cm[k])).abs() < 1e-9);
    }
}

//! `c2s-studio finetune` end to end on the tiny checkpoints: the CLI reproduces the peft +
//! transformers run of `tests/fixtures/lora/gpt_neox` step by step, trains from an `.h5ad`'s
//! labelled cells, and refuses bad input (one class, missing labels, examples beyond the
//! context, an adapter for another base model) with one clear message each.

use crate::common::*;
use c2s_core::dataset::{ColumnData, ObsColumn};
use c2s_core::io::h5ad::{Storage, ValueType};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

fn lora(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/lora")
        .join(path)
}

fn log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn finetune_cli_reproduces_the_peft_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let m = model("gpt_neox_parallel");
    let examples = lora("gpt_neox/examples.jsonl");
    let init = lora("gpt_neox/init");
    let run = cli(&[
        "finetune",
        "--examples",
        examples.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--init-adapter",
        init.to_str().unwrap(),
        "--steps",
        "20",
        "--lr",
        "0.01",
        "--warmup",
        "0.1",
        "--schedule",
        "linear",
        "--batch",
        "2",
        "--grad-accum",
        "2",
        "--max-grad-norm",
        "0.5",
        "--weight-decay",
        "0.1",
        "--no-shuffle",
        "--val-fraction",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        out.join("adapter_config.json").exists() && out.join("adapter_model.safetensors").exists()
    );
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(lora("gpt_neox/reference.json")).unwrap())
            .unwrap();
    let records = log(&out);
    assert_eq!(records.len(), 20);
    for (i, (r, want)) in records
        .iter()
        .zip(reference["losses"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(r["step"].as_u64(), Some(i as u64 + 1));
        assert!(r["tokens"].as_u64().unwrap() > 0 && r["lr"].is_number());
        let (got, want) = (r["loss"].as_f64().unwrap(), want.as_f64().unwrap());
        assert!(
            (got - want).abs() / want < 1e-4,
            "step {}: {got} vs {want}",
            i + 1
        );
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["r"], 4);
    assert_eq!(config["peft_type"], "LORA");
}

/// The tiny dataset of the task tests plus a label column with missing values.
fn tiny_h5ad(dir: &Path) -> (PathBuf, PathBuf) {
    let mut ds = annotated(tied_counts(12, 8, 3), genes(8));
    ds.obs.push(ObsColumn {
        name: "partial".into(),
        data: ColumnData::Categorical {
            codes: (0..12)
                .map(|i| if i % 4 == 0 { -1 } else { i % 2 })
                .collect(),
            categories: vec!["a".into(), "b".into()],
        },
    });
    let h5ad = write(dir, "tiny.h5ad", &ds, Storage::Csr, ValueType::F32);
    let template = dir.join("short.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{cell_sentence}:"], "response": ["{cell_type}."]}"#,
    )
    .unwrap();
    (h5ad, template)
}

fn finetune_h5ad(h5ad: &Path, template: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let m = model("gpt_neox_parallel");
    let mut args = vec![
        "finetune",
        h5ad.to_str().unwrap(),
        "--task",
        "cell-type",
        "--model",
        m.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--template-file",
        template.to_str().unwrap(),
        "--top-k-genes",
        "3",
        "--preprocess",
        "none",
        "--steps",
        "3",
        "--batch",
        "4",
        "--val-fraction",
        "0.25",
        "--eval-every",
        "1",
    ];
    args.extend(extra);
    cli(&args)
}

#[test]
fn finetune_trains_on_labelled_cells_and_refuses_bad_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (h5ad, template) = tiny_h5ad(dir.path());
    let out = dir.path().join("cells");
    let run = finetune_h5ad(&h5ad, &template, &out, &["--label-column", "cell_type"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = log(&out);
    assert_eq!(records.len(), 3);
    assert!(
        records.iter().all(|r| r["val_loss"].is_number()),
        "{records:?}"
    );
    let split: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    assert_eq!(split["validation"].as_array().unwrap().len(), 3);

    let one = finetune_h5ad(
        &h5ad,
        &template,
        &dir.path().join("one"),
        &["--label-column", "cell_type", "--cells", "cell_type=T cell"],
    );
    assert_clean_error(&one, "single class");
    let missing = finetune_h5ad(
        &h5ad,
        &template,
        &dir.path().join("missing"),
        &["--label-column", "partial"],
    );
    assert_clean_error(&missing, "3 of 12 cells have no label");
}

#[test]
fn finetune_refuses_long_examples_and_foreign_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let m = model("gpt_neox_parallel");
    let long = dir.path().join("long.jsonl");
    let prompt = vec!["CD3E"; 200].join(" ");
    std::fs::write(
        &long,
        format!("{{\"model_input\": \"{prompt}\", \"response\": \"T cell.\"}}\n"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let base = [
        "finetune",
        "--model",
        m.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--steps",
        "1",
    ];
    let mut args = base.to_vec();
    args.extend(["--examples", long.to_str().unwrap()]);
    assert_clean_error(&cli(&args), "context of 64 tokens");

    let examples = lora("gpt_neox/examples.jsonl");
    let gemma_adapter = lora("gemma2/init");
    let mut args = base.to_vec();
    args.extend([
        "--examples",
        examples.to_str().unwrap(),
        "--init-adapter",
        gemma_adapter.to_str().unwrap(),
    ]);
    assert_clean_error(&cli(&args), "another base model");
}

/// `score --adapter` (the adapter applied at load), and `merge` + `score` on the merged
/// checkpoint, both equal peft's log-probabilities with the adapter, for GPT-NeoX (fused QKV and
/// MLP adapters) and Gemma-2 (q, v, down).
#[test]
fn adapter_and_merged_checkpoint_score_as_peft() {
    for (arch, model_name) in [("gpt_neox", "gpt_neox_parallel"), ("gemma2", "gemma2")] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("merged");
        let m = model(model_name);
        let adapter = lora(&format!("{arch}/final"));
        let run = cli(&[
            "merge",
            "--model",
            m.to_str().unwrap(),
            "--adapter",
            adapter.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let reference: Value = serde_json::from_str(
            &std::fs::read_to_string(lora(&format!("{arch}/reference.json"))).unwrap(),
        )
        .unwrap();
        let score = &reference["score"];
        let text = score["text"].as_str().unwrap();
        let common = [
            "score", "--device", "cpu", "--dtype", "f32", "--json", "--text", text,
        ];
        let merged = [&common[..], &["--model", out.to_str().unwrap()]].concat();
        let applied = [
            &common[..],
            &[
                "--model",
                m.to_str().unwrap(),
                "--adapter",
                adapter.to_str().unwrap(),
            ],
        ]
        .concat();
        for (how, args) in [("merged", merged), ("--adapter", applied)] {
            let run = cli(&args);
            assert!(
                run.status.success(),
                "{how}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            let ours: Value =
                serde_json::from_str(String::from_utf8_lossy(&run.stdout).lines().last().unwrap())
                    .unwrap();
            assert_eq!(ours["token_ids"], score["token_ids"], "{arch} {how}");
            let (a, b) = (
                ours["logprobs"].as_array().unwrap(),
                score["logprobs"].as_array().unwrap(),
            );
            assert_eq!(a.len(), b.len());
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() < 1e-4,
                    "{arch} {how} token {i}: {x} vs peft {y}"
                );
            }
        }
    }
    // An adapter for another architecture is refused with a clear message, at load too.
    let run = cli(&[
        "score",
        "--model",
        model("gpt_neox_parallel").to_str().unwrap(),
        "--adapter",
        lora("gemma2/final").to_str().unwrap(),
        "--text",
        "CD3D",
    ]);
    assert_clean_error(&run, "another base model");
    // An adapter for another architecture is refused with a clear message.
    let dir = tempfile::tempdir().unwrap();
    let m = model("gpt_neox_parallel");
    let adapter = lora("gemma2/final");
    let out = dir.path().join("x");
    let run = cli(&[
        "merge",
        "--model",
        m.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&run, "another base model");
}

/// `--task perturbation`: each perturbed cell of the tiny dataset is paired with a control of
/// its cell type and the run trains on those pairs; a control value no cell has, and a context
/// without controls, are refused before anything is written.
#[test]
fn finetune_trains_on_perturbation_pairs_and_refuses_missing_controls() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = annotated(tied_counts(12, 8, 3), genes(8));
    // Cells 0..6 are controls (two per cell type), 6..12 perturbed by X or Y.
    ds.obs.push(ObsColumn {
        name: "drug".into(),
        data: ColumnData::Categorical {
            codes: (0..12).map(|i| if i < 6 { 0 } else { 1 + i % 2 }).collect(),
            categories: vec!["DMSO".into(), "X".into(), "Y".into()],
        },
    });
    // Only T cells (every third cell) have controls here.
    ds.obs.push(ObsColumn {
        name: "drug_t_only".into(),
        data: ColumnData::Text(
            (0..12)
                .map(|i| if i % 3 == 0 { "DMSO" } else { "X" }.to_string())
                .collect(),
        ),
    });
    let h5ad = write(dir.path(), "pert.h5ad", &ds, Storage::Csr, ValueType::F32);
    let template = dir.path().join("pert.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{perturbation_name} {control_cell_sentence}:"], "response": ["{perturbed_cell_sentence}."]}"#,
    )
    .unwrap();
    let m = model("gpt_neox_parallel");
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "finetune",
            h5ad.to_str().unwrap(),
            "--task",
            "perturbation",
            "--model",
            m.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
            "--template-file",
            template.to_str().unwrap(),
            "--top-k-genes",
            "3",
            "--preprocess",
            "none",
            "--steps",
            "2",
            "--batch",
            "2",
            "--val-fraction",
            "0.2",
        ];
        args.extend(extra);
        cli(&args)
    };
    let out = dir.path().join("pairs");
    let pairs = ["--perturbation-column", "drug", "--control-value", "DMSO"];
    let done = run(
        &out,
        &[&pairs[..], &["--context-column", "cell_type"]].concat(),
    );
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(
        stderr.contains("6 examples"),
        "one per perturbed cell: {stderr}"
    );
    assert_eq!(log(&out).len(), 2);
    assert!(out.join("adapter_model.safetensors").is_file());

    let wrong = dir.path().join("wrong");
    let pbs = ["--perturbation-column", "drug", "--control-value", "PBS"];
    assert_clean_error(&run(&wrong, &pbs), "no control cells");
    assert!(!wrong.exists(), "nothing is written on bad input");
    let lonely = dir.path().join("lonely");
    let t_only = [
        "--perturbation-column",
        "drug_t_only",
        "--control-value",
        "DMSO",
    ];
    let args = [&t_only[..], &["--context-column", "cell_type"]].concat();
    assert_clean_error(&run(&lonely, &args), "no control cell (first: `B cell`)");
    assert!(!lonely.exists());
    let missing = run(&dir.path().join("none"), &["--perturbation-column", "drug"]);
    assert_clean_error(&missing, "--control-value");
}

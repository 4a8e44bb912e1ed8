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

/// `finetune --task cell-type` on `h5ad` (3 steps of 4 cells, a quarter held out and evaluated
/// every step) into `out`.
fn finetune_h5ad(h5ad: &Path, template: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let settings = [
        "--steps",
        "3",
        "--batch",
        "4",
        "--val-fraction",
        "0.25",
        "--eval-every",
        "1",
    ];
    finetune_cells(
        h5ad,
        template,
        "cell-type",
        out,
        &[&settings[..], extra].concat(),
    )
}

/// `finetune` of `task` on `h5ad` with the tiny GPT-NeoX on the CPU (3 genes a cell, the matrix
/// as stored) into `out`, then `extra`.
fn finetune_cells(
    h5ad: &Path,
    template: &Path,
    task: &str,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let m = model("gpt_neox_parallel");
    let mut args = vec![
        "finetune",
        h5ad.to_str().unwrap(),
        "--task",
        task,
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
        records
            .iter()
            .all(|r| r["val_loss"].is_number() && r["val_accuracy"].is_number()),
        "{records:?}"
    );
    // The majority-class rate comes with the first evaluation only.
    assert!(records[0]["majority_rate"].is_number(), "{records:?}");
    assert!(records[1].get("majority_rate").is_none(), "{records:?}");
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

/// A random GPT-NeoX (2 layers, width 64, tied embeddings) with the real GPT-NeoX tokenizer:
/// small enough to train in a test, big enough to learn cell types from gene names.
fn tiny_neox_with_tokenizer(dir: &Path, tokenizer: &Path) -> PathBuf {
    let (vocab, hidden, inter, layers) = (50304usize, 64usize, 256usize, 2usize);
    let model = dir.join("tiny-neox");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(tokenizer, model.join("tokenizer.json")).unwrap();
    let config = serde_json::json!({
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "attention_bias": true,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "hidden_act": "gelu",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "layer_norm_eps": 1e-5,
        "max_position_embeddings": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": layers,
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
        "tie_word_embeddings": true,
        "use_parallel_residual": true,
        "vocab_size": vocab,
        "dtype": "float32"
    });
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    let mut rng = Lcg(17);
    let mut normal = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                let (u, v) = (rng.next_f64().max(1e-12), rng.next_f64());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() * 0.02) as f32
            })
            .collect()
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![(
        "gpt_neox.embed_in.weight".into(),
        vec![vocab, hidden],
        normal(vocab * hidden),
    )];
    let norm = |name: String, tensors: &mut Vec<(String, Vec<usize>, Vec<f32>)>| {
        tensors.push((format!("{name}.weight"), vec![hidden], vec![1.0; hidden]));
        tensors.push((format!("{name}.bias"), vec![hidden], vec![0.0; hidden]));
    };
    for l in 0..layers {
        let p = format!("gpt_neox.layers.{l}");
        norm(format!("{p}.input_layernorm"), &mut tensors);
        norm(format!("{p}.post_attention_layernorm"), &mut tensors);
        for (name, out, inp) in [
            ("attention.query_key_value", 3 * hidden, hidden),
            ("attention.dense", hidden, hidden),
            ("mlp.dense_h_to_4h", inter, hidden),
            ("mlp.dense_4h_to_h", hidden, inter),
        ] {
            tensors.push((
                format!("{p}.{name}.weight"),
                vec![out, inp],
                normal(out * inp),
            ));
            tensors.push((format!("{p}.{name}.bias"), vec![out], vec![0.0; out]));
        }
    }
    norm("gpt_neox.final_layer_norm".into(), &mut tensors);
    let map = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), (s.clone(), v.as_slice())))
        .collect();
    c2s_core::train::adapter::write_f32_safetensors(&model.join("model.safetensors"), &map)
        .unwrap();
    model
}

/// The cells of three well-separated types of the shared PBMC file (`.raw`), written as a
/// small `.h5ad` with their type in obs `cell_type`.
fn pbmc_three_types(pbmc: &Path, dir: &Path) -> PathBuf {
    use c2s_core::dataset::{Dataset, MatrixChoice};
    use c2s_core::io::h5ad::{ReadOptions, read_h5ad};
    let ds = read_h5ad(
        pbmc,
        &ReadOptions {
            matrix: Some(MatrixChoice::Raw),
            gene_column: None,
            load_matrix: true,
        },
        &c2s_core::Progress::new(),
    )
    .unwrap();
    let labels = &ds.obs_column("bulk_labels").unwrap().data;
    let keep = ["CD14+ Monocyte", "CD19+ B", "CD56+ NK"];
    let rows: Vec<usize> = (0..ds.n_cells())
        .filter(|&i| {
            labels
                .text_at(i)
                .is_some_and(|l| keep.contains(&l.as_str()))
        })
        .collect();
    let subset = Dataset {
        obs_names: rows.iter().map(|&i| ds.obs_names[i].clone()).collect(),
        var_names: ds.var_names.clone(),
        obs: vec![ObsColumn {
            name: "cell_type".into(),
            data: ColumnData::Text(rows.iter().map(|&i| labels.text_at(i).unwrap()).collect()),
        }],
        expression: ds.expression.select_rows(&rows),
        ..Default::default()
    };
    write(dir, "pbmc3.h5ad", &subset, Storage::Csr, ValueType::F32)
}

/// It learns: a tiny random model fully fine-tuned from the CLI (50 steps) on three cell types
/// of the shared PBMC file ranks the held-out cells' types far better than always answering the
/// majority class (the test prints both; LoRA on a random base learns far more slowly, so the
/// test trains every weight).
#[test]
fn finetune_learns_pbmc_cell_types_above_the_majority_rate() {
    let Some(data) = shared_data() else {
        c2s_core::test_support::skip("../shared/data is absent");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let h5ad = pbmc_three_types(&data.join("expression/pbmc68k_reduced.h5ad"), dir.path());
    let model = tiny_neox_with_tokenizer(
        dir.path(),
        &data.join("tokenizers/gpt-neox-20b/tokenizer.json"),
    );
    let template = dir.path().join("short.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{cell_sentence}. Cell type:"], "response": ["{cell_type}."]}"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    let run = cli(&[
        "finetune",
        h5ad.to_str().unwrap(),
        "--task",
        "cell-type",
        "--label-column",
        "cell_type",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--template-file",
        template.to_str().unwrap(),
        "--preprocess",
        "none",
        "--top-k-genes",
        "8",
        "--full",
        "--lr",
        "0.003",
        "--schedule",
        "constant",
        "--steps",
        "50",
        "--batch",
        "8",
        "--val-fraction",
        "0.2",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let records = log(&out);
    let last = records.last().unwrap();
    let accuracy = last["val_accuracy"].as_f64().unwrap();
    let majority = last["majority_rate"].as_f64().unwrap();
    eprintln!(
        "held-out candidate-ranking accuracy {accuracy:.3}, majority-class rate {majority:.3}"
    );
    assert!(
        accuracy >= majority + 0.2,
        "held-out candidate-ranking accuracy {accuracy:.3} is not well above the majority-class \
         rate {majority:.3}"
    );
    assert!(stderr.contains("candidate-ranking accuracy"), "{stderr}");
}

/// `finetune` on the GPT-NeoX examples with constant lr, checkpointing every step.
fn finetune_examples(out: &Path, steps: &str, extra: &[&str]) -> std::process::Command {
    let m = model("gpt_neox_parallel");
    let examples = lora("gpt_neox/examples.jsonl");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_c2s-studio"));
    cmd.args([
        "finetune",
        "--examples",
        examples.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--steps",
        steps,
        "--save-every",
        "1",
        "--schedule",
        "constant",
        "--lr",
        "0.01",
        "--batch",
        "2",
        "--val-fraction",
        "0",
        "--target-modules",
        "query_key_value,dense_h_to_4h",
    ]);
    cmd.args(extra);
    cmd
}

/// A full disk while checkpointing, simulated with a file-size limit (`RLIMIT_FSIZE`, SIGXFSZ
/// ignored so that writes fail with EFBIG) that the log and the split fit under but the
/// checkpoint's weights do not: a clear message, no partial checkpoint left for resume to pick
/// up, and `--resume` after the limit is lifted ends as an uninterrupted run.
#[test]
fn finetune_with_a_full_disk_keeps_only_complete_checkpoints() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let run = finetune_examples(&whole, "4", &[]).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let out = dir.path().join("run");
    let run = finetune_examples(&out, "2", &[]).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut full = finetune_examples(&out, "4", &["--resume"]);
    // SAFETY: between fork and exec the closure calls only the async-signal-safe `signal` and
    // `setrlimit`, and allocates nothing.
    unsafe {
        full.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let failed = full.output().unwrap();
    assert_clean_error(&failed, "the checkpoint could not be written");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("step-000003") && stderr.contains("--resume"),
        "{stderr}"
    );
    // Only complete checkpoints remain: no partial folder, nothing past step 2.
    let names: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("step-")) && names.contains(&"step-000002".into()),
        "{names:?}"
    );
    assert!(!names.contains(&"step-000003".into()), "{names:?}");

    let resumed = finetune_examples(&out, "4", &["--resume"])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(log(&out), log(&whole));
    let weights = |d: &Path| std::fs::read(d.join("adapter_model.safetensors")).unwrap();
    assert!(weights(&out) == weights(&whole), "resumed adapter differs");
}

/// 12 cells of 8 genes: cells 0..6 are controls (`drug` = DMSO, two per cell type), 6..12
/// perturbed by X or Y; in `drug_t_only` only T cells (every third cell) have controls.
fn perturbation_cells(dir: &Path) -> PathBuf {
    let mut ds = annotated(tied_counts(12, 8, 3), genes(8));
    ds.obs.push(ObsColumn {
        name: "drug".into(),
        data: ColumnData::Categorical {
            codes: (0..12).map(|i| if i < 6 { 0 } else { 1 + i % 2 }).collect(),
            categories: vec!["DMSO".into(), "X".into(), "Y".into()],
        },
    });
    ds.obs.push(ObsColumn {
        name: "drug_t_only".into(),
        data: ColumnData::Text(
            (0..12)
                .map(|i| if i % 3 == 0 { "DMSO" } else { "X" }.to_string())
                .collect(),
        ),
    });
    write(dir, "pert.h5ad", &ds, Storage::Csr, ValueType::F32)
}

/// `finetune` of `task` on `h5ad` (2 steps of 2 pairs, 3 genes, the tiny GPT-NeoX) into `out`.
fn finetune_pairs(
    h5ad: &Path,
    template: &Path,
    task: &str,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let settings = ["--steps", "2", "--batch", "2"];
    finetune_cells(h5ad, template, task, out, &[&settings[..], extra].concat())
}

/// `--task perturbation`: each perturbed cell of the tiny dataset is paired with a control of
/// its cell type and the run trains on those pairs; a control value no cell has, and a context
/// without controls, are refused before anything is written.
#[test]
fn finetune_trains_on_perturbation_pairs_and_refuses_missing_controls() {
    let dir = tempfile::tempdir().unwrap();
    let h5ad = perturbation_cells(dir.path());
    let template = dir.path().join("pert.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{perturbation_name} {control_cell_sentence}:"], "response": ["{perturbed_cell_sentence}."]}"#,
    )
    .unwrap();
    let run = |out: &Path, extra: &[&str]| {
        finetune_pairs(
            &h5ad,
            &template,
            "perturbation",
            out,
            &[&["--val-fraction", "0.2"][..], extra].concat(),
        )
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

/// `--task perturbation-delta`: the pairs answer with delta sentences, and the run writes the
/// rank → change fit that a delta screen reads its predictions with.
#[test]
fn finetune_on_delta_sentences_writes_the_fit_a_screen_needs() {
    use c2s_core::tasks::delta::{DeltaFit, FIT_FILE};
    let dir = tempfile::tempdir().unwrap();
    let h5ad = perturbation_cells(dir.path());
    let template = dir.path().join("delta.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{perturbation_name} {control_cell_sentence}:"], "response": ["{delta_sentence}"]}"#,
    )
    .unwrap();
    let out = dir.path().join("delta");
    let done = finetune_pairs(
        &h5ad,
        &template,
        "perturbation-delta",
        &out,
        &[
            "--perturbation-column",
            "drug",
            "--control-value",
            "DMSO",
            "--delta-genes",
            "2",
        ],
    );
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(stderr.contains("6 examples"), "{stderr}");
    assert!(out.join("adapter_model.safetensors").is_file());
    let fit = DeltaFit::read(&out.join(FIT_FILE)).unwrap();
    assert_eq!((fit.pairs, fit.genes_per_list), (6, 2));
    assert!(fit.up.intercept.is_finite() && fit.down.slope.is_finite());
}

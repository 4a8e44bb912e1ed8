//! LoRA training, proven against the references: the trainable models' logits equal the
//! inference engine's and `transformers`' on every fixture checkpoint; 20 optimizer steps
//! (init adapter with non-zero B, AdamW with weight decay, clipping, accumulation, linear warmup)
//! reproduce peft + transformers step by step (`tools/lora/make_fixtures.py`); resume continues
//! exactly; adapters round-trip through peft's format; bad input gets a clear message.

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor};
use c2s_core::Progress;
use c2s_core::engine::{DTypeRequest, DeviceRequest, Engine, LoadOptions};
use c2s_core::kernels::WeightFormat;
use c2s_core::model::{LanguageModel, Step};
use c2s_core::train::TrainError;
use c2s_core::train::adapter::{Adapter, write_adapter};
use c2s_core::train::data::{Example, LossMode, Split, read_examples};
use c2s_core::train::model::{BaseModel, TrainableModel};
use c2s_core::train::optim::AdamW;
use c2s_core::train::params::LoraParams;
use c2s_core::train::rank::Ranking;
use c2s_core::train::schedule::Schedule;
use c2s_core::train::trainer::{Length, StepRecord, TrainSettings, prepare, train};
use serde_json::Value;
use std::path::{Path, PathBuf};

type Train = Autodiff<Flex>;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
}

fn lora_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lora")
}

fn host(t: Tensor<Train, 3>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The base model's logits from the trainable model (no adapter; frozen layers packed for the
/// CPU kernels, and as Burn tensors), the inference engine and the `transformers` reference, for
/// every reference prompt.
fn check_logits(name: &str) {
    check_logits_loaded(name, true);
    check_logits_loaded(name, false);
}

fn check_logits_loaded(name: &str, packed: bool) {
    let dir = models().join(name);
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let base = BaseModel::open(&dir).unwrap();
    let lora = c2s_core::train::config::LoraConfig::for_model(&base.config);
    let trainable = TrainableModel::<Train>::load(
        &base,
        &lora,
        packed.then_some(WeightFormat::F32),
        &FlexDevice,
    )
    .unwrap();
    let engine = LanguageModel::<Flex>::load(&dir, DType::F32, &FlexDevice).unwrap();
    for (i, prompt) in reference["prompts"].as_array().unwrap().iter().enumerate() {
        let ids: Vec<u32> = prompt["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let n = ids.len();
        let positions: Vec<i64> = (0..n as i64).collect();
        let valid = vec![true; n];
        let step = Step {
            ids: &ids,
            positions: &positions,
            valid: &valid,
            batch: 1,
            seq: n,
        };
        let ours = host(trainable.forward(&step, None));
        let mut cache = engine.new_cache(1, n);
        let hidden = engine.forward(&step, &mut cache).unwrap();
        let theirs: Vec<f32> = engine.logits(hidden).into_data().iter::<f32>().collect();
        let hf: Vec<f32> = reference["logits"][i]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        let (d_engine, d_hf) = (max_abs_diff(&ours, &theirs), max_abs_diff(&ours, &hf));
        assert!(
            d_engine < 1e-4,
            "{name} (packed {packed}) prompt {i}: max |Δ| vs engine {d_engine}"
        );
        assert!(
            d_hf < 1e-4,
            "{name} (packed {packed}) prompt {i}: max |Δ| vs transformers {d_hf}"
        );
    }
}

#[test]
fn trainable_gpt_neox_logits_equal_engine_and_transformers() {
    check_logits("gpt_neox_parallel");
    check_logits("gpt_neox_sequential");
}

#[test]
fn trainable_gemma_logits_equal_engine_and_transformers() {
    check_logits("gemma2");
    check_logits("gemma3_text");
    check_logits("gemma3_nested");
}

/// The settings of a parity fixture (`reference.json` → `settings`).
fn fixture_settings(arch: &str) -> (PathBuf, TrainSettings, Value) {
    let dir = lora_fixtures().join(arch);
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let s = &reference["settings"];
    let model_dir = models().join(reference["model"].as_str().unwrap());
    let base = BaseModel::open(&model_dir).unwrap();
    let mut settings = TrainSettings::new(&base.config);
    settings.init_adapter = Some(dir.join("init"));
    settings.length = Length::Steps(s["steps"].as_u64().unwrap() as usize);
    settings.lr = s["lr"].as_f64().unwrap();
    settings.schedule = s["schedule"].as_str().unwrap().parse::<Schedule>().unwrap();
    settings.warmup = s["warmup"].as_f64().unwrap();
    settings.batch = s["batch"].as_u64().unwrap() as usize;
    settings.grad_accum = s["grad_accum"].as_u64().unwrap() as usize;
    settings.max_grad_norm = Some(s["max_grad_norm"].as_f64().unwrap());
    settings.adamw = AdamW {
        weight_decay: s["weight_decay"].as_f64().unwrap(),
        ..AdamW::default()
    };
    settings.lora.dropout = 0.0;
    settings.shuffle = false;
    settings.val_fraction = 0.0;
    (model_dir, settings, reference)
}

fn read_factors(dir: &Path, base: &BaseModel, modules_of: &TrainableModel<Train>) -> LoraParams {
    Adapter::open(dir, &base.config)
        .unwrap()
        .params(modules_of.modules())
        .unwrap()
}

/// Trains as the fixture did and compares every step's loss and the final adapter.
fn check_training_parity(arch: &str) {
    let (model_dir, settings, reference) = fixture_settings(arch);
    let examples = read_examples(&lora_fixtures().join(arch).join("examples.jsonl")).unwrap();
    let base = BaseModel::open(&model_dir).unwrap();
    // Tokenization: the package's scheme gives the ids transformers trained on.
    let prepared = prepare(&base, &examples, LossMode::Response).unwrap();
    for (i, seq) in prepared.sequences.iter().enumerate() {
        let want: Vec<u32> = reference["token_ids"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(seq.ids, want, "{arch}: token ids of example {i}");
        assert_eq!(
            seq.counted_from as u64,
            reference["prompt_lengths"][i].as_u64().unwrap()
        );
    }
    let out = tempfile::tempdir().unwrap();
    let mut records: Vec<StepRecord> = Vec::new();
    train::<Train>(
        &model_dir,
        &examples,
        out.path(),
        &settings,
        &FlexDevice,
        &Progress::new(),
        &mut |r| records.push(r.clone()),
    )
    .unwrap();
    let losses = reference["losses"].as_array().unwrap();
    let lrs = reference["lrs"].as_array().unwrap();
    let norms = reference["grad_norms"].as_array().unwrap();
    assert_eq!(records.len(), losses.len());
    for (r, ((want, lr), norm)) in records.iter().zip(losses.iter().zip(lrs).zip(norms)) {
        let want = want.as_f64().unwrap();
        let rel = (r.loss - want).abs() / want.abs();
        assert!(
            rel < 1e-4,
            "{arch} step {}: loss {} vs peft {want} (rel {rel:e})",
            r.step,
            r.loss
        );
        assert!(
            (r.lr - lr.as_f64().unwrap()).abs() < 1e-12,
            "{arch} step {} lr",
            r.step
        );
        let norm = norm.as_f64().unwrap();
        assert!(
            (r.grad_norm - norm).abs() / norm < 1e-3,
            "{arch} step {} grad norm {} vs {norm}",
            r.step,
            r.grad_norm
        );
    }
    let model = TrainableModel::<Train>::load(
        &base,
        &Adapter::open(&lora_fixtures().join(arch).join("init"), &base.config)
            .unwrap()
            .config,
        Some(WeightFormat::F32),
        &FlexDevice,
    )
    .unwrap();
    let ours = read_factors(out.path(), &base, &model);
    let peft = read_factors(&lora_fixtures().join(arch).join("final"), &base, &model);
    let init = read_factors(&lora_fixtures().join(arch).join("init"), &base, &model);
    for ((a, b), i) in ours.factors.iter().zip(&peft.factors).zip(&init.factors) {
        let da = max_abs_diff(&a.a, &b.a);
        let db = max_abs_diff(&a.b, &b.b);
        assert!(
            da < 1e-4 && db < 1e-4,
            "{arch} {}: |ΔA| {da}, |ΔB| {db}",
            a.spec.path
        );
        // The run moved the factors, so the comparison is not of two copies of the start.
        assert!(
            max_abs_diff(&a.b, &i.b) > 1e-3,
            "{arch} {}: B did not train",
            a.spec.path
        );
    }
}

#[test]
fn gpt_neox_lora_training_matches_peft_step_by_step() {
    check_training_parity("gpt_neox");
}

#[test]
fn gemma2_lora_training_matches_peft_step_by_step() {
    check_training_parity("gemma2");
}

#[test]
fn gemma3_lora_training_matches_peft_step_by_step() {
    check_training_parity("gemma3_text");
}

/// A small shuffled run with dropout, validation and checkpoints.
fn resume_settings(base: &BaseModel) -> TrainSettings {
    let mut s = TrainSettings::new(&base.config);
    s.length = Length::Steps(20);
    s.lr = 5e-3;
    s.schedule = Schedule::Cosine;
    s.warmup = 0.1;
    s.batch = 2;
    s.grad_accum = 2;
    s.lora.dropout = 0.1;
    s.lora.targets = vec!["query_key_value".into(), "dense".into()];
    s.adamw.weight_decay = 0.01;
    s.val_fraction = 0.25;
    s.eval_every = 5;
    s.save_every = 5;
    s.keep = 1;
    s.seed = 3;
    s.rank_candidates = true;
    s
}

#[test]
fn resume_continues_exactly_as_an_uninterrupted_run() {
    let model_dir = models().join("gpt_neox_parallel");
    let base = BaseModel::open(&model_dir).unwrap();
    let examples = read_examples(&lora_fixtures().join("gpt_neox/examples.jsonl")).unwrap();
    let settings = resume_settings(&base);
    let full = tempfile::tempdir().unwrap();
    let mut full_log = Vec::new();
    train::<Train>(
        &model_dir,
        &examples,
        full.path(),
        &settings,
        &FlexDevice,
        &Progress::new(),
        &mut |r| full_log.push(r.clone()),
    )
    .unwrap();

    let part = tempfile::tempdir().unwrap();
    let progress = Progress::new();
    let stopper = progress.clone();
    let err = train::<Train>(
        &model_dir,
        &examples,
        part.path(),
        &settings,
        &FlexDevice,
        &progress,
        &mut |r| {
            if r.step == 10 {
                stopper.cancel();
            }
        },
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Cancelled), "{err}");
    let resumed = TrainSettings {
        resume: true,
        ..settings.clone()
    };
    let mut tail = Vec::new();
    train::<Train>(
        &model_dir,
        &examples,
        part.path(),
        &resumed,
        &FlexDevice,
        &Progress::new(),
        &mut |r| tail.push(r.clone()),
    )
    .unwrap();
    assert_eq!(tail.first().map(|r| r.step), Some(11));
    assert_eq!(tail, full_log[10..].to_vec());
    let read = |dir: &Path| std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    assert_eq!(
        read(full.path()),
        read(part.path()),
        "final adapters differ"
    );
    let log = |dir: &Path| std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    assert_eq!(log(full.path()), log(part.path()));
    assert_eq!(log(full.path()).lines().count(), 20);
    assert!(log(full.path()).contains("val_loss"));
    // Every evaluation ranks the candidates; the majority rate comes once, at the first.
    let evaluated: Vec<&StepRecord> = full_log.iter().filter(|r| r.val_loss.is_some()).collect();
    assert_eq!(evaluated.len(), 4);
    assert!(evaluated.iter().all(|r| r.val_accuracy.is_some()));
    let majority: Vec<usize> = full_log
        .iter()
        .filter(|r| r.majority_rate.is_some())
        .map(|r| r.step)
        .collect();
    assert_eq!(majority, vec![5]);
    // Keep 1 plus the best: never more than two checkpoints, the last one always present.
    let ckpts = c2s_core::train::checkpoint::list(full.path()).unwrap();
    assert!((1..=2).contains(&ckpts.len()), "{ckpts:?}");
    assert_eq!(ckpts.last().unwrap().0, 20);
    assert!(
        !std::fs::read_dir(full.path().join("checkpoints"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".partial"))
    );
    // Dropout was on and the split held out examples.
    let split: Value =
        serde_json::from_str(&std::fs::read_to_string(full.path().join("split.json")).unwrap())
            .unwrap();
    assert_eq!(split["validation"].as_array().unwrap().len(), 3);
}

#[test]
fn adapters_round_trip_and_foreign_adapters_are_refused() {
    let neox = BaseModel::open(&models().join("gpt_neox_parallel")).unwrap();
    let gemma = BaseModel::open(&models().join("gemma2")).unwrap();
    let mut lora = c2s_core::train::config::LoraConfig::for_model(&neox.config);
    lora.targets = vec!["query_key_value".into(), "dense_4h_to_h".into()];
    let model =
        TrainableModel::<Train>::load(&neox, &lora, Some(WeightFormat::F32), &FlexDevice).unwrap();
    let mut params = LoraParams::init(model.modules(), 4, 9);
    lora.rank = 4;
    for f in &mut params.factors {
        f.b.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32 * 1e-3);
    }
    let dir = tempfile::tempdir().unwrap();
    write_adapter(dir.path(), &params, &lora, "gpt_neox_parallel").unwrap();
    let back = Adapter::open(dir.path(), &neox.config).unwrap();
    assert_eq!(back.config, lora);
    assert_eq!(back.params(model.modules()).unwrap(), params);

    // A GPT-NeoX adapter on a Gemma base: named architecture mismatch.
    let e = Adapter::open(dir.path(), &gemma.config)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("another base model") && e.contains("query_key_value"),
        "{e}"
    );
    // A Gemma adapter (peft-written) on GPT-NeoX.
    let e = Adapter::open(&lora_fixtures().join("gemma2/init"), &neox.config)
        .unwrap_err()
        .to_string();
    assert!(e.contains("another base model"), "{e}");
    // Same architecture, other shapes.
    let mut wide = params.clone();
    for f in &mut wide.factors {
        f.spec.in_features *= 2;
        f.a = vec![0.0; 4 * f.spec.in_features];
    }
    write_adapter(dir.path(), &wide, &lora, "other").unwrap();
    let e = Adapter::open(dir.path(), &neox.config)
        .unwrap()
        .params(model.modules())
        .unwrap_err()
        .to_string();
    assert!(e.contains("another base model") && e.contains("128"), "{e}");
}

#[test]
fn examples_beyond_the_context_are_a_clear_error() {
    let model_dir = models().join("gpt_neox_parallel");
    let base = BaseModel::open(&model_dir).unwrap();
    let long = Example {
        model_input: vec!["CD3E"; 200].join(" "),
        response: "T cell.".into(),
    };
    let short = Example {
        model_input: "CD3E IL7R".into(),
        response: "T cell.".into(),
    };
    let e = prepare(&base, &[short.clone(), long], LossMode::Response)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("1 of 2 examples") && e.contains("context of 64"),
        "{e}"
    );
    // Whole-text loss keeps the prompt's own tokens, so a long prompt is cut, not refused.
    let cut = prepare(
        &base,
        &[Example {
            model_input: vec!["CD3E"; 200].join(" "),
            response: "T cell.".into(),
        }],
        LossMode::WholeText,
    )
    .unwrap();
    assert_eq!(cut.preview.cut, 1);
    assert_eq!(cut.sequences[0].ids.len(), 64);
    let bad = tempfile::tempdir().unwrap();
    let path = bad.path().join("x.jsonl");
    std::fs::write(&path, "{\"model_input\": \"a\"}\n").unwrap();
    let e = read_examples(&path).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("response"), "{e}");
}

/// The ranking's scores are the engine's summed continuation log-probabilities (an independent
/// implementation: prompt cache shared by the continuations), and its accuracy and majority
/// rate are what those scores and the labels give.
#[test]
fn candidate_ranking_scores_equal_the_engines_continuation_log_probs() {
    let model_dir = models().join("gpt_neox_parallel");
    let base = BaseModel::open(&model_dir).unwrap();
    let examples = read_examples(&lora_fixtures().join("gpt_neox/examples.jsonl")).unwrap();
    let prepared = prepare(&base, &examples, LossMode::Response).unwrap();
    let split = Split::new(examples.len(), 0.5, 1).unwrap();
    let ranking = Ranking::new(&prepared.tokenization(), &examples, &split).unwrap();
    let lora = c2s_core::train::config::LoraConfig::for_model(&base.config);
    let model =
        TrainableModel::<Flex>::load(&base, &lora, Some(WeightFormat::F32), &FlexDevice).unwrap();
    // 2 rows per forward pass: candidates of one prompt are split across padded batches.
    let scores = ranking.scores(&model, None, prepared.pad, 2);

    let engine = Engine::load_dir(
        &model_dir,
        &LoadOptions {
            device: DeviceRequest::Cpu,
            dtype: DTypeRequest::F32,
            fusion: false,
        },
    )
    .unwrap();
    let tokenizer = engine.tokenizer();
    let mut names: Vec<&str> = split
        .train
        .iter()
        .map(|&i| examples[i].response.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(ranking.candidates(), names.len());
    let candidates: Vec<Vec<u32>> = names
        .iter()
        .map(|n| {
            let mut ids = tokenizer.encode(n).unwrap();
            ids.push(0);
            ids
        })
        .collect();
    let prompts: Vec<Vec<u32>> = split
        .validation
        .iter()
        .map(|&i| tokenizer.encode(&examples[i].model_input).unwrap())
        .collect();
    let conts = vec![candidates; prompts.len()];
    let reference = engine.score_continuations(&prompts, &conts).unwrap();
    assert_eq!(scores.len(), reference.len());
    for (ours, theirs) in scores.iter().zip(&reference) {
        for (a, b) in ours.iter().zip(theirs) {
            assert!((a - b).abs() < 1e-4, "{ours:?} vs {theirs:?}");
        }
    }
    let right = split
        .validation
        .iter()
        .zip(&reference)
        .filter(|(i, row)| {
            let best = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                .unwrap();
            names[best] == examples[**i].response
        })
        .count();
    assert_eq!(
        ranking.accuracy(&scores),
        right as f64 / split.validation.len() as f64
    );
    let count = |r: &str| {
        split
            .train
            .iter()
            .filter(|&&i| examples[i].response == r)
            .count()
    };
    let top = *names
        .iter()
        .max_by(|a, b| count(a).cmp(&count(b)).then(b.cmp(a)))
        .unwrap();
    let majority = split
        .validation
        .iter()
        .filter(|&&i| examples[i].response == top)
        .count() as f64
        / split.validation.len() as f64;
    assert_eq!(ranking.majority_rate(), majority);
}

/// 8-bit frozen weights (`frozen_format: Q8`, the inference kernels' scheme: inputs quantised
/// too) train the same adapter approximately: every step's loss stays near the f32 run's over
/// the fixture's 20 steps and falls as much; a full run refuses them.
#[test]
fn lora_on_8_bit_frozen_weights_follows_the_f32_run() {
    let (model_dir, settings, _) = fixture_settings("gpt_neox");
    let examples = read_examples(&lora_fixtures().join("gpt_neox/examples.jsonl")).unwrap();
    let run = |frozen_format| {
        let out = tempfile::tempdir().unwrap();
        let mut losses = Vec::new();
        let settings = TrainSettings {
            frozen_format,
            ..settings.clone()
        };
        train::<Train>(
            &model_dir,
            &examples,
            out.path(),
            &settings,
            &FlexDevice,
            &Progress::new(),
            &mut |r| losses.push(r.loss),
        )
        .map(|_| losses)
    };
    let (exact, q8) = (
        run(WeightFormat::F32).unwrap(),
        run(WeightFormat::Q8).unwrap(),
    );
    assert_eq!(exact.len(), q8.len());
    let worst = exact
        .iter()
        .zip(&q8)
        .map(|(a, b)| (a - b).abs() / a.abs())
        .fold(0.0, f64::max);
    eprintln!("8-bit frozen weights: worst relative loss difference {worst:e}");
    assert!(worst < 0.02, "{exact:?} vs {q8:?}");
    assert!(worst > 0.0, "the 8-bit products are not the f32 ones");
    let fall = |l: &[f64]| l[0] - l[l.len() - 1];
    assert!((fall(&q8) - fall(&exact)).abs() < 0.1 * fall(&exact));
    let full = TrainSettings {
        full: true,
        init_adapter: None,
        frozen_format: WeightFormat::Q8,
        ..settings.clone()
    };
    let out = tempfile::tempdir().unwrap();
    let e = refusal(&model_dir, &examples, out.path(), &full);
    assert!(e.contains("8-bit frozen weights are for LoRA"), "{e}");
}

/// Full fine-tuning (every weight, torch's AdamW with weight decay, clipping, accumulation,
/// warmup) reproduces transformers + torch step by step (`tools/lora/make_fixtures.py`, `full/`);
/// the checkpoint it writes loads in the engine and scores as torch scores the trained model;
/// stopped and resumed, it ends with the same weights.
#[test]
fn full_fine_tuning_matches_torch_and_writes_a_loadable_checkpoint() {
    check_full_parity("gpt_neox");
}

/// [`full_fine_tuning_matches_torch_and_writes_a_loadable_checkpoint`] for Gemma-2 (tied head,
/// soft caps, sliding window) and Gemma-3 (q/k norms).
#[test]
fn full_fine_tuning_of_gemma_matches_torch() {
    check_full_parity("gemma2");
    check_full_parity("gemma3_text");
}

/// The message of a run `train` refuses.
fn refusal(model_dir: &Path, examples: &[Example], out: &Path, settings: &TrainSettings) -> String {
    train::<Train>(
        model_dir,
        examples,
        out,
        settings,
        &FlexDevice,
        &Progress::new(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string()
}

fn check_full_parity(arch: &str) {
    let fixture = format!("full/{arch}");
    let (model_dir, mut settings, reference) = fixture_settings(&fixture);
    settings.init_adapter = None;
    settings.full = true;
    let examples = read_examples(&lora_fixtures().join(&fixture).join("examples.jsonl")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut records: Vec<StepRecord> = Vec::new();
    train::<Train>(
        &model_dir,
        &examples,
        out.path(),
        &settings,
        &FlexDevice,
        &Progress::new(),
        &mut |r| records.push(r.clone()),
    )
    .unwrap();
    let losses = reference["losses"].as_array().unwrap();
    assert_eq!(records.len(), losses.len());
    for (r, want) in records.iter().zip(losses) {
        let want = want.as_f64().unwrap();
        let rel = (r.loss - want).abs() / want.abs();
        assert!(
            rel < 1e-4,
            "{arch} full step {}: loss {} vs torch {want} (rel {rel:e})",
            r.step,
            r.loss
        );
    }
    assert!(!out.path().join("adapter_model.safetensors").exists());
    let engine = Engine::load_dir(
        out.path(),
        &LoadOptions {
            device: DeviceRequest::Cpu,
            dtype: DTypeRequest::F32,
            fusion: false,
        },
    )
    .unwrap();
    let score = &reference["score"];
    let ours = &engine.score(&[score["text"].as_str().unwrap()]).unwrap()[0];
    let want: Vec<f64> = score["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ours.logprobs.len(), want.len());
    for (i, (a, b)) in ours.logprobs.iter().zip(&want).enumerate() {
        assert!(
            (*a as f64 - b).abs() < 1e-4,
            "{arch} token {i}: {a} vs torch {b} after full fine-tuning"
        );
    }

    // Stop after step 4 (checkpointed), resume: the same final weights.
    let part = tempfile::tempdir().unwrap();
    let progress = Progress::new();
    let stopper = progress.clone();
    let err = train::<Train>(
        &model_dir,
        &examples,
        part.path(),
        &settings,
        &FlexDevice,
        &progress,
        &mut |r| {
            if r.step == 4 {
                stopper.cancel();
            }
        },
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Cancelled), "{err}");
    let resumed = TrainSettings {
        resume: true,
        ..settings.clone()
    };
    train::<Train>(
        &model_dir,
        &examples,
        part.path(),
        &resumed,
        &FlexDevice,
        &Progress::new(),
        &mut |_| {},
    )
    .unwrap();
    let read = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        read(out.path()) == read(part.path()),
        "{arch}: resumed weights differ"
    );
    // A full run refuses the base model's own folder as its output.
    let e = refusal(&model_dir, &examples, &model_dir, &settings);
    assert!(e.contains("refusing to overwrite"), "{e}");
}

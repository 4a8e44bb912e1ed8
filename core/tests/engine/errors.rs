//! Bad input gives clear errors, never a panic: missing or corrupt files, config/weights shape
//! mismatches, unknown architectures, foreign tokenizers, prompts longer than the context and
//! meaningless sampling settings.

use crate::common::fixtures_dir;
use c2s_core::engine::{
    DTypeRequest, DeviceRequest, Engine, EngineError, GenerateOptions, LoadOptions, SamplingParams,
};
use c2s_core::model::ModelError;
use std::path::Path;

fn cpu() -> LoadOptions {
    LoadOptions {
        device: DeviceRequest::Cpu,
        dtype: DTypeRequest::F32,
        fusion: false,
    }
}

/// Copies a fixture into a temporary directory so a test can damage it.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(fixtures_dir().join(name)).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy");
    }
    tmp
}

fn load_err(dir: &Path) -> String {
    match Engine::load_dir(dir, &cpu()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn missing_model_is_reported_with_a_fix() {
    let err = Engine::load("/nonexistent/model/dir", &cpu()).unwrap_err();
    assert!(matches!(err, EngineError::NotFound { .. }), "{err}");
    let err = Engine::load("no-such-org/no-such-model", &cpu())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-org/no-such-model"), "{err}");
}

#[test]
fn missing_files_are_named() {
    let tmp = copy_fixture("gpt_neox_parallel");
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    assert!(load_err(tmp.path()).contains("tokenizer.json"));
    let tmp = copy_fixture("gpt_neox_parallel");
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    assert!(load_err(tmp.path()).contains("model.safetensors"));
    let tmp = copy_fixture("gpt_neox_parallel");
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    assert!(load_err(tmp.path()).contains("config.json"));
}

#[test]
fn corrupt_files_are_errors() {
    let tmp = copy_fixture("gemma2");
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("safetensors") || err.contains("truncated"),
        "{err}"
    );

    let tmp = copy_fixture("gemma2");
    std::fs::write(tmp.path().join("model.safetensors"), b"not a checkpoint").unwrap();
    assert!(load_err(tmp.path()).contains("safetensors"));

    let tmp = copy_fixture("gemma2");
    std::fs::write(tmp.path().join("config.json"), b"{ nope").unwrap();
    assert!(load_err(tmp.path()).contains("not valid JSON"));

    let tmp = copy_fixture("gemma2");
    std::fs::write(tmp.path().join("tokenizer.json"), b"{}").unwrap();
    assert!(load_err(tmp.path()).contains("tokenizer"));
}

#[test]
fn config_weight_shape_mismatch_names_the_tensor() {
    let tmp = copy_fixture("gpt_neox_sequential");
    edit_config(tmp.path(), |v| v["intermediate_size"] = 256.into());
    let err = load_err(tmp.path());
    assert!(
        err.contains("dense_h_to_4h") && err.contains("shape"),
        "{err}"
    );

    let tmp = copy_fixture("gemma3_text");
    edit_config(tmp.path(), |v| v["num_hidden_layers"] = 6.into());
    edit_config(tmp.path(), |v| {
        v.as_object_mut().unwrap().remove("layer_types");
    });
    assert!(load_err(tmp.path()).contains("missing"));

    let tmp = copy_fixture("gemma3_text");
    edit_config(tmp.path(), |v| v["num_hidden_layers"] = 2.into());
    edit_config(tmp.path(), |v| {
        v.as_object_mut().unwrap().remove("layer_types");
    });
    assert!(load_err(tmp.path()).contains("not used"));
}

#[test]
fn unknown_architecture_is_rejected() {
    let tmp = copy_fixture("gemma2");
    edit_config(tmp.path(), |v| v["model_type"] = "mamba".into());
    let err = load_err(tmp.path());
    assert!(err.contains("mamba") && err.contains("gpt_neox"), "{err}");
}

#[test]
fn prompt_longer_than_the_context_is_an_error() {
    let engine = Engine::load_dir(&fixtures_dir().join("gpt_neox_parallel"), &cpu()).unwrap();
    let long = "CD3E ".repeat(200);
    let err = engine
        .generate(
            &[long.as_str()],
            &GenerateOptions::default(),
            &mut |_| {},
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("context"), "{err}");
    let err = engine.score(&[long.as_str()]).unwrap_err().to_string();
    assert!(err.contains("context"), "{err}");
    let err = engine.embed(&[long.as_str()]).unwrap_err().to_string();
    assert!(err.contains("context"), "{err}");
}

#[test]
fn ids_outside_the_vocabulary_are_an_error() {
    let engine = Engine::load_dir(&fixtures_dir().join("gemma2"), &cpu()).unwrap();
    let err = engine
        .score_ids(&[vec![2, 5, 100_000]])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("100000") && err.contains("vocabulary"),
        "{err}"
    );
}

#[test]
fn bad_sampling_settings_are_errors() {
    let engine = Engine::load_dir(&fixtures_dir().join("gemma2"), &cpu()).unwrap();
    for sampling in [
        SamplingParams {
            temperature: -1.0,
            ..Default::default()
        },
        SamplingParams {
            temperature: 1.0,
            top_p: 0.0,
            ..Default::default()
        },
    ] {
        let options = GenerateOptions {
            sampling,
            ..Default::default()
        };
        let err = engine.generate(&["CD3E"], &options, &mut |_| {}, None);
        assert!(err.is_err());
    }
    // An empty prompt with a tokenizer that adds nothing.
    let neox = Engine::load_dir(&fixtures_dir().join("gpt_neox_parallel"), &cpu()).unwrap();
    let err = neox
        .generate(&[""], &GenerateOptions::default(), &mut |_| {}, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn loading_reports_progress_and_stops_when_cancelled() {
    // An untied head: every tensor is read once, so the fraction reaches 1 only at the end.
    let dir = fixtures_dir().join("gpt_neox_parallel");
    let progress = c2s_core::Progress::new();
    Engine::load_dir_with_progress(&dir, &cpu(), &progress).expect("loads");
    assert_eq!(
        progress.fraction(),
        1.0,
        "every byte of the checkpoint was read"
    );

    let cancelled = c2s_core::Progress::new();
    cancelled.cancel();
    let err = Engine::load_dir_with_progress(&dir, &cpu(), &cancelled).unwrap_err();
    assert!(
        matches!(err, EngineError::Model(ModelError::Cancelled)),
        "{err}"
    );
    assert_eq!(err.to_string(), "loading the model was cancelled");
}

//! The engine subcommands end to end: `generate`, `score`, `embed` and `models` on the committed
//! tiny checkpoints, checked against the `transformers` reference outputs.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
}

fn reference(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(name).join("reference.json")).unwrap(),
    )
    .unwrap()
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_c2s-studio"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn generate_json_is_greedy_and_matches_transformers() {
    for name in ["gpt_neox_parallel", "gemma2", "gemma3_nested"] {
        let r = reference(name);
        let dir = fixtures().join(name);
        let prompt = r["prompts"][1]["text"].as_str().unwrap();
        let (ok, stdout, stderr) = run(&[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            prompt,
            "--max-new-tokens",
            "16",
            "--temperature",
            "0",
            "--device",
            "cpu",
            "--json",
        ]);
        assert!(ok, "{stderr}");
        let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        assert_eq!(v["token_ids"], r["greedy"][1], "{name}");
        assert_eq!(v["device"], "cpu");
        assert!(v["text"].is_string());
    }
}

#[test]
fn score_json_has_one_logprob_per_token_after_the_first() {
    let r = reference("gemma3_text");
    let dir = fixtures().join("gemma3_text");
    let text = r["prompts"][0]["text"].as_str().unwrap();
    let (ok, stdout, stderr) = run(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--text",
        text,
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let ids = v["token_ids"].as_array().unwrap();
    assert_eq!(v["token_ids"], r["prompts"][0]["ids"]);
    assert_eq!(v["logprobs"].as_array().unwrap().len(), ids.len() - 1);
    assert!(
        v["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x.as_f64().unwrap() <= 0.0)
    );
}

#[test]
fn embed_json_prints_the_vector() {
    let r = reference("gpt_neox_sequential");
    let dir = fixtures().join("gpt_neox_sequential");
    let text = r["prompts"][2]["text"].as_str().unwrap();
    let (ok, stdout, stderr) = run(&[
        "embed",
        "--model",
        dir.to_str().unwrap(),
        "--text",
        text,
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let ours = v["embedding"].as_array().unwrap();
    let expected = r["embeddings"][2].as_array().unwrap();
    assert_eq!(v["dim"], 64);
    for (a, b) in ours.iter().zip(expected) {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-4);
    }
}

#[test]
fn models_lists_the_fixture_directory() {
    let (ok, stdout, stderr) = run(&["models", fixtures().to_str().unwrap(), "--json"]);
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let types: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["model_type"].as_str())
        .collect();
    for t in ["gpt_neox", "gemma2", "gemma3_text", "gemma3"] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
}

#[test]
fn bad_input_is_one_error_line_not_a_panic() {
    let (ok, _, stderr) = run(&["generate", "--model", "/nonexistent", "--prompt", "x"]);
    assert!(!ok);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let dir = fixtures().join("gpt_neox_parallel");
    let (ok, _, stderr) = run(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "CD3E",
        "--device",
        "quantum",
    ]);
    assert!(!ok);
    assert!(stderr.contains("unknown device"), "{stderr}");
}

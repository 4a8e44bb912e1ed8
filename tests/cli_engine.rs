//! The engine subcommands end to end: `generate`, `score`, `embed` and `models` on the committed
//! tiny checkpoints, checked against the `transformers` reference outputs.

use serde_json::{Value, json};
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

/// The JSON lines of a `generate --prompts` run.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Runs `generate --prompts FILE` on the fixture `gpt_neox_parallel` with `extra` flags;
/// returns stdout.
fn generate_file(file: &std::path::Path, extra: &[&str]) -> String {
    let dir = fixtures().join("gpt_neox_parallel");
    let mut args = vec![
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--device",
        "cpu",
        "--prompts",
        file.to_str().unwrap(),
        "--max-new-tokens",
        "16",
        "--max-batch-rows",
        "2",
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = run(&args);
    assert!(ok, "{stderr}");
    stdout
}

fn write_requests(path: &std::path::Path, requests: &[Value]) {
    let body: Vec<String> = requests.iter().map(Value::to_string).collect();
    std::fs::write(path, format!("{}\n\n", body.join("\n"))).unwrap();
}

#[test]
fn generate_prompts_file_writes_one_line_per_row() {
    let r = reference("gpt_neox_parallel");
    let tmp = tempfile::tempdir().unwrap();
    let text = |i: usize| r["prompts"][i]["text"].as_str().unwrap().to_string();
    let file = tmp.path().join("requests.jsonl");
    let requests = [
        json!({"id": "a", "prompt": text(0)}),
        json!({"id": 2, "prompt": text(1), "samples": 3, "seed": 9}),
        json!({"id": "c", "prompt": text(2), "max_new_tokens": 5}),
    ];
    write_requests(&file, &requests);
    // Greedy: every row is transformers' greedy continuation of its prompt, request "c" cut at
    // its own bound of 5 new tokens.
    let rows = json_lines(&generate_file(&file, &["--temperature", "0"]));
    assert_eq!(rows.len(), 5, "1 + 3 + 1 rows");
    for (id, prompt) in [(json!("a"), 0), (json!(2), 1), (json!("c"), 2)] {
        let mine: Vec<&Value> = rows.iter().filter(|v| v["id"] == id).collect();
        let mut samples: Vec<Option<u64>> = mine.iter().map(|v| v["sample"].as_u64()).collect();
        samples.sort();
        let expected = if prompt == 1 {
            vec![Some(0), Some(1), Some(2)]
        } else {
            vec![None]
        };
        assert_eq!(samples, expected, "{id}");
        let greedy = r["greedy"][prompt].as_array().unwrap();
        let bound = if prompt == 2 { 5 } else { greedy.len() };
        for v in mine {
            assert_eq!(
                v["token_ids"].as_array().unwrap()[..],
                greedy[..bound],
                "{id}"
            );
            assert!(v["text"].is_string());
            assert_eq!(v["stop_reason"], "max_tokens");
        }
    }
    // Sampled into a file, in request order: the three samples share a prompt but differ, a
    // rerun is identical, and request 2 (own seed) samples the same on another line.
    let out = tmp.path().join("out.jsonl");
    let sampled = [
        "--temperature",
        "1.5",
        "--seed",
        "4",
        "--out",
        out.to_str().unwrap(),
    ];
    assert_eq!(
        generate_file(&file, &sampled),
        "",
        "nothing on stdout with --out"
    );
    let first = std::fs::read_to_string(&out).unwrap();
    let rows = json_lines(&first);
    let order: Vec<(Value, Value)> = rows
        .iter()
        .map(|v| (v["id"].clone(), v["sample"].clone()))
        .collect();
    assert_eq!(
        order,
        [
            (json!("a"), Value::Null),
            (json!(2), json!(0)),
            (json!(2), json!(1)),
            (json!(2), json!(2)),
            (json!("c"), Value::Null),
        ]
    );
    let samples: std::collections::BTreeSet<String> = rows[1..4]
        .iter()
        .map(|v| v["token_ids"].to_string())
        .collect();
    assert!(
        samples.len() > 1,
        "three samples, one continuation: {samples:?}"
    );
    generate_file(&file, &sampled);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first, "seeded");
    let moved = tmp.path().join("moved.jsonl");
    write_requests(&moved, &[requests[2].clone(), requests[1].clone()]);
    let moved_out = tmp.path().join("moved_out.jsonl");
    let flags = [
        "--temperature",
        "1.5",
        "--seed",
        "4",
        "--out",
        moved_out.to_str().unwrap(),
    ];
    generate_file(&moved, &flags);
    let again = json_lines(&std::fs::read_to_string(&moved_out).unwrap());
    assert_eq!(again[1..4], rows[1..4], "a request's own seed follows it");
}

#[test]
fn a_malformed_prompts_line_names_its_line_and_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixtures().join("gpt_neox_parallel");
    for (body, expected) in [
        (
            "{\"id\": 1, \"prompt\": \"CD3E\"}\n{\"id\": 2, \"prompt\": \"CD3E\"\n",
            "line 2: not valid JSON",
        ),
        (
            "\n{\"id\": 1, \"prompt\": \"CD3E\", \"samples\": 0}\n",
            "line 2: \"samples\" must be 1 or more",
        ),
        (
            "{\"id\": 1, \"text\": \"CD3E\"}\n",
            "line 1: unknown key \"text\"",
        ),
        ("{\"prompt\": \"CD3E\"}\n", "line 1: missing \"id\""),
        (
            "{\"id\": 1, \"prompt\": \"A\"}\n{\"id\": 1, \"prompt\": \"B\"}\n",
            "line 2: id 1 was already used on line 1",
        ),
    ] {
        let file = tmp.path().join("bad.jsonl");
        std::fs::write(&file, body).unwrap();
        let (ok, stdout, stderr) = run(&[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--device",
            "cpu",
            "--prompts",
            file.to_str().unwrap(),
        ]);
        assert!(!ok, "{body}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `log_softmax(logits)[id]` in f64.
fn log_softmax_at(logits: &[Value], id: usize) -> f64 {
    let v: Vec<f64> = logits.iter().map(|x| x.as_f64().unwrap()).collect();
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    v[id] - lse
}

#[test]
fn score_input_file_matches_transformers_and_scores_continuations_after_a_prompt() {
    let name = "gpt_neox_parallel";
    let r = reference(name);
    let dir = fixtures().join(name);
    let tmp = tempfile::tempdir().unwrap();
    let prompts = r["prompts"].as_array().unwrap();
    let (prompt, cont) = (prompts[1]["text"].as_str().unwrap(), " CD3D CD3E");
    let mut input: Vec<String> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"id": i, "text": p["text"]}).to_string())
        .collect();
    input.push(json!({"id": "joined", "text": format!("{prompt}{cont}")}).to_string());
    input.push(json!({"id": "ranked", "prompt": prompt, "continuations": [cont]}).to_string());
    let path = tmp.path().join("in.jsonl");
    std::fs::write(&path, input.join("\n")).unwrap();
    let out = tmp.path().join("out.jsonl");
    let (ok, _, stderr) = run(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("5 lines scored into"), "{stderr}");
    let rows: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    // Whole texts: every log-probability equals transformers' (log-softmax of its logits).
    for (i, p) in prompts.iter().enumerate() {
        assert_eq!(rows[i]["id"], json!(i));
        let ids = p["ids"].as_array().unwrap();
        let logits = r["logits"][i].as_array().unwrap();
        let ours = rows[i]["logprobs"].as_array().unwrap();
        assert_eq!(ours.len(), ids.len() - 1);
        for t in 1..ids.len() {
            let hf = log_softmax_at(
                logits[t - 1].as_array().unwrap(),
                ids[t].as_u64().unwrap() as usize,
            );
            let got = ours[t - 1].as_f64().unwrap();
            assert!(
                (got - hf).abs() < 1e-4,
                "{name} text {i} token {t}: {got} vs {hf}"
            );
        }
    }
    // The continuation after the prompt: the tail of the joined text's scores.
    let n = rows[4]["tokens"][0].as_u64().unwrap() as usize;
    let joined = rows[3]["logprobs"].as_array().unwrap();
    assert_eq!(
        joined.len(),
        prompts[1]["ids"].as_array().unwrap().len() - 1 + n
    );
    let tail: f64 = joined[joined.len() - n..]
        .iter()
        .map(|x| x.as_f64().unwrap())
        .sum();
    let total = rows[4]["totals"][0].as_f64().unwrap();
    assert!((total - tail).abs() < 1e-4, "{total} vs {tail}");

    // A bad line is named, and no output file appears.
    std::fs::write(&path, "{\"id\": 1, \"prompt\": \"x\"}\n").unwrap();
    let out2 = tmp.path().join("out2.jsonl");
    let (ok, _, stderr) = run(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("line 1: a \"prompt\" needs \"continuations\""),
        "{stderr}"
    );
    assert!(!out2.exists());
}

//! `c2s-studio download` end to end against a local stand-in for the Hugging Face hub that
//! serves the committed tiny GPT-NeoX checkpoint in the hub's URL layout; the downloaded model
//! is then found by id through `HF_HUB_CACHE` and generates what `transformers` generated.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = "vandijklab/tiny-e2e";
const COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";
/// `sha256sum tests/fixtures/models/gpt_neox_parallel/model.safetensors`: the weights' ETag,
/// as the hub gives it for LFS files (the download verifies it).
const WEIGHTS_SHA256: &str = "26a1de2d6d3de38fea46a4a9ae781829d32425c7fead81250cb5a8fdcec613de";
const FILES: [&str; 4] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "model.safetensors",
];

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/gpt_neox_parallel")
}

/// The ETag of a served file: the sha256 for the weights, a made-up git sha1 for the others.
fn etag(name: &str) -> String {
    if name == "model.safetensors" {
        WEIGHTS_SHA256.to_string()
    } else {
        format!("{:0>40x}", name.len() * 7919 + name.as_bytes()[0] as usize)
    }
}

/// Serves the listing and `resolve` URLs of `REPO` on a free port; returns its address.
fn start_hub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    endpoint
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
    }
    let mut words = request.split_whitespace();
    let head = words.next() == Some("HEAD");
    let path = words.next().unwrap_or_default();
    let (status, headers, body) = if path.starts_with(&format!("/api/models/{REPO}/revision/")) {
        let siblings: Vec<Value> = FILES
            .iter()
            .chain(&["pytorch_model.bin", "README.md"])
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        let listing = serde_json::json!({ "id": REPO, "sha": COMMIT, "siblings": siblings });
        ("200 OK", String::new(), listing.to_string().into_bytes())
    } else if let Some(name) = path
        .strip_prefix(&format!("/{REPO}/resolve/"))
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, name)| name)
        .filter(|name| FILES.contains(name))
    {
        let headers = format!("ETag: \"{}\"\r\nX-Repo-Commit: {COMMIT}\r\n", etag(name));
        (
            "200 OK",
            headers,
            std::fs::read(fixture().join(name)).unwrap(),
        )
    } else {
        ("404 Not Found", String::new(), Vec::new())
    };
    let mut out = &stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    );
    if !head {
        let _ = out.write_all(&body);
    }
    let _ = out.flush();
}

/// Runs the binary with `HF_HUB_CACHE` = `cache` and no token or endpoint from the caller.
fn run(args: &[&str], cache: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_c2s-studio"))
        .args(args)
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_TOKEN")
        .env_remove("HF_ENDPOINT")
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn download_fills_the_hf_cache_and_the_model_loads_by_id() {
    let endpoint = start_hub();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "download",
            REPO,
            "--endpoint",
            &endpoint,
            "--cache-dir",
            cache_arg,
        ],
        Path::new("/nonexistent-cache"),
    );
    assert!(ok, "{stderr}");
    let repo = cache.path().join("models--vandijklab--tiny-e2e");
    let snapshot = repo.join("snapshots").join(COMMIT);
    assert_eq!(PathBuf::from(stdout.trim()), snapshot);
    assert!(stderr.contains("fetched"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs").join("main")).unwrap(),
        COMMIT
    );
    for name in FILES {
        assert_eq!(
            std::fs::read_link(snapshot.join(name)).unwrap(),
            Path::new("../../blobs").join(etag(name))
        );
    }
    assert!(!snapshot.join("pytorch_model.bin").exists());

    let (ok, stdout, stderr) = run(&["download", REPO, "--endpoint", &endpoint], cache.path());
    assert!(ok, "{stderr}");
    assert!(stderr.contains("already in the cache"), "{stderr}");
    assert_eq!(PathBuf::from(stdout.trim()), snapshot);

    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap())
            .unwrap();
    let prompt = reference["prompts"][1]["text"].as_str().unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "generate",
            "--model",
            REPO,
            "--prompt",
            prompt,
            "--max-new-tokens",
            "16",
            "--temperature",
            "0",
            "--device",
            "cpu",
            "--json",
        ],
        cache.path(),
    );
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["token_ids"], reference["greedy"][1]);
}

#[test]
fn download_from_an_unreachable_hub_is_one_error_line() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let cache = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(&["download", REPO, "--endpoint", &endpoint], cache.path());
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cannot reach the Hugging Face hub"),
        "{stderr}"
    );
    assert!(errors[0].contains("copy a model in"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn download_list_shows_the_c2s_checkpoints() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(&["download", "--list"], cache.path());
    assert!(ok, "{stderr}");
    for id in [
        "vandijklab/pythia-160m-c2s",
        "vandijklab/C2S-Pythia-410m-cell-type-prediction",
        "vandijklab/C2S-Scale-Gemma-2-27B",
    ] {
        assert!(stdout.contains(id), "{id} missing from {stdout}");
    }
    let (ok, _, stderr) = run(&["download"], cache.path());
    assert!(!ok && stderr.contains("--list"), "{stderr}");
}

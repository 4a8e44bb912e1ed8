//! A stand-in for the hub in tests: a local `TcpListener` serving the committed tiny GPT-NeoX
//! checkpoint in the hub's URL layout (listing, `resolve` with ETags, the weights behind a
//! redirect to a "CDN" path with `Range` support), logging every request, with faults to inject.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The commit every revision resolves to.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The model id served.
pub const REPO: &str = "vandijklab/tiny-test";
/// The weights file, the one served as an LFS file.
pub const WEIGHTS: &str = "model.safetensors";

/// Something to go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Everything works.
    None,
    /// The first `GET` of the weights closes the connection after this many bytes.
    CutWeightsAfter(usize),
    /// The weights arrive with one byte changed.
    CorruptWeights,
    /// Every request without `Authorization: Bearer {token}` gets a 401.
    RequireToken(&'static str),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path asked for.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
}

/// A file served.
pub struct Served {
    /// Its name in the repository.
    pub name: String,
    /// Its bytes.
    pub body: Vec<u8>,
    /// Its ETag: the sha256 hex for the weights, a 40-hex for the others.
    pub etag: String,
}

/// A running fake hub.
pub struct FakeHub {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct State {
    files: Vec<Served>,
    fault: Fault,
    cut_done: AtomicBool,
    seen: Arc<Mutex<Vec<Seen>>>,
    endpoint: String,
}

/// The files of the committed tiny checkpoint, with their ETags.
pub fn fixture_files() -> Vec<Served> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/gpt_neox_parallel");
    [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        WEIGHTS,
    ]
    .iter()
    .map(|name| {
        let body = std::fs::read(dir.join(name)).expect("fixture file");
        let sha = sha256_hex(&body);
        let etag = if *name == WEIGHTS {
            sha
        } else {
            sha[..40].to_string()
        };
        Served {
            name: name.to_string(),
            body,
            etag,
        }
    })
    .collect()
}

/// The sha256 of `bytes` in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl FakeHub {
    /// Starts serving on a free local port.
    pub fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            files: fixture_files(),
            fault,
            cut_done: AtomicBool::new(false),
            seen: seen.clone(),
            endpoint: endpoint.clone(),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || state.serve(stream));
            }
        });
        Self { endpoint, seen }
    }

    /// The requests seen so far, and forgets them.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("log lock"))
    }
}

impl State {
    /// Answers one request, then closes the connection.
    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let path = words.next().unwrap_or_default().to_string();
        let (mut range, mut auth) = (None, None);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(value.trim().to_string()),
                    "authorization" => auth = Some(value.trim().to_string()),
                    _ => {}
                }
            }
        }
        self.seen.lock().expect("log lock").push(Seen {
            method: method.clone(),
            path: path.clone(),
            range: range.clone(),
        });
        let mut out = &stream;
        let head = method == "HEAD";
        if let Fault::RequireToken(token) = self.fault
            && auth.as_deref() != Some(&format!("Bearer {token}"))
        {
            let _ = respond(
                &mut out,
                "401 Unauthorized",
                &[],
                b"{\"error\":\"gated\"}",
                head,
            );
            return;
        }
        let listing_prefix = format!("/api/models/{REPO}/revision/");
        let resolve_prefix = format!("/{REPO}/resolve/");
        if path.starts_with(&listing_prefix) {
            let mut siblings: Vec<String> = self.files.iter().map(|f| f.name.clone()).collect();
            siblings.extend(
                [
                    ".gitattributes",
                    "README.md",
                    "pytorch_model.bin",
                    "onnx/model.onnx",
                ]
                .map(String::from),
            );
            let body = serde_json::json!({
                "id": REPO,
                "sha": COMMIT,
                "siblings": siblings.iter().map(|s| serde_json::json!({"rfilename": s})).collect::<Vec<_>>(),
            })
            .to_string();
            let _ = respond(&mut out, "200 OK", &[], body.as_bytes(), head);
        } else if let Some(rest) = path.strip_prefix(&resolve_prefix) {
            let name = rest.split_once('/').map_or("", |(_, n)| n);
            let Some(file) = self.files.iter().find(|f| f.name == name) else {
                let _ = respond(&mut out, "404 Not Found", &[], b"", head);
                return;
            };
            let etag = format!("\"{}\"", file.etag);
            if name == WEIGHTS {
                let location = format!("{}/cdn/{}", self.endpoint, file.etag);
                let size = file.body.len().to_string();
                let headers = [
                    ("Location", location.as_str()),
                    ("X-Linked-Etag", etag.as_str()),
                    ("X-Linked-Size", size.as_str()),
                    ("X-Repo-Commit", COMMIT),
                ];
                let _ = respond(&mut out, "302 Found", &headers, b"", head);
            } else {
                let headers = [("ETag", etag.as_str()), ("X-Repo-Commit", COMMIT)];
                let _ = respond(&mut out, "200 OK", &headers, &file.body, head);
            }
        } else if path.starts_with("/cdn/") {
            let Some(file) = self.files.iter().find(|f| f.name == WEIGHTS) else {
                return;
            };
            let mut body = file.body.clone();
            if self.fault == Fault::CorruptWeights {
                body[1000] ^= 0xff;
            }
            self.serve_weights(&mut out, &body, range.as_deref(), head);
        } else {
            let _ = respond(&mut out, "404 Not Found", &[], b"", head);
        }
    }

    /// The weights from the CDN path: `Range` honoured, and cut short once when asked.
    fn serve_weights(&self, out: &mut &TcpStream, body: &[u8], range: Option<&str>, head: bool) {
        let start = range
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|s| s.parse::<usize>().ok());
        if let Fault::CutWeightsAfter(n) = self.fault
            && !head
            && !self.cut_done.swap(true, Ordering::SeqCst)
        {
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = out.write_all(header.as_bytes());
            let _ = out.write_all(&body[..n]);
            let _ = out.flush();
            return;
        }
        match start {
            Some(s) if s < body.len() => {
                let content_range = format!("bytes {s}-{}/{}", body.len() - 1, body.len());
                let headers = [("Content-Range", content_range.as_str())];
                let _ = respond(out, "206 Partial Content", &headers, &body[s..], head);
            }
            Some(_) => {
                let _ = respond(out, "416 Range Not Satisfiable", &[], b"", head);
            }
            None => {
                let _ = respond(out, "200 OK", &[], body, head);
            }
        }
    }
}

/// Writes a whole response; `HEAD` gets the headers only.
fn respond(
    out: &mut &TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    out.write_all(text.as_bytes())?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()
}

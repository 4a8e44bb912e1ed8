//! The hub's HTTP protocol, as `huggingface_hub` speaks it: a revision's file listing
//! (`/api/models/{repo}/revision/{rev}`), a file's metadata (`HEAD {repo}/resolve/{rev}/{file}`:
//! ETag and size, read before any redirect to the CDN) and its bytes (`GET`, following redirects,
//! from an offset with `Range`).

use super::{HubConfig, HubError};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How many redirects a request follows.
const MAX_REDIRECTS: u32 = 5;

/// A revision's commit and file names.
#[derive(Debug)]
pub(crate) struct Listing {
    /// The 40-hex commit hash the revision resolved to.
    pub commit: String,
    /// Every file of the repository at that commit (`rfilename`s).
    pub files: Vec<String>,
}

/// What a `HEAD` says about one file.
#[derive(Debug)]
pub(crate) struct FileMeta {
    /// The ETag without quotes: the sha256 hex for LFS files, the git blob sha1 otherwise.
    pub etag: String,
    /// The file's size in bytes, when the hub said.
    pub size: Option<u64>,
}

/// The body of a `GET`.
pub(crate) struct Body {
    /// The bytes.
    pub reader: Box<dyn Read + Send + Sync>,
    /// Where in the file they start: the requested offset, or 0 when the server sent it all.
    pub from: u64,
}

/// Why a `GET` gave no body.
pub(crate) enum GetError {
    /// A network error or a server hiccup (5xx): worth another try.
    Retry(String),
    /// The server cannot serve from the offset asked: start the file again.
    Restart,
    /// Trying again will not help.
    Fatal(HubError),
}

/// A hub client for one configuration.
pub(crate) struct Client {
    endpoint: String,
    token: Option<String>,
    cache: PathBuf,
    /// For `HEAD`: no redirects, so that the hub's own ETag headers are read.
    head: ureq::Agent,
    /// For `GET`: follows redirects, with the token only to the same host.
    get: ureq::Agent,
}

impl Client {
    /// A client for `config`.
    pub fn new(config: &HubConfig) -> Result<Self, HubError> {
        let endpoint = &config.endpoint;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(HubError::InvalidArgument(format!(
                "`{endpoint}` is not a hub address; write it as https://host (check HF_ENDPOINT \
                 and --endpoint)"
            )));
        }
        let tls = ureq::native_tls::TlsConnector::new().map_err(|e| HubError::Offline {
            endpoint: config.endpoint.clone(),
            detail: format!("TLS setup failed: {e}"),
            cache: config.cache_dir.clone(),
        })?;
        let tls = Arc::new(tls);
        let agent = |redirects| {
            ureq::AgentBuilder::new()
                .tls_connector(tls.clone())
                .user_agent(concat!("c2s-studio/", env!("CARGO_PKG_VERSION")))
                .timeout_connect(Duration::from_secs(15))
                .timeout_read(Duration::from_secs(60))
                .redirects(redirects)
                .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
                .build()
        };
        Ok(Self {
            endpoint: config.endpoint.clone(),
            token: config.token.clone(),
            cache: config.cache_dir.clone(),
            head: agent(0),
            get: agent(MAX_REDIRECTS),
        })
    }

    /// The commit and files of `repo` at `revision`.
    pub fn list(&self, repo: &str, revision: &str) -> Result<Listing, HubError> {
        #[derive(serde::Deserialize)]
        struct Info {
            sha: Option<String>,
            #[serde(default)]
            siblings: Vec<Sibling>,
        }
        #[derive(serde::Deserialize)]
        struct Sibling {
            rfilename: String,
        }
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.endpoint,
            encode(revision, false)
        );
        let what = || format!("model `{repo}` at revision `{revision}`");
        let response = self
            .request(&self.get, "GET", &url)
            .call()
            .map_err(|e| self.failure(e, repo, what))?;
        let bad = |detail: String| HubError::BadResponse {
            url: url.clone(),
            detail,
        };
        let info: Info = serde_json::from_reader(response.into_reader())
            .map_err(|e| bad(format!("not a model description ({e})")))?;
        let commit = info
            .sha
            .filter(|s| is_hex(s, 40))
            .ok_or_else(|| bad("no 40-hex commit `sha`".into()))?;
        Ok(Listing {
            commit,
            files: info.siblings.into_iter().map(|s| s.rfilename).collect(),
        })
    }

    /// The ETag and size of `file` at `commit`, following relative redirects (a renamed
    /// repository) but not absolute ones (the CDN), whose ETag is not the hub's.
    pub fn head(&self, repo: &str, commit: &str, file: &str) -> Result<FileMeta, HubError> {
        let mut url = self.file_url(repo, commit, file);
        let what = || format!("file `{file}` of model `{repo}` at commit {commit}");
        let mut redirects = 0;
        let response = loop {
            let response = self
                .request(&self.head, "HEAD", &url)
                .set("Accept-Encoding", "identity")
                .call()
                .map_err(|e| self.failure(e, repo, what))?;
            match response.header("location") {
                Some(location)
                    if (300..400).contains(&response.status())
                        && location.starts_with('/')
                        && redirects < MAX_REDIRECTS =>
                {
                    url = format!("{}{location}", origin(&url));
                    redirects += 1;
                }
                _ => break response,
            }
        };
        let etag = response
            .header("x-linked-etag")
            .or_else(|| response.header("etag"))
            .map(normalize_etag)
            .filter(|e| is_safe_name(e))
            .ok_or_else(|| HubError::BadResponse {
                url: url.clone(),
                detail: "no usable ETag header; is this a Hugging Face hub?".into(),
            })?;
        let size = response
            .header("x-linked-size")
            .or_else(|| response.header("content-length"))
            .and_then(|s| s.trim().parse().ok());
        Ok(FileMeta { etag, size })
    }

    /// The bytes of `file` at `commit` from byte `offset` on.
    pub fn get(&self, repo: &str, commit: &str, file: &str, offset: u64) -> Result<Body, GetError> {
        let url = self.file_url(repo, commit, file);
        let mut request = self.request(&self.get, "GET", &url);
        if offset > 0 {
            request = request.set("Range", &format!("bytes={offset}-"));
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, _)) => return Err(GetError::Restart),
            Err(ureq::Error::Status(status, _)) if status == 429 || status >= 500 => {
                return Err(GetError::Retry(format!("HTTP {status}")));
            }
            Err(ureq::Error::Transport(t)) => return Err(GetError::Retry(t.to_string())),
            Err(e) => {
                return Err(GetError::Fatal(self.failure(e, repo, || {
                    format!("file `{file}` of model `{repo}` at commit {commit}")
                })));
            }
        };
        let from = if response.status() == 206 {
            let start = response
                .header("content-range")
                .and_then(|r| r.trim().strip_prefix("bytes "))
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if start != Some(offset) {
                return Err(GetError::Restart);
            }
            offset
        } else {
            0
        };
        Ok(Body {
            reader: response.into_reader(),
            from,
        })
    }

    /// `GET`/`HEAD` `url` with the token, if any.
    fn request(&self, agent: &ureq::Agent, method: &str, url: &str) -> ureq::Request {
        let request = agent.request(method, url);
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// The `resolve` address of `file` at `rev`.
    fn file_url(&self, repo: &str, rev: &str, file: &str) -> String {
        format!(
            "{}/{repo}/resolve/{}/{}",
            self.endpoint,
            encode(rev, false),
            encode(file, true)
        )
    }

    /// The error for a failed listing or `HEAD`; `what` names the thing asked for.
    fn failure(&self, error: ureq::Error, repo: &str, what: impl FnOnce() -> String) -> HubError {
        match error {
            ureq::Error::Status(status @ (401 | 403), _) => HubError::Gated {
                repo: repo.to_string(),
                status,
                endpoint: self.endpoint.clone(),
                token_note: if self.token.is_some() {
                    ", with the HF_TOKEN that was sent"
                } else {
                    ""
                },
            },
            ureq::Error::Status(404, _) => HubError::NotFound {
                what: what(),
                endpoint: self.endpoint.clone(),
            },
            ureq::Error::Status(status, response) => HubError::Http {
                url: response.get_url().to_string(),
                status,
            },
            ureq::Error::Transport(t) => HubError::Offline {
                endpoint: self.endpoint.clone(),
                detail: t.to_string(),
                cache: self.cache.clone(),
            },
        }
    }
}

/// `scheme://host[:port]` of an absolute URL.
fn origin(url: &str) -> &str {
    let host_start = url.find("://").map_or(0, |i| i + 3);
    match url[host_start..].find('/') {
        Some(i) => &url[..host_start + i],
        None => url,
    }
}

/// Percent-encodes all but unreserved characters (and `/` when `keep_slash`).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An ETag header without its weak marker and quotes, as `huggingface_hub` stores it.
fn normalize_etag(raw: &str) -> String {
    let raw = raw.trim();
    raw.strip_prefix("W/")
        .unwrap_or(raw)
        .trim_matches('"')
        .to_string()
}

/// Whether `s` is `len` lowercase-or-uppercase hex digits.
pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` can be a file name in `blobs/` (an ETag from the network becomes one).
fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_lose_quotes_and_weak_marker() {
        assert_eq!(normalize_etag("\"abc123\""), "abc123");
        assert_eq!(normalize_etag("W/\"abc123\""), "abc123");
        assert_eq!(normalize_etag("abc123"), "abc123");
        assert!(!is_safe_name("../../etc"));
        assert!(is_safe_name("0a1b"));
    }

    #[test]
    fn urls_are_encoded_and_split() {
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("a b/c.json", true), "a%20b/c.json");
        assert_eq!(origin("http://127.0.0.1:8080/a/b"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
    }
}

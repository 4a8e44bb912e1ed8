//! [`download_model`]: the files a model needs, from the hub into the cache, resumable and
//! verified.

use super::http::{Client, FileMeta, GetError, is_hex};
use super::store::{Partial, RepoStore};
use super::{HubConfig, HubError};
use std::io::{ErrorKind, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Tries per file before an interruption is reported.
const MAX_TRIES: u32 = 5;
/// Bytes read between two cancel checks and progress reports.
const CHUNK: usize = 64 * 1024;
/// The files a model needs besides its `*.safetensors` weights (the optional ones included).
const MODEL_FILES: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors.index.json",
];

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The snapshot folder (`…/snapshots/{commit}`): a model directory the engine can load.
    pub snapshot_dir: PathBuf,
    /// The commit hash the revision resolved to.
    pub commit: String,
    /// The files of the snapshot, in download order.
    pub files: Vec<String>,
    /// Bytes fetched over the network by this call; 0 when the cache already had everything.
    pub bytes_fetched: u64,
}

/// Whether a repository file is one the engine uses: `config.json`, `tokenizer.json`,
/// `*.safetensors` and their optional companions, at the top of the repository. Other weight
/// formats (`*.bin`, `*.pt`, `*.h5`, `*.msgpack`, `*.onnx`, `*.gguf`) and docs are skipped.
pub fn is_model_file(name: &str) -> bool {
    !name.contains(['/', '\\'])
        && !name.starts_with('.')
        && (MODEL_FILES.contains(&name) || name.ends_with(".safetensors"))
}

/// Downloads the files `repo_id` (`org/name`) needs at `revision` (a branch, tag or commit)
/// into `config.cache_dir`, and returns its snapshot.
///
/// `progress` gets (file name, bytes done, bytes total; 0 when unknown) at the start of each
/// file and after each chunk. Raising `cancel` stops between chunks with
/// [`HubError::Cancelled`], leaving `blobs/{etag}.incomplete` for the next call to resume.
/// Files already in the cache are not fetched again.
pub fn download_model(
    config: &HubConfig,
    repo_id: &str,
    revision: &str,
    progress: &mut dyn FnMut(&str, u64, u64),
    cancel: &AtomicBool,
) -> Result<Downloaded, HubError> {
    check_repo_id(repo_id)?;
    check_revision(revision)?;
    let client = Client::new(config)?;
    let listing = client.list(repo_id, revision)?;
    let files = model_files(repo_id, listing.files)?;
    let store = RepoStore::new(&config.cache_dir, repo_id);
    let commit = listing.commit;
    let mut bytes_fetched = 0;
    for file in &files {
        if cancel.load(Ordering::Relaxed) {
            return Err(HubError::Cancelled);
        }
        let pointer = store.snapshot(&commit).join(file);
        // Follows the symlink: present only when its blob is.
        if let Ok(meta) = std::fs::metadata(&pointer) {
            progress(file, meta.len(), meta.len());
            continue;
        }
        let meta = client.head(repo_id, &commit, file)?;
        let fetch = FileFetch {
            client: &client,
            store: &store,
            repo: repo_id,
            commit: &commit,
            file,
            meta: &meta,
        };
        bytes_fetched += fetch.run(progress, cancel)?;
        store.link(&commit, file, &meta.etag)?;
    }
    if revision != commit {
        store.write_ref(revision, &commit)?;
    }
    Ok(Downloaded {
        snapshot_dir: store.snapshot(&commit),
        commit,
        files,
        bytes_fetched,
    })
}

/// The model files of a listing, in download order: weights first, `config.json` last, so that
/// a snapshot only looks like a model once it is complete.
fn model_files(repo: &str, all: Vec<String>) -> Result<Vec<String>, HubError> {
    let mut files: Vec<String> = all.into_iter().filter(|f| is_model_file(f)).collect();
    files.sort_by_key(|f| (f == "config.json", !f.ends_with(".safetensors"), f.clone()));
    files.dedup();
    let has = |name: &str| files.iter().any(|f| f == name);
    let mut missing = Vec::new();
    if !has("config.json") {
        missing.push("config.json");
    }
    if !has("tokenizer.json") {
        missing.push("tokenizer.json");
    }
    if !files.iter().any(|f| f.ends_with(".safetensors")) {
        missing.push("*.safetensors weights");
    }
    if missing.is_empty() {
        Ok(files)
    } else {
        Err(HubError::NotAModel {
            repo: repo.to_string(),
            missing: missing.join(", "),
        })
    }
}

/// One file to fetch into its blob.
struct FileFetch<'a> {
    client: &'a Client,
    store: &'a RepoStore,
    repo: &'a str,
    commit: &'a str,
    file: &'a str,
    meta: &'a FileMeta,
}

impl FileFetch<'_> {
    /// Fetches the blob unless it is already there, resuming a partial one and retrying after
    /// interruptions; returns the bytes fetched.
    fn run(
        &self,
        progress: &mut dyn FnMut(&str, u64, u64),
        cancel: &AtomicBool,
    ) -> Result<u64, HubError> {
        let etag = &self.meta.etag;
        let blob = self.store.blob(etag);
        let _lock = self.store.lock(etag, cancel)?;
        if let Ok(meta) = std::fs::metadata(&blob) {
            progress(self.file, meta.len(), meta.len());
            return Ok(0);
        }
        let mut part = Partial::open(self.store.incomplete(etag), is_hex(etag, 64))?;
        let total = self.meta.size.unwrap_or(0);
        let mut fetched = 0;
        let mut tries = 0;
        loop {
            match self.meta.size {
                Some(size) if part.bytes_held() == size => {
                    progress(self.file, size, size);
                    break;
                }
                Some(size) if part.bytes_held() > size => part.restart()?,
                _ => {}
            }
            progress(self.file, part.bytes_held(), total);
            let before = fetched;
            let failure =
                match self
                    .client
                    .get(self.repo, self.commit, self.file, part.bytes_held())
                {
                    Ok(body) => {
                        if body.from == 0 && part.bytes_held() > 0 {
                            part.restart()?;
                        }
                        let read =
                            self.copy(body.reader, &mut part, &mut fetched, progress, cancel)?;
                        match (read, self.meta.size) {
                            (Some(detail), _) => detail,
                            (None, Some(size)) if part.bytes_held() < size => {
                                "the connection closed early".to_string()
                            }
                            (None, _) => break,
                        }
                    }
                    Err(GetError::Restart) => {
                        part.restart()?;
                        "the server could not resume the file".to_string()
                    }
                    Err(GetError::Retry(detail)) => detail,
                    Err(GetError::Fatal(e)) => return Err(e),
                };
            tries += 1;
            if tries >= MAX_TRIES {
                return Err(HubError::Interrupted {
                    file: self.file.to_string(),
                    detail: failure,
                    done: part.bytes_held(),
                });
            }
            if fetched == before {
                // Nothing came through: give the network a moment.
                std::thread::sleep(Duration::from_millis(500 * u64::from(tries)));
            }
        }
        part.finish(&blob, etag, self.file)?;
        Ok(fetched)
    }

    /// Appends `reader` to `part` until its end (`None`) or a read error (its text).
    fn copy(
        &self,
        mut reader: Box<dyn Read + Send + Sync>,
        part: &mut Partial,
        fetched: &mut u64,
        progress: &mut dyn FnMut(&str, u64, u64),
        cancel: &AtomicBool,
    ) -> Result<Option<String>, HubError> {
        let total = self.meta.size.unwrap_or(0);
        let mut buf = vec![0; CHUNK];
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(HubError::Cancelled);
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Ok(Some(e.to_string())),
            };
            part.append(&buf[..n])?;
            *fetched += n as u64;
            progress(self.file, part.bytes_held(), total);
        }
    }
}

/// Accepts `org/name` as the hub spells ids: letters, digits, `-`, `_`, `.`; no `--` or `..`.
fn check_repo_id(id: &str) -> Result<(), HubError> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() == 2
        && parts.iter().all(|p| part_ok(p))
        && !id.contains("--")
        && !id.contains("..")
    {
        Ok(())
    } else {
        Err(HubError::InvalidArgument(format!(
            "`{id}` is not a Hugging Face model id; write it as org/name, e.g. \
             vandijklab/C2S-Pythia-410m-cell-type-prediction"
        )))
    }
}

/// Accepts branch, tag and commit names (`main`, `v1.0`, `refs/pr/1`, a commit hash).
fn check_revision(revision: &str) -> Result<(), HubError> {
    let ok = !revision.is_empty()
        && revision
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(HubError::InvalidArgument(format!(
            "`{revision}` is not a revision; use a branch, tag or commit hash such as `main`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::locate::snapshot_dir;
    use crate::hub::test_hub::{COMMIT, FakeHub, Fault, REPO, WEIGHTS, fixture_files, sha256_hex};
    use std::fs;
    use std::path::Path;

    fn config(endpoint: &str, cache: &Path, token: Option<&str>) -> HubConfig {
        HubConfig {
            endpoint: endpoint.to_string(),
            cache_dir: cache.to_path_buf(),
            token: token.map(String::from),
        }
    }

    fn download(endpoint: &str, cache: &Path, token: Option<&str>) -> Result<Downloaded, HubError> {
        let cancel = AtomicBool::new(false);
        download_model(
            &config(endpoint, cache, token),
            REPO,
            "main",
            &mut |_, _, _| {},
            &cancel,
        )
    }

    fn repo_dir(cache: &Path) -> PathBuf {
        cache.join("models--vandijklab--tiny-test")
    }

    fn blob_names(cache: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(repo_dir(cache).join("blobs"))
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn weights_etag() -> String {
        fixture_files()
            .into_iter()
            .find(|f| f.name == WEIGHTS)
            .unwrap()
            .etag
    }

    #[test]
    fn download_lays_out_the_cache_as_huggingface_hub_does() {
        let hub = FakeHub::start(Fault::None);
        let cache = tempfile::tempdir().unwrap();
        let done = download(&hub.endpoint, cache.path(), None).unwrap();
        let repo = repo_dir(cache.path());
        assert_eq!(done.commit, COMMIT);
        assert_eq!(done.snapshot_dir, repo.join("snapshots").join(COMMIT));
        assert_eq!(
            fs::read_to_string(repo.join("refs").join("main")).unwrap(),
            COMMIT
        );
        assert_eq!(done.files.first().map(String::as_str), Some(WEIGHTS));
        assert_eq!(done.files.last().map(String::as_str), Some("config.json"));
        let served = fixture_files();
        assert_eq!(done.files.len(), served.len());
        let mut etags = Vec::new();
        for file in &served {
            let pointer = done.snapshot_dir.join(&file.name);
            assert_eq!(
                fs::read_link(&pointer).unwrap(),
                Path::new("../../blobs").join(&file.etag),
                "{}",
                file.name
            );
            assert_eq!(fs::read(&pointer).unwrap(), file.body, "{}", file.name);
            etags.push(file.etag.clone());
        }
        etags.sort();
        assert_eq!(
            blob_names(cache.path()),
            etags,
            "no .incomplete left behind"
        );
        let total: usize = served.iter().map(|f| f.body.len()).sum();
        assert_eq!(done.bytes_fetched, total as u64);
        assert_eq!(snapshot_dir(cache.path(), REPO), Some(done.snapshot_dir));
        let seen = hub.take_seen();
        for skipped in ["pytorch_model.bin", "onnx", "README", ".gitattributes"] {
            assert!(!seen.iter().any(|s| s.path.contains(skipped)), "{skipped}");
        }
    }

    #[test]
    fn a_second_download_fetches_nothing() {
        let hub = FakeHub::start(Fault::None);
        let cache = tempfile::tempdir().unwrap();
        let first = download(&hub.endpoint, cache.path(), None).unwrap();
        hub.take_seen();
        let second = download(&hub.endpoint, cache.path(), None).unwrap();
        assert_eq!(second.bytes_fetched, 0);
        assert_eq!(second.snapshot_dir, first.snapshot_dir);
        let seen = hub.take_seen();
        assert_eq!(seen.len(), 1, "only the listing: {seen:?}");
        assert!(seen[0].path.starts_with("/api/models/"));
    }

    #[test]
    fn an_interrupted_download_resumes_with_a_range_request() {
        let hub = FakeHub::start(Fault::CutWeightsAfter(100_000));
        let cache = tempfile::tempdir().unwrap();
        let mut last = (0, 0);
        let cancel = AtomicBool::new(false);
        let config = config(&hub.endpoint, cache.path(), None);
        let done = download_model(
            &config,
            REPO,
            "main",
            &mut |file, got, total| {
                if file == WEIGHTS {
                    last = (got, total);
                }
            },
            &cancel,
        )
        .unwrap();
        let cdn: Vec<_> = hub
            .take_seen()
            .into_iter()
            .filter(|s| s.method == "GET" && s.path.starts_with("/cdn/"))
            .collect();
        assert_eq!(cdn.len(), 2, "{cdn:?}");
        assert_eq!(cdn[0].range, None);
        assert_eq!(cdn[1].range.as_deref(), Some("bytes=100000-"));
        let etag = weights_etag();
        let blob = fs::read(repo_dir(cache.path()).join("blobs").join(&etag)).unwrap();
        assert_eq!(sha256_hex(&blob), etag);
        assert_eq!(last, (blob.len() as u64, blob.len() as u64));
        assert!(done.snapshot_dir.join(WEIGHTS).exists());
    }

    #[test]
    fn corrupt_weights_are_refused_and_nothing_lands_in_blobs() {
        let hub = FakeHub::start(Fault::CorruptWeights);
        let cache = tempfile::tempdir().unwrap();
        let err = download(&hub.endpoint, cache.path(), None).unwrap_err();
        assert!(matches!(err, HubError::Checksum { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("corrupt") && message.contains(&weights_etag()),
            "{message}"
        );
        assert!(message.contains("run the download again"), "{message}");
        assert_eq!(blob_names(cache.path()), Vec::<String>::new());
        assert!(!repo_dir(cache.path()).join("refs").exists());
        assert_eq!(snapshot_dir(cache.path(), REPO), None);
    }

    #[test]
    fn a_gated_model_asks_for_hf_token() {
        let hub = FakeHub::start(Fault::RequireToken("hf_secret"));
        let cache = tempfile::tempdir().unwrap();
        let err = download(&hub.endpoint, cache.path(), None).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, HubError::Gated { status: 401, .. }),
            "{message}"
        );
        assert!(
            message.contains("gated") && message.contains("set HF_TOKEN"),
            "{message}"
        );
        assert!(message.contains("accept its licence"), "{message}");
        let err = download(&hub.endpoint, cache.path(), Some("hf_wrong")).unwrap_err();
        assert!(err.to_string().contains("HF_TOKEN that was sent"), "{err}");
        let done = download(&hub.endpoint, cache.path(), Some("hf_secret")).unwrap();
        assert!(done.snapshot_dir.join("config.json").exists());
    }

    #[test]
    fn an_unreachable_hub_is_reported_offline() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let cache = tempfile::tempdir().unwrap();
        let err = download(&endpoint, cache.path(), None).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, HubError::Offline { .. }), "{message}");
        assert!(
            message.contains("cannot reach the Hugging Face hub"),
            "{message}"
        );
        assert!(
            message.contains("config.json, tokenizer.json and the *.safetensors"),
            "{message}"
        );
    }

    #[test]
    fn cancel_keeps_the_partial_file_for_a_resume() {
        let hub = FakeHub::start(Fault::None);
        let cache = tempfile::tempdir().unwrap();
        let config = config(&hub.endpoint, cache.path(), None);
        let cancel = AtomicBool::new(false);
        let err = download_model(
            &config,
            REPO,
            "main",
            &mut |file, got, _| {
                if file == WEIGHTS && got > 0 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
            &cancel,
        )
        .unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        let etag = weights_etag();
        let partial = repo_dir(cache.path())
            .join("blobs")
            .join(format!("{etag}.incomplete"));
        let kept = fs::metadata(&partial).unwrap().len();
        assert!(kept > 0 && kept < 570_272, "{kept}");
        hub.take_seen();

        let done = download(&hub.endpoint, cache.path(), None).unwrap();
        let range = hub
            .take_seen()
            .into_iter()
            .find(|s| s.method == "GET" && s.path.starts_with("/cdn/"))
            .and_then(|s| s.range);
        assert_eq!(range, Some(format!("bytes={kept}-")));
        assert!(!partial.exists());
        let blob = fs::read(done.snapshot_dir.join(WEIGHTS)).unwrap();
        assert_eq!(sha256_hex(&blob), etag);
    }

    #[test]
    fn only_the_files_a_model_needs_are_chosen() {
        let listing = [
            "README.md",
            "config.json",
            "pytorch_model.bin",
            "model.onnx",
            "tf_model.h5",
            "flax_model.msgpack",
            "model.gguf",
            "training_args.pt",
            "onnx/model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "model-00002-of-00002.safetensors",
            "model-00001-of-00002.safetensors",
            "model.safetensors.index.json",
        ]
        .map(String::from)
        .to_vec();
        let files = model_files(REPO, listing).unwrap();
        assert_eq!(
            files,
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "model.safetensors.index.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "config.json",
            ]
        );
        let only_bin = ["config.json", "tokenizer.json", "pytorch_model.bin"].map(String::from);
        let err = model_files(REPO, only_bin.to_vec()).unwrap_err();
        assert!(
            err.to_string().contains("no *.safetensors weights"),
            "{err}"
        );
    }

    #[test]
    fn ids_and_revisions_are_checked() {
        assert!(check_repo_id("vandijklab/pythia-160m-c2s").is_ok());
        for bad in ["gpt2", "a/b/c", "../x", "a/..", "a--b/c", "/x", "a/ b"] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
        for good in ["main", "v1.0", "refs/pr/1", COMMIT] {
            assert!(check_revision(good).is_ok(), "{good}");
        }
        for bad in ["", "..", "a/../b", "/main", "main/", "a b"] {
            assert!(check_revision(bad).is_err(), "{bad}");
        }
    }
}

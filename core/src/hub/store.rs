//! Writing into one repository's folder of the hub cache, as `huggingface_hub` does: blobs
//! named by ETag (written as `{etag}.incomplete`, then renamed), snapshot entries as relative
//! symlinks (copies where the filesystem has none), `refs/{revision}` holding the commit, and
//! `{cache}/.locks/models--{org}--{name}/{etag}.lock` so two downloads (ours or Python's) never
//! write the same blob at once.

use super::HubError;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One repository's folder in the hub cache.
pub(crate) struct RepoStore {
    /// `{cache}/models--{org}--{name}`.
    root: PathBuf,
    /// `{cache}/.locks/models--{org}--{name}`.
    locks: PathBuf,
}

impl RepoStore {
    /// The folder of `repo` (`org/name`) in `cache`.
    pub fn new(cache: &Path, repo: &str) -> Self {
        let folder = format!("models--{}", repo.replace('/', "--"));
        Self {
            root: cache.join(&folder),
            locks: cache.join(".locks").join(folder),
        }
    }

    /// `snapshots/{commit}`.
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    /// `blobs/{etag}`.
    pub fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    /// `blobs/{etag}.incomplete`: a blob being downloaded.
    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// Takes the lock of blob `etag`, waiting while another download holds it; the lock is
    /// released when the returned file is dropped.
    pub fn lock(&self, etag: &str, cancel: &AtomicBool) -> Result<File, HubError> {
        fs::create_dir_all(&self.locks).map_err(HubError::io(&self.locks))?;
        let path = self.locks.join(format!("{etag}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(HubError::io(&path))?;
        loop {
            match file.try_lock() {
                // A filesystem without locks (some network mounts): go on unlocked, as the
                // lock only guards against two downloads of the same blob at once.
                Ok(()) | Err(fs::TryLockError::Error(_)) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) => {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(HubError::Cancelled);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Points `snapshots/{commit}/{file}` at `blobs/{etag}`: a relative symlink, or a copy where
    /// symlinks cannot be made. Replaces what was there atomically.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<(), HubError> {
        let dir = self.snapshot(commit);
        fs::create_dir_all(&dir).map_err(HubError::io(&dir))?;
        let pointer = dir.join(file);
        let target = Path::new("..").join("..").join("blobs").join(etag);
        if fs::read_link(&pointer).is_ok_and(|t| t == target) {
            return Ok(());
        }
        let tmp = dir.join(format!(".{file}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        if symlink(&target, &tmp).is_err() {
            fs::copy(self.blob(etag), &tmp).map_err(HubError::io(&tmp))?;
        }
        fs::rename(&tmp, &pointer).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            HubError::Io {
                path: pointer,
                source,
            }
        })
    }

    /// Writes `refs/{revision}` = `commit` (no newline, as `huggingface_hub` writes it).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        let path = self.root.join("refs").join(revision);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(HubError::io(dir))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(HubError::io(dir))?;
        tmp.write_all(commit.as_bytes())
            .map_err(HubError::io(tmp.path()))?;
        tmp.persist(&path).map_err(|e| HubError::Io {
            path,
            source: e.error,
        })?;
        Ok(())
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(not(any(unix, windows)))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// A blob being downloaded: `blobs/{etag}.incomplete`, with the sha256 of what it holds so far
/// when the blob is to be verified.
pub(crate) struct Partial {
    path: PathBuf,
    file: File,
    len: u64,
    hasher: Option<Sha256>,
}

impl Partial {
    /// Opens (or creates) `path`, keeping what an earlier download left there; with `verify`,
    /// hashes those bytes so the final checksum covers the whole file.
    pub fn open(path: PathBuf, verify: bool) -> Result<Self, HubError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(HubError::io(dir))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(HubError::io(&path))?;
        let mut hasher = verify.then(Sha256::new);
        if let Some(h) = hasher.as_mut() {
            io::copy(&mut file, h).map_err(HubError::io(&path))?;
        }
        let len = file.seek(SeekFrom::End(0)).map_err(HubError::io(&path))?;
        Ok(Self {
            path,
            file,
            len,
            hasher,
        })
    }

    /// Bytes held so far.
    pub fn bytes_held(&self) -> u64 {
        self.len
    }

    /// Drops what is held, to download the file from its start.
    pub fn restart(&mut self) -> Result<(), HubError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)))
            .map_err(HubError::io(&self.path))?;
        self.len = 0;
        if self.hasher.is_some() {
            self.hasher = Some(Sha256::new());
        }
        Ok(())
    }

    /// Appends `bytes` (straight to the file, so an interruption keeps them).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), HubError> {
        self.file
            .write_all(bytes)
            .map_err(HubError::io(&self.path))?;
        self.len += bytes.len() as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(bytes);
        }
        Ok(())
    }

    /// Checks the sha256 against `expected` (when verifying), then renames the file to `blob`.
    /// On a mismatch the partial file is deleted and nothing lands in `blobs/`.
    pub fn finish(self, blob: &Path, expected: &str, name: &str) -> Result<(), HubError> {
        let Self {
            path, file, hasher, ..
        } = self;
        if let Some(h) = hasher {
            let actual = format!("{:x}", h.finalize());
            if !actual.eq_ignore_ascii_case(expected) {
                drop(file);
                let _ = fs::remove_file(&path);
                return Err(HubError::Checksum {
                    file: name.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        file.sync_all().map_err(HubError::io(&path))?;
        drop(file);
        fs::rename(&path, blob).map_err(HubError::io(blob))
    }
}

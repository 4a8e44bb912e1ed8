//! Finding models on disk: a Hugging Face model directory given by path, or a model id
//! (`org/name`) resolved through the Hugging Face cache layout
//! (`$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`, then
//! `models--org--name/snapshots/<rev>/`), as `transformers` leaves it after a download.

use super::EngineError;
use std::path::{Path, PathBuf};

/// A model found locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    /// The Hugging Face id (`org/name`) when found in the cache, else the directory name.
    pub name: String,
    /// The directory holding `config.json`.
    pub dir: PathBuf,
    /// `config.json`'s `model_type`, if readable.
    pub model_type: Option<String>,
    /// Total size of the safetensors files in bytes.
    pub weight_bytes: u64,
}

/// The Hugging Face hub cache directory.
pub fn hf_hub_cache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(p).join("huggingface").join("hub"));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    Some(
        PathBuf::from(home)
            .join(".cache")
            .join("huggingface")
            .join("hub"),
    )
}

/// Resolves `DIR_OR_ID` to a model directory.
pub fn resolve_model(spec: &str) -> Result<PathBuf, EngineError> {
    let path = Path::new(spec);
    if path.is_dir() {
        if path.join("config.json").exists() {
            return Ok(path.to_path_buf());
        }
        return Err(EngineError::NotFound {
            message: format!(
                "{} has no config.json; choose the folder of a Hugging Face model (the one that \
                 holds config.json, tokenizer.json and the *.safetensors weights)",
                path.display()
            ),
        });
    }
    let parts: Vec<&str> = spec.split('/').collect();
    let looks_like_id = parts.len() == 2
        && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.'))
        && !path.exists();
    if looks_like_id && let Some(cache) = hf_hub_cache() {
        if let Some(dir) = snapshot_dir(&cache, spec) {
            return Ok(dir);
        }
        return Err(EngineError::NotFound {
            message: format!(
                "model `{spec}` is not in the Hugging Face cache at {}; download it first \
                 (e.g. `huggingface-cli download {spec}`) or pass a model directory",
                cache.display()
            ),
        });
    }
    Err(EngineError::NotFound {
        message: format!(
            "`{spec}` is neither a model directory nor a Hugging Face id (org/name); pass the \
             directory that holds config.json"
        ),
    })
}

/// The snapshot directory of `id` in a hub cache: the one `refs/main` names, else the newest.
pub fn snapshot_dir(cache: &Path, id: &str) -> Option<PathBuf> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if dir.join("config.json").exists() {
            return Some(dir);
        }
    }
    let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("config.json").exists())
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, p)| p)
}

/// Lists models under `root` (model directories up to two levels deep), or in the HF cache.
pub fn list_models(root: Option<&Path>) -> Result<Vec<LocalModel>, EngineError> {
    let mut found = Vec::new();
    match root {
        Some(root) => {
            if !root.is_dir() {
                return Err(EngineError::NotFound {
                    message: format!("{} is not a directory", root.display()),
                });
            }
            if root.join("config.json").exists() {
                found.push(describe(root, None));
            }
            for entry in read_dir_sorted(root) {
                if entry.join("config.json").exists() {
                    found.push(describe(&entry, None));
                } else if entry.is_dir() {
                    for sub in read_dir_sorted(&entry) {
                        if sub.join("config.json").exists() {
                            found.push(describe(&sub, None));
                        }
                    }
                }
            }
            // A hub cache passed explicitly.
            found.extend(list_cache(root));
        }
        None => {
            if let Some(cache) = hf_hub_cache() {
                found.extend(list_cache(&cache));
            }
        }
    }
    Ok(found)
}

fn list_cache(cache: &Path) -> Vec<LocalModel> {
    read_dir_sorted(cache)
        .into_iter()
        .filter_map(|p| {
            let name = p
                .file_name()?
                .to_str()?
                .strip_prefix("models--")?
                .to_string();
            let id = name.replacen("--", "/", 1);
            let dir = snapshot_dir(cache, &id)?;
            Some(describe(&dir, Some(id)))
        })
        .collect()
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn describe(dir: &Path, id: Option<String>) -> LocalModel {
    let model_type = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("model_type")
                .and_then(|m| m.as_str())
                .map(String::from)
        });
    let weight_bytes = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    LocalModel {
        name: id.unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        dir: dir.to_path_buf(),
        model_type,
        weight_bytes,
    }
}

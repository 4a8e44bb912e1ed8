//! Downloading models from the Hugging Face hub into the standard Hugging Face cache, laid out
//! exactly as `huggingface_hub` lays it out, so Python tools find the files too:
//!
//! ```text
//! {cache}/models--{org}--{name}/blobs/{etag}                 the bytes, named by their ETag
//! {cache}/models--{org}--{name}/snapshots/{commit}/{file}    relative symlink ../../blobs/{etag}
//! {cache}/models--{org}--{name}/refs/{revision}              the commit hash the revision named
//! ```
//!
//! [`download_model`] lists a revision's files, keeps the ones a model needs
//! ([`is_model_file`]), and fetches each into `blobs/{etag}.incomplete`, resuming with a `Range`
//! request after an interruption, verifying the sha256 of LFS files, and renaming into place.
//! [`catalogue`] lists the published C2S checkpoints.

pub mod catalogue;
mod download;
mod error;
mod http;
mod store;
#[cfg(test)]
mod test_hub;

pub use download::{Downloaded, download_model, is_model_file};
pub use error::HubError;

use crate::engine::locate::hf_hub_cache;
use std::path::PathBuf;

/// The public hub, used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where to download from and to, and with which credentials.
#[derive(Clone)]
pub struct HubConfig {
    /// The hub's address without a trailing slash, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// The Hugging Face hub cache to download into.
    pub cache_dir: PathBuf,
    /// Access token for gated and private models, sent as `Authorization: Bearer`.
    pub token: Option<String>,
}

impl HubConfig {
    /// The configuration `huggingface_hub` would use: `$HF_ENDPOINT` (else the public hub), the
    /// cache of [`hf_hub_cache`], and `$HF_TOKEN`.
    pub fn from_env() -> Result<Self, HubError> {
        let cache_dir = hf_hub_cache().ok_or_else(|| {
            HubError::InvalidArgument(
                "no Hugging Face cache folder: neither HF_HUB_CACHE, HF_HOME nor HOME is set; \
                 set HF_HUB_CACHE to the folder to download into"
                    .into(),
            )
        })?;
        Ok(Self::new(cache_dir))
    }

    /// Downloads into `cache_dir`, from `$HF_ENDPOINT` (else the public hub), with `$HF_TOKEN`.
    pub fn new(cache_dir: PathBuf) -> Self {
        let token = std::env::var("HF_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Self {
            endpoint: default_endpoint(),
            cache_dir,
            token,
        }
    }

    /// This configuration with another hub address (a trailing `/` is dropped).
    pub fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = endpoint.trim_end_matches('/').to_string();
        self
    }
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of logs.
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// `$HF_ENDPOINT` without a trailing `/`, or [`DEFAULT_ENDPOINT`].
pub fn default_endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
}

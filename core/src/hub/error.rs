//! What can go wrong with a download, each variant naming the problem and the way out.

use std::path::PathBuf;

/// A download error. `Display` gives what went wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The id is not of the form `org/name`, or the revision is not a usable name.
    #[error("{0}")]
    InvalidArgument(String),
    /// The hub could not be reached at all (no network, DNS failure, refused connection).
    #[error(
        "cannot reach the Hugging Face hub at {endpoint} ({detail}). Check the network \
         connection (or set HF_ENDPOINT to a mirror), or copy a model in instead: open a folder \
         that holds config.json, tokenizer.json and the *.safetensors weights, or place the model \
         in the Hugging Face cache at {cache}"
    )]
    Offline {
        /// The hub address that was tried.
        endpoint: String,
        /// What the network layer said.
        detail: String,
        /// The cache a copied-in model would go to.
        cache: PathBuf,
    },
    /// The hub refused access (HTTP 401/403): a gated or private model, or a bad token.
    #[error(
        "model `{repo}` is gated or private (HTTP {status}{token_note}): accept its licence on \
         {endpoint}/{repo} while logged in, create an access token at \
         {endpoint}/settings/tokens, and set HF_TOKEN to it before downloading"
    )]
    Gated {
        /// The model id.
        repo: String,
        /// 401 or 403.
        status: u16,
        /// The hub address.
        endpoint: String,
        /// Empty, or a note that the token that was sent was refused.
        token_note: &'static str,
    },
    /// The model, revision or file does not exist on the hub (HTTP 404).
    #[error("{what} was not found on {endpoint} (HTTP 404); check the model id and the revision")]
    NotFound {
        /// What was asked for.
        what: String,
        /// The hub address.
        endpoint: String,
    },
    /// Any other HTTP error status.
    #[error("{url} answered HTTP {status}; try again later")]
    Http {
        /// The address asked.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The hub answered with something this client cannot use.
    #[error("unexpected answer from {url}: {detail}")]
    BadResponse {
        /// The address asked.
        url: String,
        /// What is wrong with the answer.
        detail: String,
    },
    /// The model lacks files the engine needs.
    #[error(
        "model `{repo}` has no {missing} on the hub; C2S Studio needs config.json, \
         tokenizer.json and *.safetensors weights (a model with only .bin weights must be \
         converted to safetensors first)"
    )]
    NotAModel {
        /// The model id.
        repo: String,
        /// The missing files.
        missing: String,
    },
    /// The connection kept failing in the middle of a file.
    #[error(
        "the download of {file} was interrupted ({detail}) after {done} bytes; run the \
         download again to resume from there"
    )]
    Interrupted {
        /// The file being downloaded.
        file: String,
        /// What the network layer said.
        detail: String,
        /// Bytes kept for the resume.
        done: u64,
    },
    /// The downloaded bytes do not have the checksum the hub announced.
    #[error(
        "the download of {file} is corrupt: its sha256 is {actual} but the hub announced \
         {expected}; the partial file was deleted, run the download again"
    )]
    Checksum {
        /// The file.
        file: String,
        /// The sha256 the hub announced.
        expected: String,
        /// The sha256 of what arrived.
        actual: String,
    },
    /// The caller raised the cancel flag.
    #[error("download cancelled; run it again to resume where it stopped")]
    Cancelled,
    /// Reading or writing the cache failed.
    #[error("cannot write {path}: {source}; check the free disk space and the permissions there")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl HubError {
    /// Whether this error is a user cancellation rather than a failure.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, HubError::Cancelled)
    }

    /// An [`HubError::Io`] about `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HubError {
        let path = path.into();
        move |source| HubError::Io { path, source }
    }
}

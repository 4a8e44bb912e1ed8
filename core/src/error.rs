//! Errors the core reports to users: each names the problem and what to do about it.

use std::path::PathBuf;

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A user-facing error. `Display` gives one readable sentence (or two: what went wrong, what to do).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read at the OS level.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not an HDF5/AnnData file, or is damaged.
    #[error(
        "{path} is not a readable .h5ad file ({detail}); check that it is an AnnData file written by anndata/scanpy and that it was copied completely"
    )]
    NotH5ad {
        /// The file involved.
        path: PathBuf,
        /// What the HDF5 layer said.
        detail: String,
    },
    /// The file is HDF5 but does not have the AnnData structure we need.
    #[error("{path}: {detail}")]
    Malformed {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, and what to do.
        detail: String,
    },
    /// The data cannot be used for the requested operation (e.g. scaled values for sentences).
    #[error("{0}")]
    InvalidData(String),
    /// A user-supplied argument is wrong (unknown column, matrix, gene ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The user cancelled the operation.
    #[error("cancelled")]
    Cancelled,
    /// Writing an output file failed; the input file is untouched.
    #[error("cannot write {path}: {detail}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl Error {
    /// Whether this error is a user cancellation rather than a failure.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }
}

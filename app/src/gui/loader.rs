//! Where datasets come from: files (`.h5ad`) or the built-in demo. Loading runs inside a job.

use std::io::Read;
use std::path::{Path, PathBuf};

use c2s_core::dataset::Dataset;

use super::demo;
use super::jobs::{JobError, Progress};

/// A dataset to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadRequest {
    /// An `.h5ad` file.
    File(PathBuf),
    /// The generated demo dataset with this many cells.
    Demo(usize),
}

impl LoadRequest {
    /// Job title.
    pub fn title(&self) -> String {
        match self {
            LoadRequest::File(p) => format!("Opening {}", display_name(p)),
            LoadRequest::Demo(n) => format!("Generating demo dataset ({n} cells)"),
        }
    }

    /// Name of the opened dataset in the dataset list.
    pub fn dataset_title(&self) -> String {
        match self {
            LoadRequest::File(p) => display_name(p),
            LoadRequest::Demo(_) => "demo".into(),
        }
    }
}

/// The file name of `path`, for display.
pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Loads what `request` asks for. Runs on a worker thread.
pub fn load(request: &LoadRequest, progress: &Progress) -> Result<Dataset, JobError> {
    match request {
        LoadRequest::Demo(n) => demo::generate(*n, progress),
        LoadRequest::File(path) => {
            check_h5ad(path)?;
            progress.set(0.0, "reading");
            read_h5ad(path, progress)
        }
    }
}

/// Cheap checks with clear messages before the reader runs: the file exists, is a file, and
/// starts with the HDF5 signature.
pub fn check_h5ad(path: &Path) -> Result<(), JobError> {
    let name = display_name(path);
    let meta = std::fs::metadata(path)
        .map_err(|e| JobError::Failed(format!("cannot open '{}': {e}", path.display())))?;
    if !meta.is_file() {
        return Err(JobError::Failed(format!("'{name}' is not a file")));
    }
    let mut signature = [0u8; 8];
    let read = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut signature))
        .is_ok();
    if !read || signature != *b"\x89HDF\r\n\x1a\n" {
        return Err(JobError::Failed(format!(
            "'{name}' is not an .h5ad file (no HDF5 signature); C2S Studio opens AnnData .h5ad files"
        )));
    }
    Ok(())
}

/// Reads an `.h5ad` with the core reader.
fn read_h5ad(path: &Path, progress: &Progress) -> Result<Dataset, JobError> {
    let _ = progress;
    Err(JobError::Failed(format!(
        "cannot read '{}': this build has no .h5ad reader yet (c2s-core io::h5ad)",
        display_name(path)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_give_readable_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.h5ad");
        let err = load(&LoadRequest::File(missing), &Progress::default()).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
        let text = dir.path().join("notes.h5ad");
        std::fs::write(&text, "hello, not hdf5").unwrap();
        let err = load(&LoadRequest::File(text), &Progress::default()).unwrap_err();
        assert!(err.to_string().contains("not an .h5ad file"), "{err}");
        let err = load(
            &LoadRequest::File(dir.path().to_path_buf()),
            &Progress::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a file"), "{err}");
    }

    #[test]
    fn demo_loads() {
        let d = load(&LoadRequest::Demo(100), &Progress::default()).unwrap();
        assert_eq!(d.n_cells(), 100);
    }
}

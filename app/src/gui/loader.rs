//! Where datasets come from: `.h5ad` files (read by `c2s_core::io::h5ad`) or the built-in demo.
//! Loading runs inside a job.

use std::path::{Path, PathBuf};

use c2s_core::dataset::{Dataset, MatrixChoice};
use c2s_core::io::h5ad::{ReadOptions, read_h5ad};

use super::demo;
use super::jobs::{JobError, Progress};

/// A dataset to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadRequest {
    /// An `.h5ad` file, with the matrix to load (`None`: the reader's default, raw counts when
    /// the file has them).
    File(PathBuf, Option<MatrixChoice>),
    /// The generated demo dataset with this many cells.
    Demo(usize),
}

impl LoadRequest {
    /// Job title.
    pub fn title(&self) -> String {
        match self {
            LoadRequest::File(p, None) => format!("Opening {}", display_name(p)),
            LoadRequest::File(p, Some(m)) => format!("Loading {m} of {}", display_name(p)),
            LoadRequest::Demo(n) => format!("Generating demo dataset ({n} cells)"),
        }
    }

    /// Name of the opened dataset in the dataset list.
    pub fn dataset_title(&self) -> String {
        match self {
            LoadRequest::File(p, _) => display_name(p),
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
        LoadRequest::File(path, matrix) => {
            if path.is_dir() {
                return Err(JobError::Failed(format!(
                    "'{}' is a folder; choose an .h5ad file",
                    display_name(path)
                )));
            }
            let options = ReadOptions {
                matrix: matrix.clone(),
                gene_column: None,
                load_matrix: true,
            };
            Ok(read_h5ad(path, &options, progress.core())?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_give_readable_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.h5ad");
        let err = load(&LoadRequest::File(missing, None), &Progress::default()).unwrap_err();
        assert!(err.to_string().contains("missing.h5ad"), "{err}");
        let text = dir.path().join("notes.h5ad");
        std::fs::write(&text, "hello, not hdf5").unwrap();
        let err = load(&LoadRequest::File(text, None), &Progress::default()).unwrap_err();
        assert!(
            err.to_string().contains("not a readable .h5ad file"),
            "{err}"
        );
        let err = load(
            &LoadRequest::File(dir.path().to_path_buf(), None),
            &Progress::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
    }

    #[test]
    fn demo_loads() {
        let d = load(&LoadRequest::Demo(100), &Progress::default()).unwrap();
        assert_eq!(d.n_cells(), 100);
    }
}

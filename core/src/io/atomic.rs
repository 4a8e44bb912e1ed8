//! Atomic output: write to a temporary file beside the target, then rename over it, so a crash
//! or error never leaves a half-written file and an existing input is never touched.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Refuses to write to a path that is (or resolves to) one of `inputs`.
pub fn ensure_not_input(output: &Path, inputs: &[&Path]) -> Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let out = canon(output);
    if inputs.iter().any(|i| canon(i) == out) {
        return Err(Error::InvalidArgument(format!(
            "refusing to overwrite the input file {}; choose a new output path",
            output.display()
        )));
    }
    Ok(())
}

/// Creates `path` atomically: `write` fills a temporary file in the same directory, which is
/// renamed to `path` only if `write` succeeds.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let fail = |detail: String| Error::Write {
        path: PathBuf::from(path),
        detail,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(fail(format!("folder {} does not exist", dir.display())));
    }
    let tmp = tempfile::Builder::new()
        .prefix(".c2s-partial-")
        .tempfile_in(&dir)
        .map_err(|e| fail(e.to_string()))?;
    let tmp_path = tmp.path().to_path_buf();
    write(&tmp_path)?;
    // Temporary files are private (0600); outputs get the usual permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path).map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}

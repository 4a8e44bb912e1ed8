//! Resources that ship inside the program, named `builtin:NAME` wherever a file is asked for:
//! gene-set libraries ([`crate::genesets::builtin`]) and the demo perturbation library
//! ([`crate::screen::library::DEMO_LIBRARY`]). Such a name is kept as written (never made
//! absolute or joined to a spec's folder), and one that names nothing bundled is refused with
//! the names that are.

use std::path::{Path, PathBuf};

/// The prefix that names a bundled resource instead of a file.
pub const PREFIX: &str = "builtin:";

/// The name after [`PREFIX`] when `path` names a bundled resource; `None` for a file path.
pub fn name(path: &Path) -> Option<&str> {
    path.to_str()?.trim().strip_prefix(PREFIX)
}

/// Whether `path` names a bundled resource rather than a file.
pub fn is_bundled(path: &Path) -> bool {
    name(path).is_some()
}

/// `path` under `base` when it is a relative file path; absolute paths and bundled names as
/// they are.
pub fn resolve(path: &Path, base: &Path) -> PathBuf {
    if path.is_relative() && !is_bundled(path) {
        base.join(path)
    } else {
        path.to_path_buf()
    }
}

/// The message for `builtin:NAME` when no bundled `what` has that name; `known` are the names
/// that do (with the prefix).
pub fn unknown(what: &str, name: &str, known: &[String]) -> String {
    format!(
        "there is no built-in {what} `{name}`; the built-in ones are {}",
        known.join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_names_stay_as_written_and_files_resolve() {
        let base = Path::new("/specs");
        assert_eq!(name(Path::new(" builtin:hallmark ")), Some("hallmark"));
        assert_eq!(name(Path::new("sets/builtin:x.gmt")), None);
        assert_eq!(
            resolve(Path::new("builtin:hallmark"), base),
            Path::new("builtin:hallmark")
        );
        assert_eq!(
            resolve(Path::new("sets.gmt"), base),
            Path::new("/specs/sets.gmt")
        );
        assert_eq!(resolve(Path::new("/a/b.gmt"), base), Path::new("/a/b.gmt"));
        let e = unknown(
            "gene-set library",
            "kegg",
            &["builtin:a".into(), "builtin:b".into()],
        );
        assert!(
            e.contains("`kegg`") && e.contains("builtin:a and builtin:b"),
            "{e}"
        );
    }
}

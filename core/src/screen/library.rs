//! The perturbation library of a screen: the names a model is asked about, read from a text file
//! (one name per line) or from the `pert_iname` column metadata of an L1000 GCT (`.gct` or
//! `.gct.gz`, version 1.3).

use crate::bundled;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

/// The demo library that ships with the program, named so wherever a library file is asked
/// for: the 59 treated perturbations (55 compounds, 4 positive controls) of the LINCS L1000
/// plate LJP005 (A375, 24 h), `resources/screen/l1000_demo_library.txt`.
pub const DEMO_LIBRARY: &str = "builtin:l1000-demo";

/// Reads a library ([`DEMO_LIBRARY`] names the bundled one): a GCT (`.gct`, `.gct.gz`) gives
/// the distinct `pert_iname` values of its
/// treated wells in plate order (vehicle-control wells, `pert_type` starting with `ctl_`, are
/// left out); any other file is text with one name per line, where blank lines and lines
/// starting with `#` are skipped, surrounding whitespace is trimmed, and a name listed twice is
/// an error naming it and its lines.
pub fn read_library(path: &Path) -> Result<Vec<String>> {
    if let Some(name) = bundled::name(path) {
        if Some(name) != bundled::name(Path::new(DEMO_LIBRARY)) {
            return Err(Error::InvalidArgument(bundled::unknown(
                "perturbation library",
                name,
                &[DEMO_LIBRARY.to_string()],
            )));
        }
        return text_names(include_str!(
            "../../../resources/screen/l1000_demo_library.txt"
        ))
        .map_err(Error::InvalidData);
    }
    let text = read_text(path)?;
    let malformed = |detail: String| Error::Malformed {
        path: path.to_path_buf(),
        detail,
    };
    let names = if is_gct(path) {
        gct_perturbations(&text).map_err(malformed)?
    } else {
        text_names(&text).map_err(malformed)?
    };
    if names.is_empty() {
        return Err(malformed(
            "the library names no perturbation; list one name per line".into(),
        ));
    }
    Ok(names)
}

fn is_gct(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".gct") || name.ends_with(".gct.gz")
}

fn read_text(path: &Path) -> Result<String> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Malformed {
                path: path.to_path_buf(),
                detail: format!("not a readable gzip file ({e})"),
            })?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|e| Error::Malformed {
        path: path.to_path_buf(),
        detail: format!(
            "not UTF-8 text (invalid byte at {}); save the library as UTF-8 text",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Names of a one-name-per-line text; duplicates are an error naming them.
fn text_names(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut lines: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let name = raw.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        let seen = lines.entry(name).or_default();
        if seen.is_empty() {
            names.push(name.to_string());
        }
        seen.push(i + 1);
    }
    let dups: Vec<String> = lines
        .iter()
        .filter(|(_, l)| l.len() > 1)
        .map(|(n, l)| {
            let l: Vec<String> = l.iter().map(|x| x.to_string()).collect();
            format!("{n} (lines {})", l.join(", "))
        })
        .collect();
    if !dups.is_empty() {
        return Err(format!(
            "{} duplicated name(s): {}; list each perturbation once",
            dups.len(),
            dups.join("; ")
        ));
    }
    Ok(names)
}

/// Distinct `pert_iname` values of a GCT 1.3 text, in column order, without vehicle controls.
fn gct_perturbations(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut lines = text.lines();
    let version = lines.next().unwrap_or("").trim();
    if version != "#1.3" {
        return Err(format!(
            "expected a GCT 1.3 file (first line `#1.3`), found `{version}`; \
             only GCT 1.3 carries the pert_iname column metadata"
        ));
    }
    let dims: Vec<usize> = lines
        .next()
        .unwrap_or("")
        .split('\t')
        .map(|f| f.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| "line 2 must hold four counts: rows, columns, row and column metadata")?;
    let [_, n_cols, n_row_meta, n_col_meta] = dims[..] else {
        return Err("line 2 must hold four counts: rows, columns, row and column metadata".into());
    };
    lines.next().ok_or("the header line (line 3) is missing")?;
    let mut inames = None;
    let mut types = None;
    for i in 0..n_col_meta {
        let line = lines.next().ok_or(format!(
            "column metadata line {} of {n_col_meta} is missing",
            i + 1
        ))?;
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 1 + n_row_meta + n_cols {
            return Err(format!(
                "line {} has {} fields, expected {}",
                i + 4,
                fields.len(),
                1 + n_row_meta + n_cols
            ));
        }
        let values: Vec<&str> = fields[1 + n_row_meta..].iter().map(|v| v.trim()).collect();
        match fields[0].trim() {
            "pert_iname" => inames = Some(values),
            "pert_type" => types = Some(values),
            _ => {}
        }
    }
    let inames = inames.ok_or(
        "the GCT has no pert_iname column metadata; give a text library, one name per line",
    )?;
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for (i, name) in inames.iter().enumerate() {
        let control = types.as_ref().is_some_and(|t| t[i].starts_with("ctl_"));
        if !control && !name.is_empty() && seen.insert(*name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_library_skips_blanks_and_comments_and_names_duplicates() {
        assert_eq!(
            text_names("# drugs\n  imatinib \n\nDMSO\r\n").unwrap(),
            vec!["imatinib", "DMSO"]
        );
        let e = text_names("a\nb\na\nc\nb\na\n").unwrap_err();
        assert!(e.contains("a (lines 1, 3, 6)"), "{e}");
        assert!(e.contains("b (lines 2, 5)"), "{e}");
        assert!(e.starts_with("2 duplicated"), "{e}");
    }

    #[test]
    fn gct_gives_distinct_treatments_without_vehicle_controls() {
        let gct = "#1.3\n2\t4\t1\t2\nid\tsym\tw1\tw2\tw3\tw4\n\
                   pert_iname\tna\tDMSO\tdrugA\tdrugB\tdrugA\n\
                   pert_type\tna\tctl_vehicle\ttrt_cp\ttrt_cp\ttrt_cp\n\
                   g1\tG1\t1\t2\t3\t4\ng2\tG2\t1\t2\t3\t4\n";
        assert_eq!(gct_perturbations(gct).unwrap(), vec!["drugA", "drugB"]);
        let no_iname = gct.replace("pert_iname", "pert_id");
        assert!(
            gct_perturbations(&no_iname)
                .unwrap_err()
                .contains("pert_iname")
        );
        assert!(gct_perturbations("#1.2\n").unwrap_err().contains("GCT 1.3"));
        let short = gct.replace("\tdrugB\t", "\t");
        assert!(gct_perturbations(&short).unwrap_err().contains("fields"));
    }

    #[test]
    fn reads_the_shared_l1000_plate() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/perturbation/l1000_LJP005_A375_24H.gct.gz");
        if !path.exists() {
            crate::test_support::skip("shared L1000 plate");
            return;
        }
        let names = read_library(&path).unwrap();
        // 55 compounds and 4 positive controls; the DMSO wells are vehicle controls.
        assert_eq!(names.len(), 59, "{names:?}");
        assert!(!names.iter().any(|n| n == "DMSO"));
    }

    #[test]
    fn empty_library_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lib.txt");
        std::fs::write(&p, "# nothing\n\n").unwrap();
        let e = read_library(&p).unwrap_err().to_string();
        assert!(e.contains("names no perturbation"), "{e}");
    }

    #[test]
    fn the_demo_library_is_the_shared_plates_treated_perturbations() {
        let demo = read_library(Path::new(DEMO_LIBRARY)).unwrap();
        assert_eq!(demo.len(), 59);
        let e = read_library(Path::new("builtin:l1000-full"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`l1000-full`") && e.contains(DEMO_LIBRARY),
            "{e}"
        );
        assert_eq!(&demo[..2], ["CP-724714", "neratinib"]);
        let plate = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/perturbation/l1000_LJP005_A375_24H.gct.gz");
        if !plate.exists() {
            eprintln!("skipped the comparison: {} is absent", plate.display());
            return;
        }
        assert_eq!(demo, read_library(&plate).unwrap());
    }
}

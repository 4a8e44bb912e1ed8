//! Parity with the `cell2sentence` 1.2.0 package on the shared PBMC file: identical sentences
//! with `--ties reference`, and the same rank → expression fit. Skips when `../shared/data` or
//! the committed fixtures are absent.

use crate::common::*;
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/sentences")
        .join(name)
}

#[test]
fn pbmc_sentences_and_fit_match_the_package() {
    let Some(data) = shared_data() else {
        c2s_core::test_support::skip("../shared/data is absent");
        return;
    };
    let input = data.join("expression/pbmc68k_reduced.h5ad");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pbmc.parquet");
    let fit_out = dir.path().join("fit.json");
    let run = cli(&[
        "convert",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--matrix",
        "raw",
        "--preprocess",
        "none",
        "--ties",
        "reference",
        "--fit-out",
        fit_out.to_str().unwrap(),
        "--obs",
        "bulk_labels",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let df = read_parquet(&out);
    let ours: Vec<(String, String)> = strings(&df, "cell_id")
        .into_iter()
        .zip(strings(&df, "cell_sentence"))
        .collect();
    assert_eq!(ours.len(), 700);
    assert_eq!(strings(&df, "bulk_labels")[0], "CD14+ Monocyte");

    let expected = std::fs::read_to_string(fixture("pbmc68k_raw_sentences.tsv")).expect("fixture");
    let reference: Vec<(String, String)> = expected
        .lines()
        .skip(1)
        .map(|l| {
            let (a, b) = l.split_once('\t').expect("two columns");
            (a.to_string(), b.to_string())
        })
        .collect();
    assert_eq!(reference.len(), 700);
    let mismatches = ours.iter().zip(&reference).filter(|(a, b)| a != b).count();
    assert_eq!(
        mismatches,
        0,
        "first: {:?}",
        ours.iter().zip(&reference).find(|(a, b)| a != b)
    );

    let fit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fit_out).unwrap()).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("pbmc68k_raw_fit_ln.json")).unwrap())
            .unwrap();
    for key in ["slope", "intercept", "r2", "pearson", "spearman"] {
        let (a, b) = (fit[key].as_f64().unwrap(), reference[key].as_f64().unwrap());
        assert!((a - b).abs() < 1e-4, "{key}: ours {a}, reference {b}");
    }
}

fn reference_sentences(name: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(fixture(name))
        .expect("fixture")
        .lines()
        .skip(1)
        .map(|l| {
            let (a, b) = l.split_once('\t').unwrap_or((l, ""));
            (a.to_string(), b.to_string())
        })
        .collect()
}

fn ours(input: &str, matrix: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    let input = fixture(input);
    let run = cli(&[
        "convert",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--matrix",
        matrix,
        "--preprocess",
        "none",
        "--ties",
        "reference",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let df = read_parquet_or_csv(&out);
    strings(&df, "cell_id")
        .into_iter()
        .zip(strings(&df, "cell_sentence"))
        .collect()
}

fn read_parquet_or_csv(path: &Path) -> polars::prelude::DataFrame {
    use polars::prelude::*;
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .unwrap()
        .finish()
        .unwrap()
}

/// Files written by anndata 0.12 (CSR, CSC, dense f64, unsorted CSR, realistic annotations) and
/// anndata 0.7.8 give exactly the package's sentences.
#[test]
fn anndata_written_fixtures_match_the_package() {
    for (file, tsv) in [
        ("ties_csr.h5ad", "ties_csr_sentences.tsv"),
        ("ties_csc.h5ad", "ties_csc_sentences.tsv"),
        ("ties_dense.h5ad", "ties_dense_sentences.tsv"),
        ("ties_csr_unsorted.h5ad", "ties_csr_unsorted_sentences.tsv"),
        ("obs_meta.h5ad", "obs_meta_sentences.tsv"),
        ("legacy_anndata07.h5ad", "legacy_anndata07_sentences.tsv"),
    ] {
        assert_eq!(ours(file, "x"), reference_sentences(tsv), "{file}");
    }
}

/// The package appends explicitly stored zeros as words; we leave them out, so each of our
/// sentences is the package's minus that tail.
#[test]
fn explicit_zeros_are_left_out() {
    let ours = ours("explicit_zeros_csr.h5ad", "x");
    let reference = reference_sentences("explicit_zeros_csr_sentences.tsv");
    assert_eq!(ours.len(), reference.len());
    let mut shorter = 0;
    for ((id, s), (rid, r)) in ours.iter().zip(&reference) {
        assert_eq!(id, rid);
        assert!(
            r.starts_with(s.as_str()),
            "{id}: {s:?} is not a prefix of {r:?}"
        );
        shorter += usize::from(s.len() < r.len());
    }
    assert!(shorter > 0);
    assert_eq!(
        ours[0].1, "",
        "a cell with only stored zeros has no sentence"
    );
}

/// Upstream shifts every column after a duplicate name onto the wrong gene; we keep names aligned.
#[test]
fn duplicate_names_stay_aligned() {
    let ours = ours("dup_names_csr.h5ad", "x");
    let reference = reference_sentences("dup_names_csr_sentences.tsv");
    assert_eq!(
        reference[0].1, "CD3E GAPDH ACTB",
        "upstream's misaligned output"
    );
    assert_eq!(ours[0].1, "GAPDH ACTB ACTB");
    assert_eq!(ours[1].1, "B2M");
}

#[test]
fn scaled_dense_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    let input = fixture("dense_neg_nan.h5ad");
    let run = cli(&[
        "convert",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--preprocess",
        "none",
    ]);
    assert_clean_error(&run, "non-finite");
}

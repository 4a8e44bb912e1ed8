//! End-to-end: `c2s-studio convert` and `inspect` on synthetic files written by the tests.

use crate::common::*;
use c2s_core::Progress;
use c2s_core::dataset::{ColumnData, MatrixChoice};
use c2s_core::io::h5ad::{ReadOptions, Storage, ValueType, read_h5ad};

fn convert(input: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "convert",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

#[test]
fn csr_csc_and_dense_storage_give_identical_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let ds = annotated(tied_counts(60, 40, 1), genes(40));
    let mut outputs = Vec::new();
    for (name, storage, ty) in [
        ("csr.h5ad", Storage::Csr, ValueType::F32),
        ("csc.h5ad", Storage::Csc, ValueType::F64),
        ("dense.h5ad", Storage::Dense, ValueType::I64),
    ] {
        let input = write(dir.path(), name, &ds, storage, ty);
        for ties in ["reference", "seeded"] {
            let out = dir.path().join(format!("{name}.{ties}.parquet"));
            let run = convert(
                &input,
                &out,
                &[
                    "--preprocess",
                    "none",
                    "--ties",
                    ties,
                    "--obs",
                    "cell_type,n_counts",
                ],
            );
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            outputs.push((ties, read_parquet(&out)));
        }
    }
    for ties in ["reference", "seeded"] {
        let frames: Vec<_> = outputs
            .iter()
            .filter(|(t, _)| *t == ties)
            .map(|(_, df)| df)
            .collect();
        assert_eq!(
            strings(frames[0], "cell_sentence"),
            strings(frames[1], "cell_sentence")
        );
        assert_eq!(
            strings(frames[0], "cell_sentence"),
            strings(frames[2], "cell_sentence")
        );
    }
    let df = &outputs[0].1;
    assert_eq!(
        df.get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        ["cell_id", "cell_sentence", "cell_type", "n_counts"]
    );
    assert_eq!(
        strings(df, "cell_type")[..3],
        ["T cell", "B cell", "NK cell"]
    );
    assert_eq!(strings(df, "cell_id")[0], "cell0");
    // Every sentence lists exactly the expressed genes, by non-increasing count.
    let sentences = strings(df, "cell_sentence");
    for (i, s) in sentences.iter().enumerate() {
        let (cols, vals) = ds.expression.row(i);
        let words: Vec<&str> = s.split(' ').collect();
        assert_eq!(words.len(), cols.len());
        let value = |w: &str| {
            let j: u32 = w.trim_start_matches("GENE").parse().unwrap();
            vals[cols.iter().position(|&c| c == j).unwrap()]
        };
        assert!(
            words.windows(2).all(|p| value(p[0]) >= value(p[1])),
            "cell {i}: {s}"
        );
    }
}

#[test]
fn preprocessing_filters_normalizes_and_fits() {
    let dir = tempfile::tempdir().unwrap();
    let mut counts = tied_counts(50, 300, 2);
    // Cell 0 expresses only two genes: it must be filtered out by --min-genes 100.
    let keep = counts.indptr[1] as usize;
    counts.indices.drain(2..keep);
    counts.data.drain(2..keep);
    for p in counts.indptr.iter_mut().skip(1) {
        *p -= (keep - 2) as u64;
    }
    let ds = annotated(counts, genes(300));
    let input = write(dir.path(), "counts.h5ad", &ds, Storage::Csr, ValueType::F32);
    let out = dir.path().join("s.csv");
    let fit = dir.path().join("fit.json");
    let run = convert(
        &input,
        &out,
        &[
            "--min-genes",
            "100",
            "--top-k",
            "10",
            "--fit-out",
            fit.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("kept 49 of 50 cells"), "{stderr}");
    let csv = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "cell_id,cell_sentence");
    assert_eq!(lines.len(), 50);
    assert!(lines[1].starts_with("cell1,"));
    assert_eq!(lines[1].split(',').nth(1).unwrap().split(' ').count(), 10);
    let fit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fit).unwrap()).unwrap();
    for key in ["slope", "intercept", "r2", "pearson", "spearman"] {
        assert!(fit[key].as_f64().unwrap().is_finite(), "{key}");
    }
    assert_eq!(fit["log_base"], "10");
    assert!(fit["slope"].as_f64().unwrap() < 0.0);
}

#[test]
fn default_matrix_is_raw_counts_and_scaled_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = annotated(tied_counts(30, 20, 3), genes(20));
    let input = write_with_layers(dir.path(), "layers.h5ad", &ds);
    let read = read_h5ad(
        &input,
        &ReadOptions {
            load_matrix: true,
            ..Default::default()
        },
        &Progress::new(),
    )
    .unwrap();
    assert_eq!(read.loaded, Some(MatrixChoice::Layer("counts".into())));
    assert_eq!(read.expression, ds.expression);

    let out = dir.path().join("x.parquet");
    let scaled = convert(&input, &out, &["--matrix", "x"]);
    assert_clean_error(&scaled, "scaled");
    assert!(!out.exists());
    let raw = convert(&input, &out, &["--matrix", "raw", "--preprocess", "none"]);
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );

    let inspect = cli(&["inspect", input.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success());
    for expected in [
        "30 cells × 20 genes",
        "layer:counts",
        "raw counts",
        "(default for sentences)",
        "scaled",
        "log-normalized",
        "cell_type",
        "categorical, 3 categories",
        "X_umap",
        "boolean",
    ] {
        assert!(
            text.contains(expected),
            "inspect output lacks {expected:?}:\n{text}"
        );
    }
}

#[test]
fn explicit_zeros_and_duplicate_names_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let m = c2s_core::matrix::CsrMatrix {
        n_rows: 2,
        n_cols: 4,
        indptr: vec![0, 4, 6],
        indices: vec![0, 1, 2, 3, 1, 3],
        data: vec![1.0, 0.0, 3.0, 2.0, 5.0, 0.0],
    };
    let names = ["Actb", "ACTB", "gapdh", "cd3e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut ds = annotated(m, names);
    ds.obsm.clear();
    let input = write(dir.path(), "dups.h5ad", &ds, Storage::Csr, ValueType::F32);
    let out = dir.path().join("d.csv");
    let run = convert(
        &input,
        &out,
        &["--preprocess", "none", "--ties", "reference"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: 1 gene names occur more than once"),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(csv.lines().nth(1).unwrap(), "cell0,GAPDH CD3E ACTB");
    assert_eq!(csv.lines().nth(2).unwrap(), "cell1,ACTB");
}

#[test]
fn h5ad_output_adds_sentences_and_leaves_input_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let ds = annotated(tied_counts(40, 250, 4), genes(250));
    let input = write(dir.path(), "in.h5ad", &ds, Storage::Csr, ValueType::F32);
    let before = std::fs::read(&input).unwrap();
    let out = dir.path().join("s.parquet");
    let h5 = dir.path().join("annotated.h5ad");
    let run = convert(
        &input,
        &out,
        &["--min-genes", "140", "--h5ad-out", h5.to_str().unwrap()],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read(&input).unwrap(), before, "input file changed");
    let back = read_h5ad(&h5, &ReadOptions::default(), &Progress::new()).unwrap();
    let col = back
        .obs_column("c2s_cell_sentence")
        .expect("sentence column");
    let ColumnData::Text(values) = &col.data else {
        panic!("not text")
    };
    let table = strings(&read_parquet(&out), "cell_sentence");
    let kept: Vec<&String> = values.iter().filter(|s| !s.is_empty()).collect();
    assert_eq!(kept.len(), table.len());
    assert!(kept.iter().zip(&table).all(|(a, b)| *a == b));
    assert!(
        back.obs_column("cell_type").is_some(),
        "existing columns kept"
    );
    assert_eq!(back.embedding("X_umap").unwrap().data, ds.obsm[0].data);

    let same = cli(&[
        "convert",
        input.to_str().unwrap(),
        "--out",
        input.to_str().unwrap(),
    ]);
    assert_clean_error(&same, "refusing to overwrite the input");
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn seeded_sentences_are_stable_under_subsetting() {
    let dir = tempfile::tempdir().unwrap();
    let full = annotated(tied_counts(40, 30, 5), genes(30));
    let mut half = full.clone();
    let keep = 20;
    half.expression.n_rows = keep;
    half.expression.indptr.truncate(keep + 1);
    let nnz = half.expression.indptr[keep] as usize;
    half.expression.indices.truncate(nnz);
    half.expression.data.truncate(nnz);
    half.obs_names.truncate(keep);
    half.obs.clear();
    half.obsm.clear();
    let a = write(dir.path(), "full.h5ad", &full, Storage::Csr, ValueType::F32);
    let b = write(dir.path(), "half.h5ad", &half, Storage::Csr, ValueType::F32);
    let (oa, ob) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    assert!(
        convert(&a, &oa, &["--preprocess", "none", "--seed", "7"])
            .status
            .success()
    );
    assert!(
        convert(&b, &ob, &["--preprocess", "none", "--seed", "7"])
            .status
            .success()
    );
    let (sa, sb) = (
        strings(&read_parquet(&oa), "cell_sentence"),
        strings(&read_parquet(&ob), "cell_sentence"),
    );
    assert_eq!(sa[..keep], sb[..]);
}

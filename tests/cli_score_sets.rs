//! `score-sets` end to end against the gseapy 1.3.1 and scanpy fixtures of
//! `tests/fixtures/genesets/` (written by `tools/genesets/run.sh`): the synthetic tie-heavy
//! counts always, the shared PBMC file when `../shared/data` is present; and its bad-input errors.

use crate::common::*;
use c2s_core::io::h5ad::{Storage, ValueType};
use c2s_core::matrix::CsrMatrix;
use polars::prelude::DataFrame;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/genesets")
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture_dir().join(name)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn column(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .unwrap_or_else(|_| panic!("no column {name}"))
        .f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect()
}

/// Runs `score-sets` and reads its Parquet output.
fn score(input: &Path, gmt: &Path, extra: &[&str], dir: &Path) -> DataFrame {
    let out = dir.join("scores.parquet");
    let mut args = vec![
        "score-sets",
        input.to_str().unwrap(),
        "--gmt",
        gmt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = cli(&args);
    assert!(
        run.status.success(),
        "score-sets failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    read_parquet(&out)
}

/// The fixture's synthetic counts as an `.h5ad` with `X` stored as given.
fn ties_h5ad(dir: &Path, storage: Storage) -> PathBuf {
    let f = fixture("ssgsea_ties.json");
    let genes: Vec<String> = f["genes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    let rows = f["counts"].as_array().unwrap();
    let mut m = CsrMatrix {
        n_rows: rows.len(),
        n_cols: genes.len(),
        indptr: vec![0],
        ..Default::default()
    };
    for row in rows {
        for (j, v) in floats(row).into_iter().enumerate() {
            if v != 0.0 {
                m.indices.push(j as u32);
                m.data.push(v as f32);
            }
        }
        m.indptr.push(m.data.len() as u64);
    }
    write(
        dir,
        "ties.h5ad",
        &annotated(m, genes),
        storage,
        ValueType::F32,
    )
}

/// Compares ES and NES columns with a gseapy run of the fixture on rows `rows`.
fn assert_ssgsea(df: &DataFrame, f: &Value, run: &Value, rows: &[usize]) {
    for (j, set) in f["sets"].as_array().unwrap().iter().enumerate() {
        let set = set.as_str().unwrap();
        let es = column(df, set);
        let nes = column(df, &format!("nes:{set}"));
        for (k, &row) in rows.iter().enumerate() {
            for (got, want) in [
                (es[row], run["es"][k][j].as_f64().unwrap()),
                (nes[row], run["nes"][k][j].as_f64().unwrap()),
            ] {
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1e-12),
                    "{set} row {row}: {got} vs gseapy {want}"
                );
            }
        }
    }
}

#[test]
fn ssgsea_on_tie_heavy_counts_equals_gseapy() {
    let dir = tempfile::tempdir().unwrap();
    let input = ties_h5ad(dir.path(), Storage::Csr);
    let f = fixture("ssgsea_ties.json");
    let rows: Vec<usize> = (0..f["counts"].as_array().unwrap().len()).collect();
    for run in f["runs"].as_array().unwrap() {
        let weight = run["weight"].as_f64().unwrap().to_string();
        let df = score(
            &input,
            &fixture_dir().join("ties.gmt"),
            &["--weight", &weight, "--min-size", "5", "--matrix", "x"],
            dir.path(),
        );
        assert_eq!(df.width(), 1 + 2 * f["sets"].as_array().unwrap().len());
        assert_ssgsea(&df, &f, run, &rows);
    }
}

#[test]
fn score_genes_on_dense_float32_counts_equals_scanpy() {
    let dir = tempfile::tempdir().unwrap();
    let input = ties_h5ad(dir.path(), Storage::Dense);
    let gmt = dir.path().join("one.gmt");
    for (file, version) in [
        ("score_genes_1.11.5.json", "1.11.5"),
        ("score_genes_1.9.8.json", "1.9.8"),
    ] {
        let f = fixture(file);
        for case in f["cases"].as_array().unwrap() {
            if case["data"] != "ties_dense_f32" {
                continue;
            }
            let genes: Vec<&str> = case["genes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap())
                .collect();
            std::fs::write(&gmt, format!("S\tcase\t{}\n", genes.join("\t"))).unwrap();
            let ctrl = case["ctrl_size"].to_string();
            let df = score(
                &input,
                &gmt,
                &[
                    "--method",
                    "score-genes",
                    "--ctrl-size",
                    &ctrl,
                    "--scanpy",
                    version,
                    "--matrix",
                    "x",
                ],
                dir.path(),
            );
            let got = column(&df, "S");
            for (a, b) in got.iter().zip(floats(&case["scores"])) {
                assert!(
                    (a - b).abs() <= 1e-6,
                    "scanpy {version} ctrl {ctrl}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn pbmc_raw_scores_equal_gseapy_and_scanpy() {
    let Some(data) = shared_data() else {
        c2s_core::test_support::skip("../shared/data is absent");
        return;
    };
    let input = data.join("expression/pbmc68k_reduced.h5ad");
    let hallmark = data.join("genesets/h.all.v7.5.1.symbols.gmt");
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("ssgsea_pbmc.json");
    let rows: Vec<usize> = f["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as usize)
        .collect();
    for run in f["runs"].as_array().unwrap() {
        let weight = run["weight"].as_f64().unwrap().to_string();
        let df = score(
            &input,
            &hallmark,
            &["--weight", &weight, "--matrix", "raw"],
            dir.path(),
        );
        let ids = strings(&df, "cell_id");
        for (k, &row) in rows.iter().enumerate() {
            assert_eq!(ids[row], f["cell_ids"][k].as_str().unwrap());
        }
        assert_ssgsea(&df, &f, run, &rows);
    }
    let sg = fixture("score_genes_1.11.5.json");
    let case = sg["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["data"] == "pbmc_raw" && c["ctrl_size"] == 50)
        .unwrap();
    let df = score(
        &input,
        &hallmark,
        &[
            "--method",
            "score-genes",
            "--sets",
            "HALLMARK_INTERFERON_ALPHA_RESPONSE",
        ],
        dir.path(),
    );
    assert_eq!(df.width(), 2);
    let got = column(&df, "HALLMARK_INTERFERON_ALPHA_RESPONSE");
    for (a, b) in got.iter().zip(floats(&case["scores"])) {
        assert!((a - b).abs() <= 1e-6, "{a} vs scanpy {b}");
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = ties_h5ad(dir.path(), Storage::Csr);
    let out = dir.path().join("out.parquet");
    let run = |gmt_text: &str, extra: &[&str]| {
        let gmt = dir.path().join("lib.gmt");
        std::fs::write(&gmt, gmt_text).unwrap();
        let mut args = vec![
            "score-sets",
            input.to_str().unwrap(),
            "--gmt",
            gmt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let good = "A\tx\tG001\tG002\tG003\tG004\tG005\n";
    assert_clean_error(&run(good, &["--sets", "B"]), "no gene set named 'B'");
    assert_clean_error(
        &run("A\tx\tFOO\tBAR\n", &["--min-size", "1"]),
        "shares no gene with the data",
    );
    assert_clean_error(
        &run("A\tx\tFOO\nB\tx\tG001\n", &["--sets", "A"]),
        "gene set 'A' shares no gene",
    );
    assert_clean_error(&run("A\tx\tG001\n\nA\tx\tG002\n", &[]), "line 3");
    assert_clean_error(
        &run(good, &["--sets", "A"]),
        "ssGSEA keeps sets with 15 to 500",
    );
    assert_clean_error(
        &run(good, &["--min-size", "1", "--weight=-1"]),
        "weight must be",
    );
    let logged = write_with_layers(
        dir.path(),
        "layers.h5ad",
        &annotated(tied_counts(30, 40, 3), genes(40)),
    );
    let gmt = dir.path().join("lib.gmt");
    std::fs::write(&gmt, "A\tx\tGene1\tGene2\tGene3\n").unwrap();
    let refused = cli(&[
        "score-sets",
        logged.to_str().unwrap(),
        "--gmt",
        gmt.to_str().unwrap(),
        "--matrix",
        "raw",
        "--normalize",
        "log1p",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&refused, "already holds log-normalised values");
    let same = cli(&[
        "score-sets",
        logged.to_str().unwrap(),
        "--gmt",
        gmt.to_str().unwrap(),
        "--out",
        logged.to_str().unwrap(),
    ]);
    assert_clean_error(&same, "refusing to overwrite the input");
    assert!(!out.exists(), "no output is left behind by a failed run");
}

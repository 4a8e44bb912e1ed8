//! End-to-end: bad input gets one clear `error:` line, a non-zero exit and no panic.

use crate::common::*;
use c2s_core::Progress;
use c2s_core::io::h5ad::{ReadOptions, Storage, ValueType, read_h5ad};
use hdf5_metno as hdf5;
use std::path::{Path, PathBuf};

fn valid(dir: &Path) -> PathBuf {
    let ds = annotated(tied_counts(20, 15, 9), genes(15));
    write(dir, "valid.h5ad", &ds, Storage::Csr, ValueType::F32)
}

fn convert_err(input: &Path, extra: &[&str], expected: &str) {
    let out = input.with_extension("out.parquet");
    let mut args = vec![
        "convert",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    assert_clean_error(&cli(&args), expected);
    assert!(!out.exists(), "no output on error");
}

#[test]
fn foreign_empty_truncated_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.h5ad");
    std::fs::write(&text, "cell,gene\n1,2\n").unwrap();
    convert_err(
        &text,
        &[],
        "is not a readable .h5ad file (no HDF5 signature)",
    );
    let empty = dir.path().join("empty.h5ad");
    std::fs::write(&empty, b"").unwrap();
    convert_err(&empty, &[], "the file is empty");
    let bytes = std::fs::read(valid(dir.path())).unwrap();
    let truncated = dir.path().join("truncated.h5ad");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    convert_err(&truncated, &[], ".h5ad");
    convert_err(&dir.path().join("nope.h5ad"), &[], "cannot read");
    let inspect = cli(&["inspect", text.to_str().unwrap()]);
    assert_clean_error(&inspect, "not a readable .h5ad file");
}

#[test]
fn structural_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let no_x = valid(dir.path());
    {
        let f = hdf5::File::open_rw(&no_x).unwrap(); // nothing else has it open
        f.unlink("X").unwrap();
    }
    convert_err(&no_x, &[], "has no expression matrix");

    let short_obs = dir.path().join("short.h5ad");
    std::fs::copy(valid(dir.path()), &short_obs).unwrap();
    {
        let f = hdf5::File::open_rw(&short_obs).unwrap();
        let obs = f.group("obs").unwrap();
        obs.unlink("_index").unwrap();
        let names: Vec<hdf5::types::VarLenUnicode> =
            (0..5).map(|i| format!("c{i}").parse().unwrap()).collect();
        obs.new_dataset_builder()
            .with_data(&names[..])
            .create("_index")
            .unwrap();
    }
    convert_err(&short_obs, &[], "has 20 values but the index has 5");

    let input = valid(dir.path());
    convert_err(
        &input,
        &["--matrix", "layer:spliced"],
        "has no matrix layer:spliced",
    );
    convert_err(&input, &["--obs", "tissue"], "obs has no column 'tissue'");
    convert_err(
        &input,
        &["--gene-column", "symbol"],
        "var has no text column 'symbol'",
    );
    let bad_ext = cli(&["convert", input.to_str().unwrap(), "--out", "/tmp/x.xlsx"]);
    assert_clean_error(&bad_ext, "use a .parquet or .csv file name");
}

#[test]
fn non_finite_values_and_empty_cells() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = tied_counts(10, 8, 11);
    m.data[3] = f32::NAN;
    let nan = write(
        dir.path(),
        "nan.h5ad",
        &annotated(m, genes(8)),
        Storage::Csr,
        ValueType::F32,
    );
    convert_err(&nan, &[], "non-finite value");
    let mut m = tied_counts(10, 8, 12);
    m.data[0] = f32::INFINITY;
    let inf = write(
        dir.path(),
        "inf.h5ad",
        &annotated(m, genes(8)),
        Storage::Dense,
        ValueType::F32,
    );
    convert_err(&inf, &[], "non-finite value");

    let zeros = c2s_core::matrix::CsrMatrix {
        n_rows: 3,
        n_cols: 4,
        indptr: vec![0, 0, 0, 0],
        ..Default::default()
    };
    let mut ds = annotated(zeros, genes(4));
    ds.obs.clear();
    ds.obsm.clear();
    let path = write(dir.path(), "zeros.h5ad", &ds, Storage::Csr, ValueType::F32);
    convert_err(&path, &[], "no cell has at least 200 expressed genes");
    let out = dir.path().join("z.csv");
    let run = cli(&[
        "convert",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--preprocess",
        "none",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("3 cells express no gene"), "{stderr}");
}

/// Property test of the reader: corrupting a valid file anywhere yields `Ok` or a clean `Err`,
/// never a panic or crash.
#[test]
fn corrupted_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(valid(dir.path())).unwrap();
    let mut rng = Lcg(2024);
    let path = dir.path().join("corrupt.h5ad");
    let options = ReadOptions {
        load_matrix: true,
        ..Default::default()
    };
    let (mut ok, mut err) = (0, 0);
    for round in 0..300 {
        let mut b = bytes.clone();
        match round % 3 {
            0 => {
                for _ in 0..1 + round % 8 {
                    let at = (rng.next_f64() * b.len() as f64) as usize;
                    b[at] ^= 1 << (round % 8);
                }
            }
            1 => {
                let at = (rng.next_f64() * 64.0) as usize + 8;
                b[at] = (rng.next_f64() * 256.0) as u8;
            }
            _ => b.truncate((rng.next_f64() * b.len() as f64) as usize),
        }
        std::fs::write(&path, &b).unwrap();
        match read_h5ad(&path, &options, &Progress::new()) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                err += 1;
            }
        }
    }
    assert!(err > 0, "corruption was never detected ({ok} ok)");
}

//! Shared helpers for the end-to-end tests: synthetic `.h5ad` files and running the CLI.
#![allow(dead_code)]

use c2s_core::dataset::{ColumnData, Dataset, Embedding, ObsColumn};
use c2s_core::io::h5ad::{CreateOptions, MatrixSpec, Storage, ValueType, write_dataset_h5ad};
use c2s_core::matrix::CsrMatrix;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Deterministic pseudo-random numbers for test data.
pub struct Lcg(pub u64);

impl Lcg {
    /// Next value in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A counts matrix with many ties: `n_cells` × `n_genes`, small integer counts, ~40 % zero.
pub fn tied_counts(n_cells: usize, n_genes: usize, seed: u64) -> CsrMatrix {
    let mut rng = Lcg(seed);
    let mut m = CsrMatrix {
        n_rows: n_cells,
        n_cols: n_genes,
        indptr: vec![0],
        ..Default::default()
    };
    for _ in 0..n_cells {
        for j in 0..n_genes {
            let u = rng.next_f64();
            if u > 0.4 {
                m.indices.push(j as u32);
                m.data.push(((u - 0.4) * 10.0).floor() as f32 + 1.0);
            }
        }
        m.indptr.push(m.data.len() as u64);
    }
    m
}

/// A small annotated dataset around `matrix`: categorical, numeric, boolean and text obs,
/// a 2-D `X_umap`, and a palette for `cell_type`.
pub fn annotated(matrix: CsrMatrix, genes: Vec<String>) -> Dataset {
    let n = matrix.n_rows;
    let types = ["T cell", "B cell", "NK cell"];
    let mut palettes = std::collections::BTreeMap::new();
    palettes.insert(
        "cell_type".to_string(),
        vec!["#1f77b4".into(), "#ff7f0e".into(), "#2ca02c".into()],
    );
    Dataset {
        obs_names: (0..n).map(|i| format!("cell{i}")).collect(),
        var_names: genes,
        obs: vec![
            ObsColumn {
                name: "cell_type".into(),
                data: ColumnData::Categorical {
                    codes: (0..n).map(|i| (i % 3) as i32).collect(),
                    categories: types.iter().map(|s| s.to_string()).collect(),
                },
            },
            ObsColumn {
                name: "n_counts".into(),
                data: ColumnData::Numeric((0..n).map(|i| i as f64 * 1.5).collect()),
            },
            ObsColumn {
                name: "is_doublet".into(),
                data: ColumnData::Bool((0..n).map(|i| i % 7 == 0).collect()),
            },
            ObsColumn {
                name: "donor".into(),
                data: ColumnData::Text((0..n).map(|i| format!("d{}", i % 2)).collect()),
            },
        ],
        obsm: vec![Embedding {
            name: "X_umap".into(),
            n_cols: 2,
            data: (0..n)
                .flat_map(|i| [i as f32, (i * i) as f32 * 0.01])
                .collect(),
        }],
        expression: matrix,
        palettes,
        ..Default::default()
    }
}

/// Gene names `GENE0..`.
pub fn genes(n: usize) -> Vec<String> {
    (0..n).map(|j| format!("Gene{j}")).collect()
}

/// Writes `ds` with `X` in the given storage and type.
pub fn write(dir: &Path, name: &str, ds: &Dataset, storage: Storage, ty: ValueType) -> PathBuf {
    let path = dir.join(name);
    write_dataset_h5ad(
        &path,
        ds,
        &CreateOptions {
            x: Some((storage, ty)),
            ..Default::default()
        },
    )
    .unwrap();
    path
}

/// Writes `ds` with a scaled (negative) `X`, its counts as `layers/counts` and `raw`.
pub fn write_with_layers(dir: &Path, name: &str, ds: &Dataset) -> PathBuf {
    let path = dir.join(name);
    let mut scaled = ds.clone();
    scaled.expression.data.iter_mut().for_each(|v| *v -= 2.5);
    let spec = MatrixSpec {
        matrix: &ds.expression,
        storage: Storage::Csr,
        value_type: ValueType::F32,
    };
    let mut logged = ds.expression.clone();
    logged.data.iter_mut().for_each(|v| *v = v.ln_1p());
    let raw_spec = MatrixSpec {
        matrix: &logged,
        storage: Storage::Csr,
        value_type: ValueType::F32,
    };
    let options = CreateOptions {
        x: Some((Storage::Dense, ValueType::F32)),
        layers: vec![("counts".into(), spec)],
        raw: Some((raw_spec, ds.var_names.clone())),
    };
    write_dataset_h5ad(&path, &scaled, &options).unwrap();
    path
}

/// Runs the CLI with `args`.
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_c2s-studio"))
        .args(args)
        .output()
        .expect("run c2s-studio")
}

/// Asserts a failed run with one clear `error:` line and no panic.
pub fn assert_clean_error(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        line.contains(expected),
        "error line {line:?} does not mention {expected:?}"
    );
}

/// The shared data folder beside the repository, if present.
pub fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    dir.is_dir().then_some(dir)
}

/// Reads a Parquet file with polars.
pub fn read_parquet(path: &Path) -> polars::prelude::DataFrame {
    use polars::prelude::*;
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

/// The string values of a column of a polars frame.
pub fn strings(df: &polars::prelude::DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect()
}

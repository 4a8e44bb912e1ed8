//! Writing a complete `.h5ad` from an in-memory [`Dataset`] (anndata ≥ 0.8 encoding): used to
//! save generated datasets (the demo data, test fixtures) that have no input file to copy.

use super::write::{encoding, write_column, write_embedding, write_strings};
use crate::dataset::{Dataset, ObsColumn};
use crate::error::{Error, Result};
use crate::io::atomic::write_atomically;
use crate::matrix::CsrMatrix;
use hdf5::{Group, H5Type};
use hdf5_metno as hdf5;
use std::path::Path;

/// How to store a matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Compressed sparse rows.
    Csr,
    /// Compressed sparse columns.
    Csc,
    /// A dense 2-D array.
    Dense,
}

/// Element type of stored matrix values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 64-bit integer (values are rounded).
    I64,
}

/// One matrix to store: its values, storage and element type.
#[derive(Debug, Clone)]
pub struct MatrixSpec<'a> {
    /// The values.
    pub matrix: &'a CsrMatrix,
    /// Storage layout.
    pub storage: Storage,
    /// Element type.
    pub value_type: ValueType,
}

/// Extra content for a new file besides the dataset's own matrix (written as `X`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions<'a> {
    /// Storage of `X`; `None` writes CSR f32.
    pub x: Option<(Storage, ValueType)>,
    /// `layers/<name>` matrices.
    pub layers: Vec<(String, MatrixSpec<'a>)>,
    /// `raw/X` with its own gene names.
    pub raw: Option<(MatrixSpec<'a>, Vec<String>)>,
}

type H5Result<T> = std::result::Result<T, String>;

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

fn dataset_of<T: H5Type>(group: &Group, name: &str, values: &[T]) -> H5Result<()> {
    let ds = group
        .new_dataset_builder()
        .with_data(values)
        .create(name)
        .map_err(e)?;
    encoding(&ds, "array", "0.2.0")
}

fn write_values(group: &Group, name: &str, values: &[f32], ty: ValueType) -> H5Result<()> {
    match ty {
        ValueType::F32 => dataset_of(group, name, values),
        ValueType::F64 => dataset_of(
            group,
            name,
            &values.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        ),
        ValueType::I64 => dataset_of(
            group,
            name,
            &values.iter().map(|&v| v.round() as i64).collect::<Vec<_>>(),
        ),
    }
}

fn to_csc(m: &CsrMatrix) -> CsrMatrix {
    let mut counts = vec![0u64; m.n_cols + 1];
    for &c in &m.indices {
        counts[c as usize + 1] += 1;
    }
    for j in 0..m.n_cols {
        counts[j + 1] += counts[j];
    }
    let mut next = counts[..m.n_cols].to_vec();
    let mut indices = vec![0u32; m.nnz()];
    let mut data = vec![0f32; m.nnz()];
    for i in 0..m.n_rows {
        let (cols, vals) = m.row(i);
        for (&c, &v) in cols.iter().zip(vals) {
            let slot = next[c as usize] as usize;
            indices[slot] = i as u32;
            data[slot] = v;
            next[c as usize] += 1;
        }
    }
    CsrMatrix {
        n_rows: m.n_cols,
        n_cols: m.n_rows,
        indptr: counts,
        indices,
        data,
    }
}

fn write_matrix(parent: &Group, name: &str, spec: &MatrixSpec) -> H5Result<()> {
    let m = spec.matrix;
    match spec.storage {
        Storage::Dense => {
            let mut dense = vec![0f32; m.n_rows * m.n_cols];
            for i in 0..m.n_rows {
                let (cols, vals) = m.row(i);
                for (&c, &v) in cols.iter().zip(vals) {
                    dense[i * m.n_cols + c as usize] = v;
                }
            }
            let write = |values: ndarray::ArrayView2<f32>| -> H5Result<()> {
                let ds = match spec.value_type {
                    ValueType::F32 => parent.new_dataset_builder().with_data(values).create(name),
                    ValueType::F64 => parent
                        .new_dataset_builder()
                        .with_data(&values.mapv(f64::from))
                        .create(name),
                    ValueType::I64 => parent
                        .new_dataset_builder()
                        .with_data(&values.mapv(|v| v.round() as i64))
                        .create(name),
                }
                .map_err(e)?;
                encoding(&ds, "array", "0.2.0")
            };
            write(ndarray::ArrayView2::from_shape((m.n_rows, m.n_cols), &dense).map_err(e)?)
        }
        Storage::Csr | Storage::Csc => {
            let csc;
            let (stored, kind) = if spec.storage == Storage::Csc {
                csc = to_csc(m);
                (&csc, "csc_matrix")
            } else {
                (m, "csr_matrix")
            };
            let g = parent.create_group(name).map_err(e)?;
            encoding(&g, kind, "0.1.0")?;
            let shape = g.new_attr::<i64>().shape(2).create("shape").map_err(e)?;
            shape
                .write_raw(&[m.n_rows as i64, m.n_cols as i64])
                .map_err(e)?;
            write_values(&g, "data", &stored.data, spec.value_type)?;
            dataset_of(
                &g,
                "indices",
                &stored.indices.iter().map(|&c| c as i32).collect::<Vec<_>>(),
            )?;
            dataset_of(
                &g,
                "indptr",
                &stored.indptr.iter().map(|&p| p as i64).collect::<Vec<_>>(),
            )
        }
    }
}

fn write_frame(
    parent: &Group,
    name: &str,
    index: &[String],
    columns: &[ObsColumn],
) -> H5Result<()> {
    let g = parent.create_group(name).map_err(e)?;
    encoding(&g, "dataframe", "0.2.0")?;
    super::write::set_str_attr(&g, "_index", "_index")?;
    write_strings(&g, "_index", index)?;
    for c in columns {
        write_column(&g, c)?;
    }
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    super::write::set_str_array_attr(&g, "column-order", &names)
}

fn create_all(path: &Path, ds: &Dataset, options: &CreateOptions) -> H5Result<()> {
    let file = super::hdf::open_file(path, super::hdf::Mode::Create).map_err(e)?;
    encoding(&file, "anndata", "0.1.0")?;
    let (storage, value_type) = options.x.unwrap_or((Storage::Csr, ValueType::F32));
    write_matrix(
        &file,
        "X",
        &MatrixSpec {
            matrix: &ds.expression,
            storage,
            value_type,
        },
    )?;
    write_frame(&file, "obs", &ds.obs_names, &ds.obs)?;
    write_frame(&file, "var", &ds.var_names, &[])?;
    let obsm = file.create_group("obsm").map_err(e)?;
    encoding(&obsm, "dict", "0.1.0")?;
    for emb in &ds.obsm {
        write_embedding(&obsm, emb, ds.n_cells())?;
    }
    let uns = file.create_group("uns").map_err(e)?;
    encoding(&uns, "dict", "0.1.0")?;
    for (column, colors) in &ds.palettes {
        write_strings(&uns, &format!("{column}_colors"), colors)?;
    }
    let layers = file.create_group("layers").map_err(e)?;
    encoding(&layers, "dict", "0.1.0")?;
    for (name, spec) in &options.layers {
        write_matrix(&layers, name, spec)?;
    }
    if let Some((spec, genes)) = &options.raw {
        let raw = file.create_group("raw").map_err(e)?;
        encoding(&raw, "raw", "0.1.0")?;
        write_matrix(&raw, "X", spec)?;
        write_frame(&raw, "var", genes, &[])?;
    }
    file.flush().map_err(e)
}

/// Writes `ds` (its matrix as `X`) and `options`' extra matrices to a new `.h5ad` at `path`.
pub fn write_dataset_h5ad(path: &Path, ds: &Dataset, options: &CreateOptions) -> Result<()> {
    write_atomically(path, |tmp| {
        create_all(tmp, ds, options).map_err(|detail| Error::Write {
            path: path.to_path_buf(),
            detail,
        })
    })
}

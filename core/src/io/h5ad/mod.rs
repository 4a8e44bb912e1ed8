//! Reading `.h5ad` (AnnData on HDF5) files of every anndata generation (≤ 0.6 compound tables,
//! 0.7 groups, ≥ 0.8 encoded elements, CELLxGENE schema) into a [`Dataset`].

mod create;
mod direct;
mod frame;
mod hdf;
mod matrix;
mod write;

pub use create::{CreateOptions, MatrixSpec, Storage, ValueType, write_dataset_h5ad};
pub use write::{Additions, write_annotated_h5ad};

use crate::dataset::{Dataset, Embedding, MatrixChoice, MatrixInfo, MatrixKind};
use crate::error::{Error, Result};
use crate::progress::Progress;
pub use frame::Frame;
use hdf5_metno as hdf5;
pub use matrix::detect_kind;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What to read from an `.h5ad` file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Which matrix to load; `None` picks raw counts when the file has them (see [`default_matrix`]).
    pub matrix: Option<MatrixChoice>,
    /// `var` column with gene names; `None` uses symbols when the index holds Ensembl ids.
    pub gene_column: Option<String>,
    /// Load the chosen matrix (otherwise only annotations and the matrix list are read).
    pub load_matrix: bool,
}

/// `var` columns that hold gene symbols, in order of preference.
const SYMBOL_COLUMNS: [&str; 6] = [
    "feature_name",
    "gene_symbols",
    "gene_symbol",
    "symbol",
    "gene_name",
    "gene_names",
];

/// Stored values sampled per matrix to tell what it holds without reading it all.
const KIND_SAMPLE: usize = 200_000;

/// Reads an `.h5ad` file. The file is opened read-only and never modified.
pub fn read_h5ad(path: &Path, options: &ReadOptions, progress: &Progress) -> Result<Dataset> {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_inner(path, options, progress)
    }));
    caught.unwrap_or_else(|_| {
        Err(Error::Malformed {
            path: path.to_path_buf(),
            detail: "the HDF5 layer failed on an unexpected structure; the file may be damaged"
                .into(),
        })
    })
}

fn read_inner(path: &Path, options: &ReadOptions, progress: &Progress) -> Result<Dataset> {
    let file = open(path)?;
    let bad = |detail: String| -> Error {
        if detail == matrix::CANCELLED {
            Error::Cancelled
        } else {
            Error::Malformed {
                path: path.to_path_buf(),
                detail,
            }
        }
    };

    progress.set_stage("reading cell annotations (obs)");
    let obs = frame::read_frame(&file, "obs").map_err(|e| bad(format!("cannot read obs: {e}")))?;
    progress.check()?;

    let mut matrices = Vec::new();
    let mut stored_list = Vec::new();
    for choice in matrix_choices(&file) {
        if let Some(stored) = matrix::locate(&file, &choice).map_err(&bad)? {
            let sample = matrix::sample_values(&stored, KIND_SAMPLE).map_err(&bad)?;
            matrices.push(MatrixInfo {
                choice: choice.clone(),
                shape: stored.shape(),
                storage: stored.storage().to_string(),
                dtype: stored.dtype(),
                kind: detect_kind(&sample),
            });
            stored_list.push((choice, stored));
        }
    }
    if matrices.is_empty() {
        return Err(bad(
            "has no expression matrix (no X, raw/X or layers); it is not a complete AnnData file"
                .into(),
        ));
    }
    for m in &matrices {
        if m.shape.0 != obs.index.len() {
            return Err(bad(format!(
                "matrix {} has {} rows but obs has {} cells; the file is inconsistent",
                m.choice,
                m.shape.0,
                obs.index.len()
            )));
        }
    }

    let chosen = match &options.matrix {
        Some(choice) => {
            if !matrices.iter().any(|m| &m.choice == choice) {
                let found: Vec<String> = matrices.iter().map(|m| m.choice.to_string()).collect();
                return Err(Error::InvalidArgument(format!(
                    "{} has no matrix {choice}; it has: {}",
                    path.display(),
                    found.join(", ")
                )));
            }
            choice.clone()
        }
        None => default_matrix(&matrices),
    };

    progress.set_stage("reading gene annotations (var)");
    let var_path = match chosen {
        MatrixChoice::Raw if file.link_exists("raw/var") => "raw/var",
        MatrixChoice::Raw => "raw.var",
        _ => "var",
    };
    let var = frame::read_frame(&file, var_path)
        .map_err(|e| bad(format!("cannot read {var_path}: {e}")))?;
    let chosen_shape = matrices
        .iter()
        .find(|m| m.choice == chosen)
        .map(|m| m.shape)
        .unwrap_or_default();
    if var.index.len() != chosen_shape.1 {
        return Err(bad(format!(
            "{var_path} lists {} genes but matrix {chosen} has {} columns; the file is inconsistent",
            var.index.len(),
            chosen_shape.1
        )));
    }
    let (var_names, gene_column) = gene_names(&var, options.gene_column.as_deref())?;

    progress.set_stage("reading embeddings (obsm)");
    let obsm = read_obsm(&file, obs.index.len()).map_err(&bad)?;
    let palettes = read_palettes(&file);

    let mut dataset = Dataset {
        source: Some(path.to_path_buf()),
        obs_names: obs.index,
        var_names,
        gene_column,
        obs: obs.columns,
        obsm,
        matrices,
        loaded: None,
        expression: Default::default(),
        palettes,
    };
    if options.load_matrix {
        let stored = &stored_list
            .iter()
            .find(|(c, _)| *c == chosen)
            .expect("chosen matrix was located")
            .1;
        progress.set_stage(format!(
            "reading matrix {chosen} ({}, {})",
            stored.storage(),
            stored.dtype()
        ));
        let m = matrix::read(stored, &chosen.to_string(), progress).map_err(&bad)?;
        let kind = detect_kind(&m.data);
        if let Some(info) = dataset.matrices.iter_mut().find(|i| i.choice == chosen) {
            info.kind = kind;
        }
        dataset.expression = m;
        dataset.loaded = Some(chosen);
    }
    progress.set_fraction(1.0);
    Ok(dataset)
}

/// The matrix used when the user names none: raw counts wherever they are (a `counts`-like
/// layer, `raw`, or `X`), else `X` unless it is scaled, else `raw`.
pub fn default_matrix(matrices: &[MatrixInfo]) -> MatrixChoice {
    let counts = matrices.iter().find(|m| m.kind == MatrixKind::RawCounts);
    if let Some(m) = counts {
        return m.choice.clone();
    }
    let usable = |m: &&MatrixInfo| m.kind != MatrixKind::Scaled && m.kind != MatrixKind::Empty;
    matrices
        .iter()
        .filter(usable)
        .find(|m| m.choice == MatrixChoice::X)
        .or_else(|| {
            matrices
                .iter()
                .filter(usable)
                .find(|m| m.choice == MatrixChoice::Raw)
        })
        .or_else(|| matrices.iter().find(usable))
        .unwrap_or(&matrices[0])
        .choice
        .clone()
}

/// Matrix names in the order we look for raw counts: layers first, then raw, then X.
fn matrix_choices(file: &hdf5::File) -> Vec<MatrixChoice> {
    let mut choices = Vec::new();
    if let Ok(layers) = file.group("layers") {
        let mut names = layers.member_names().unwrap_or_default();
        names.sort_by_key(|n| !n.to_lowercase().contains("count"));
        choices.extend(names.into_iter().map(MatrixChoice::Layer));
    }
    choices.push(MatrixChoice::Raw);
    choices.insert(0, MatrixChoice::X);
    choices
}

fn open(path: &Path) -> Result<hdf5::File> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(not_h5ad(path, "the file is empty"));
    }
    let mut head = vec![0u8; (len.min(4096)) as usize];
    f.read_exact(&mut head).map_err(io_err)?;
    const MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
    let has_magic = [0usize, 512, 1024, 2048]
        .iter()
        .any(|&o| head.get(o..o + 8) == Some(&MAGIC[..]));
    if !has_magic {
        return Err(not_h5ad(path, "no HDF5 signature"));
    }
    hdf::open_file(path, hdf::Mode::Read).map_err(|e| not_h5ad(path, &e.to_string()))
}

fn not_h5ad(path: &Path, detail: &str) -> Error {
    Error::NotH5ad {
        path: PathBuf::from(path),
        detail: detail.to_string(),
    }
}

/// Picks gene names: a requested `var` column, else symbols when the index holds Ensembl ids.
fn gene_names(var: &Frame, requested: Option<&str>) -> Result<(Vec<String>, String)> {
    let text_column = |name: &str| -> Option<Vec<String>> {
        var.columns
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| column_as_text(&c.data))
    };
    if let Some(name) = requested {
        if name == "index" {
            return Ok((var.index.clone(), "index".into()));
        }
        return match text_column(name) {
            Some(names) => Ok((names, name.to_string())),
            None => {
                let available: Vec<&str> = var.columns.iter().map(|c| c.name.as_str()).collect();
                Err(Error::InvalidArgument(format!(
                    "var has no text column '{name}'; available: index, {}",
                    available.join(", ")
                )))
            }
        };
    }
    let ensembl = var
        .index
        .iter()
        .take(100)
        .filter(|n| n.starts_with("ENS"))
        .count();
    if ensembl * 2 > var.index.len().min(100) {
        for name in SYMBOL_COLUMNS {
            if let Some(names) = text_column(name) {
                return Ok((names, name.to_string()));
            }
        }
    }
    Ok((var.index.clone(), "index".into()))
}

/// The values of a text or categorical column as strings.
pub fn column_as_text(data: &crate::dataset::ColumnData) -> Option<Vec<String>> {
    use crate::dataset::ColumnData;
    match data {
        ColumnData::Text(v) => Some(v.clone()),
        ColumnData::Categorical { codes, categories } => Some(
            codes
                .iter()
                .map(|&k| {
                    if k >= 0 {
                        categories[k as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .collect(),
        ),
        _ => None,
    }
}

fn read_obsm(file: &hdf5::File, n_cells: usize) -> std::result::Result<Vec<Embedding>, String> {
    let mut out = Vec::new();
    if let Ok(group) = file.group("obsm") {
        for name in group.member_names().map_err(|e| e.to_string())? {
            let Ok(ds) = group.dataset(&name) else {
                continue;
            };
            let shape = ds.shape();
            if shape.len() != 2 || shape[0] != n_cells || !hdf::is_numeric(&ds) {
                continue;
            }
            let data = ds
                .read_raw::<f32>()
                .map_err(|e| format!("obsm/{name}: {e}"))?;
            out.push(Embedding {
                name,
                n_cols: shape[1],
                data,
            });
        }
    } else if let Ok(ds) = file.dataset("obsm") {
        use hdf5::types::TypeDescriptor;
        for (name, ty) in hdf::compound_fields(&ds).unwrap_or_default() {
            let width = match ty {
                TypeDescriptor::FixedArray(_, n) => n,
                TypeDescriptor::Float(_) => 1,
                _ => continue,
            };
            let values = hdf::compound_field_f64(&ds, &name, width)
                .map_err(|e| format!("obsm/{name}: {e}"))?;
            out.push(Embedding {
                name,
                n_cols: width,
                data: values.iter().map(|&v| v as f32).collect(),
            });
        }
    }
    Ok(out)
}

fn read_palettes(file: &hdf5::File) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let Ok(uns) = file.group("uns") else {
        return out;
    };
    for name in uns.member_names().unwrap_or_default() {
        let Some(column) = name.strip_suffix("_colors") else {
            continue;
        };
        if let Ok(ds) = uns.dataset(&name)
            && let Ok(colors) = hdf::read_strings(&ds)
        {
            out.insert(column.to_string(), colors);
        }
    }
    out
}

/// Reads only the annotations and the list of matrices (no matrix values): for summaries.
pub fn inspect_h5ad(path: &Path) -> Result<Dataset> {
    read_h5ad(
        path,
        &ReadOptions {
            load_matrix: false,
            ..Default::default()
        },
        &Progress::new(),
    )
}

/// Human-readable description of a matrix kind.
pub fn describe_kind(kind: MatrixKind) -> &'static str {
    match kind {
        MatrixKind::RawCounts => "raw counts (non-negative integers)",
        MatrixKind::LogNormalized => "log-normalized (non-negative, non-integer, log scale)",
        MatrixKind::Normalized => "normalized, not log-transformed",
        MatrixKind::Scaled => "scaled / z-scored (has negative values)",
        MatrixKind::Empty => "empty (all zero)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ColumnData;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/sentences")
            .join(name)
    }

    fn read(path: &Path) -> Dataset {
        read_h5ad(
            path,
            &ReadOptions {
                load_matrix: true,
                ..Default::default()
            },
            &Progress::new(),
        )
        .unwrap()
    }

    #[test]
    fn reads_a_modern_file_with_every_column_kind() {
        let ds = read(&fixture("obs_meta.h5ad"));
        assert_eq!(ds.n_cells(), 40);
        let kinds: Vec<(&str, &str)> = ds
            .obs
            .iter()
            .map(|c| {
                let k = match c.data {
                    ColumnData::Categorical { .. } => "cat",
                    ColumnData::Numeric(_) => "num",
                    ColumnData::Bool(_) => "bool",
                    ColumnData::Text(_) => "text",
                };
                (c.name.as_str(), k)
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("cell_type", "cat"),
                ("is_doublet", "bool"),
                ("batch", "cat"),
                ("n_counts", "num"),
                ("n_genes", "num")
            ]
        );
        // anndata stores repeated strings (`batch`) as categoricals.
        // X is log-normalized, layers/counts holds integers: counts are the default.
        assert_eq!(ds.loaded, Some(MatrixChoice::Layer("counts".into())));
        let x = ds
            .matrices
            .iter()
            .find(|m| m.choice == MatrixChoice::X)
            .unwrap();
        assert_eq!(x.kind, MatrixKind::LogNormalized);
        assert_eq!(ds.embedding("X_umap").unwrap().n_cols, 2);
        assert_eq!(ds.palettes["cell_type"].len(), 4);
        // var index holds Ensembl-like ids only in `gene_ids`; the index stays the gene names.
        assert_eq!(ds.gene_column, "index");
    }

    #[test]
    fn reads_anndata_07_layout() {
        let ds = read(&fixture("legacy_anndata07.h5ad"));
        assert_eq!(ds.n_cells(), 30);
        assert!(
            ds.obs
                .iter()
                .any(|c| matches!(c.data, ColumnData::Categorical { .. }))
        );
        assert!(ds.matrices.iter().any(|m| m.choice == MatrixChoice::Raw));
        assert!(ds.embedding("X_umap").is_some());
    }

    #[test]
    fn reads_anndata_06_compound_tables_when_shared_data_is_present() {
        let pbmc = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/expression/pbmc68k_reduced.h5ad");
        if !pbmc.exists() {
            crate::test_support::skip("the shared PBMC file is absent");
            return;
        }
        let ds = read(&pbmc);
        assert_eq!((ds.n_cells(), ds.var_names.len()), (700, 765));
        assert_eq!(
            ds.loaded,
            Some(MatrixChoice::Raw),
            "X is scaled, raw is log-normalized"
        );
        let kinds: Vec<(MatrixChoice, MatrixKind, &str)> = ds
            .matrices
            .iter()
            .map(|m| (m.choice.clone(), m.kind, m.storage.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (MatrixChoice::X, MatrixKind::Scaled, "dense"),
                (MatrixChoice::Raw, MatrixKind::LogNormalized, "csr")
            ]
        );
        assert_eq!(ds.expression.nnz(), 174_400);
        let Some(ColumnData::Categorical { categories, .. }) =
            ds.obs_column("bulk_labels").map(|c| &c.data)
        else {
            panic!("bulk_labels is not categorical")
        };
        assert_eq!(categories.len(), 10);
        assert_eq!(ds.embedding("X_pca").unwrap().n_cols, 50);
        assert_eq!(ds.embedding("X_umap").unwrap().n_cols, 2);
        assert_eq!(ds.palettes["bulk_labels"].len(), 10);
        assert!(ds.palettes["bulk_labels"][0].starts_with('#'));
    }

    #[test]
    fn cancellation_stops_reading() {
        let progress = Progress::new();
        progress.cancel();
        let err = read_h5ad(
            &fixture("obs_meta.h5ad"),
            &ReadOptions::default(),
            &progress,
        )
        .unwrap_err();
        assert!(err.is_cancelled());
    }
}

//! Writing a new `.h5ad` that is the input plus added `obs` columns and `obsm` matrices.
//!
//! The input is copied byte for byte to a temporary file beside the output, the additions are
//! written into the copy in anndata ≥ 0.8 encoding, and the copy is renamed into place. The input
//! is never opened for writing. Legacy (anndata ≤ 0.6) tables are rewritten as modern groups.

use super::frame;
use crate::dataset::{ColumnData, Embedding, ObsColumn};
use crate::error::{Error, Result};
use crate::io::atomic::{ensure_not_input, write_atomically};
use hdf5::types::VarLenUnicode;
use hdf5::{File, Group, Location};
use hdf5_metno as hdf5;
use std::path::Path;
use std::str::FromStr;

/// What to add to a copy of the input file.
#[derive(Debug, Clone, Default)]
pub struct Additions {
    /// New (or replaced) `obs` columns, one value per cell of the input file.
    pub obs: Vec<ObsColumn>,
    /// New (or replaced) `obsm` matrices, one row per cell of the input file.
    pub obsm: Vec<Embedding>,
    /// New (or replaced) `uns` entries: flat JSON objects stored as dicts of scalars.
    pub uns: Vec<(String, serde_json::Value)>,
}

type H5Result<T> = std::result::Result<T, String>;

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// HDF5 text ends at a NUL byte, so a NUL inside a text (a model's raw output can hold one) is
/// stored as U+FFFD, the replacement character.
fn vlen(s: &str) -> H5Result<VarLenUnicode> {
    let text = if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    VarLenUnicode::from_str(&text).map_err(|err| format!("text {s:?} cannot be stored: {err}"))
}

pub(super) fn set_str_attr(loc: &Location, name: &str, value: &str) -> H5Result<()> {
    if loc.attr(name).is_ok() {
        loc.delete_attr(name).map_err(e)?;
    }
    let attr = loc.new_attr::<VarLenUnicode>().create(name).map_err(e)?;
    attr.write_scalar(&vlen(value)?).map_err(e)
}

pub(super) fn set_str_array_attr(loc: &Location, name: &str, values: &[String]) -> H5Result<()> {
    if loc.attr(name).is_ok() {
        loc.delete_attr(name).map_err(e)?;
    }
    let data: Vec<VarLenUnicode> = values.iter().map(|s| vlen(s)).collect::<H5Result<_>>()?;
    let attr = loc
        .new_attr::<VarLenUnicode>()
        .shape(data.len())
        .create(name)
        .map_err(e)?;
    attr.write_raw(&data).map_err(e)
}

pub(super) fn encoding(loc: &Location, kind: &str, version: &str) -> H5Result<()> {
    set_str_attr(loc, "encoding-type", kind)?;
    set_str_attr(loc, "encoding-version", version)
}

pub(super) fn write_strings(group: &Group, name: &str, values: &[String]) -> H5Result<()> {
    let data: Vec<VarLenUnicode> = values.iter().map(|s| vlen(s)).collect::<H5Result<_>>()?;
    let ds = group
        .new_dataset_builder()
        .with_data(&data[..])
        .create(name)
        .map_err(e)?;
    encoding(&ds, "string-array", "0.2.0")
}

fn unlink_if_present(group: &Group, name: &str) -> H5Result<()> {
    if group.link_exists(name) {
        group.unlink(name).map_err(e)?;
    }
    Ok(())
}

/// Writes one column in anndata ≥ 0.8 encoding.
pub(super) fn write_column(group: &Group, column: &ObsColumn) -> H5Result<()> {
    unlink_if_present(group, &column.name)?;
    match &column.data {
        ColumnData::Categorical { codes, categories } => {
            let g = group.create_group(&column.name).map_err(e)?;
            encoding(&g, "categorical", "0.2.0")?;
            let ordered = g.new_attr::<bool>().create("ordered").map_err(e)?;
            ordered.write_scalar(&false).map_err(e)?;
            write_strings(&g, "categories", categories)?;
            let ds = g
                .new_dataset_builder()
                .with_data(&codes[..])
                .create("codes")
                .map_err(e)?;
            encoding(&ds, "array", "0.2.0")
        }
        ColumnData::Numeric(v) => {
            let ds = group
                .new_dataset_builder()
                .with_data(&v[..])
                .create(column.name.as_str())
                .map_err(e)?;
            encoding(&ds, "array", "0.2.0")
        }
        ColumnData::Bool(v) => {
            let ds = group
                .new_dataset_builder()
                .with_data(&v[..])
                .create(column.name.as_str())
                .map_err(e)?;
            encoding(&ds, "array", "0.2.0")
        }
        ColumnData::Text(v) => write_strings(group, &column.name, v),
    }
}

/// Stores a flat JSON object as an anndata dict of numeric and string scalars.
fn write_uns_dict(uns: &Group, key: &str, value: &serde_json::Value) -> H5Result<()> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("uns entry '{key}' must be an object"))?;
    unlink_if_present(uns, key)?;
    let g = uns.create_group(key).map_err(e)?;
    encoding(&g, "dict", "0.1.0")?;
    for (name, v) in object {
        if let Some(x) = v.as_f64() {
            let ds = g.new_dataset::<f64>().create(name.as_str()).map_err(e)?;
            ds.write_scalar(&x).map_err(e)?;
            encoding(&ds, "numeric-scalar", "0.2.0")?;
        } else if let Some(text) = v.as_str() {
            let ds = g
                .new_dataset::<VarLenUnicode>()
                .create(name.as_str())
                .map_err(e)?;
            ds.write_scalar(&vlen(text)?).map_err(e)?;
            encoding(&ds, "string", "0.2.0")?;
        }
    }
    Ok(())
}

pub(super) fn write_embedding(group: &Group, emb: &Embedding, n_cells: usize) -> H5Result<()> {
    unlink_if_present(group, &emb.name)?;
    let arr = ndarray::ArrayView2::from_shape((n_cells, emb.n_cols), &emb.data).map_err(e)?;
    let ds = group
        .new_dataset_builder()
        .with_data(arr)
        .create(emb.name.as_str())
        .map_err(e)?;
    encoding(&ds, "array", "0.2.0")
}

/// Rewrites a legacy compound `obs` table as a modern dataframe group holding the same columns.
fn modernise_obs(file: &File) -> H5Result<Group> {
    let old = frame::read_frame(file, "obs")?;
    file.unlink("obs").map_err(e)?;
    let g = file.create_group("obs").map_err(e)?;
    encoding(&g, "dataframe", "0.2.0")?;
    set_str_attr(&g, "_index", "_index")?;
    write_strings(&g, "_index", &old.index)?;
    for c in &old.columns {
        write_column(&g, c)?;
    }
    let names: Vec<String> = old.columns.iter().map(|c| c.name.clone()).collect();
    set_str_array_attr(&g, "column-order", &names)?;
    Ok(g)
}

fn modernise_obsm(file: &File, n_cells: usize) -> H5Result<Group> {
    if let Ok(g) = file.group("obsm") {
        return Ok(g);
    }
    let old = if file.link_exists("obsm") {
        super::read_obsm(file, n_cells)?
    } else {
        Vec::new()
    };
    unlink_if_present(file, "obsm")?;
    let g = file.create_group("obsm").map_err(e)?;
    encoding(&g, "dict", "0.1.0")?;
    for emb in &old {
        write_embedding(&g, emb, n_cells)?;
    }
    Ok(g)
}

fn add_to_copy(copy: &Path, additions: &Additions) -> H5Result<()> {
    let file = super::hdf::open_file(copy, super::hdf::Mode::ReadWrite).map_err(e)?;
    let n_cells = frame::read_frame(&file, "obs")?.index.len();
    for c in &additions.obs {
        let n = frame::column_len(&c.data);
        if n != n_cells {
            return Err(format!(
                "new obs column '{}' has {n} values but the file has {n_cells} cells",
                c.name
            ));
        }
    }
    for m in &additions.obsm {
        if m.data.len() != n_cells * m.n_cols {
            return Err(format!(
                "new obsm '{}' does not have one row per cell ({n_cells})",
                m.name
            ));
        }
    }
    if !additions.obs.is_empty() {
        let obs = match file.group("obs") {
            Ok(g) => g,
            Err(_) => modernise_obs(&file)?,
        };
        let mut order = super::hdf::attr_strings(&obs, "column-order").unwrap_or_default();
        order.retain(|n| !n.is_empty());
        for c in &additions.obs {
            write_column(&obs, c)?;
            if !order.contains(&c.name) {
                order.push(c.name.clone());
            }
        }
        set_str_array_attr(&obs, "column-order", &order)?;
    }
    if !additions.obsm.is_empty() {
        let obsm = modernise_obsm(&file, n_cells)?;
        for m in &additions.obsm {
            write_embedding(&obsm, m, n_cells)?;
        }
    }
    if !additions.uns.is_empty() {
        let uns = match file.group("uns") {
            Ok(g) => g,
            Err(_) => {
                let g = file.create_group("uns").map_err(e)?;
                encoding(&g, "dict", "0.1.0")?;
                g
            }
        };
        for (key, value) in &additions.uns {
            write_uns_dict(&uns, key, value)?;
        }
    }
    file.flush().map_err(e)?;
    Ok(())
}

/// Writes `output` as a copy of `input` plus `additions`. `input` is never modified; `output`
/// appears only when complete.
pub fn write_annotated_h5ad(input: &Path, output: &Path, additions: &Additions) -> Result<()> {
    ensure_not_input(output, &[input])?;
    super::read_h5ad(
        input,
        &super::ReadOptions::default(),
        &crate::Progress::new(),
    )?;
    write_atomically(output, |tmp| {
        let fail = |detail: String| Error::Write {
            path: output.to_path_buf(),
            detail,
        };
        std::fs::copy(input, tmp).map_err(|err| fail(format!("copying the input: {err}")))?;
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| add_to_copy(tmp, additions)));
        caught
            .unwrap_or_else(|_| Err("the HDF5 layer failed unexpectedly".into()))
            .map_err(fail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::h5ad::{ReadOptions, read_h5ad};
    use crate::progress::Progress;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/sentences")
            .join(name)
    }

    #[test]
    fn nul_bytes_in_text_become_replacement_characters() {
        assert_eq!(vlen("a\0b").unwrap().as_str(), "a\u{FFFD}b");
        assert_eq!(vlen("plain").unwrap().as_str(), "plain");
    }

    fn additions(n: usize) -> Additions {
        Additions {
            obs: vec![
                ObsColumn {
                    name: "c2s_label".into(),
                    data: ColumnData::Categorical {
                        codes: (0..n)
                            .map(|i| if i == 0 { -1 } else { (i % 2) as i32 })
                            .collect(),
                        categories: vec!["a".into(), "b".into()],
                    },
                },
                ObsColumn {
                    name: "score".into(),
                    data: ColumnData::Numeric((0..n).map(|i| i as f64).collect()),
                },
            ],
            obsm: vec![Embedding {
                name: "X_c2s".into(),
                n_cols: 3,
                data: (0..n * 3).map(|v| v as f32).collect(),
            }],
            uns: vec![(
                "c2s_fit".into(),
                serde_json::json!({"slope": -0.5, "note": "test"}),
            )],
        }
    }

    /// Modern (anndata 0.12) and old (0.7) inputs get the additions, keep their own content,
    /// and stay byte-identical.
    #[test]
    fn adds_columns_and_embeddings_to_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["obs_meta.h5ad", "legacy_anndata07.h5ad"] {
            let input = fixture(name);
            let before = std::fs::read(&input).unwrap();
            let original = read_h5ad(&input, &ReadOptions::default(), &Progress::new()).unwrap();
            let n = original.n_cells();
            let out = dir.path().join(name);
            write_annotated_h5ad(&input, &out, &additions(n)).unwrap();
            assert_eq!(
                std::fs::read(&input).unwrap(),
                before,
                "{name}: input changed"
            );
            let back = read_h5ad(&out, &ReadOptions::default(), &Progress::new()).unwrap();
            assert_eq!(back.obs_names, original.obs_names);
            for col in &original.obs {
                assert_eq!(
                    back.obs_column(&col.name),
                    Some(col),
                    "{name}: {} changed",
                    col.name
                );
            }
            assert_eq!(
                back.obs_column("c2s_label").unwrap().data,
                additions(n).obs[0].data
            );
            assert_eq!(
                back.embedding("X_c2s").unwrap().data,
                additions(n).obsm[0].data
            );
            for e in &original.obsm {
                assert_eq!(back.embedding(&e.name), Some(e));
            }
            let err = write_annotated_h5ad(&input, &input, &additions(n)).unwrap_err();
            assert!(err.to_string().contains("refusing to overwrite"));
            let short = Additions {
                obs: vec![additions(n).obs[1].clone()],
                ..Default::default()
            };
            let mut short = short;
            short.obs[0].data = ColumnData::Numeric(vec![1.0]);
            let err =
                write_annotated_h5ad(&input, &dir.path().join("bad.h5ad"), &short).unwrap_err();
            assert!(err.to_string().contains("has 1 values"), "{err}");
            assert!(!dir.path().join("bad.h5ad").exists());
        }
    }

    /// anndata ≤ 0.6 files (compound obs/obsm tables) are rewritten as modern groups.
    #[test]
    fn modernises_compound_tables() {
        let pbmc = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/expression/pbmc68k_reduced.h5ad");
        if !pbmc.exists() {
            crate::test_support::skip("the shared PBMC file is absent");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pbmc.h5ad");
        let original = read_h5ad(&pbmc, &ReadOptions::default(), &Progress::new()).unwrap();
        write_annotated_h5ad(&pbmc, &out, &additions(original.n_cells())).unwrap();
        let back = read_h5ad(&out, &ReadOptions::default(), &Progress::new()).unwrap();
        assert_eq!(back.obs.len(), original.obs.len() + 2);
        for col in &original.obs {
            assert_eq!(back.obs_column(&col.name), Some(col));
        }
        assert_eq!(back.obsm.len(), original.obsm.len() + 1);
        assert_eq!(back.palettes, original.palettes);
    }
}

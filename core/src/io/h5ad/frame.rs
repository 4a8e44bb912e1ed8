//! Decoding AnnData data frames (`obs`, `var`, `raw/var`) in all three on-disk generations:
//! anndata ≥ 0.8 (`encoding-type = dataframe`), anndata 0.7 (group + `__categories`) and
//! anndata ≤ 0.6 (one compound dataset, categories in `uns/<col>_categories`).

use super::hdf::{self, HdfResult};
use crate::dataset::{ColumnData, ObsColumn};
use hdf5::types::TypeDescriptor;
use hdf5::{Dataset, File, Group};
use hdf5_metno as hdf5;

/// A decoded data frame: its index and columns in file order.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Row names.
    pub index: Vec<String>,
    /// Columns in file order.
    pub columns: Vec<ObsColumn>,
}

/// Reads the data frame stored at `path` (e.g. "obs", "raw/var", "raw.var").
pub fn read_frame(file: &File, path: &str) -> HdfResult<Frame> {
    if let Ok(group) = file.group(path) {
        read_group_frame(&group)
    } else if let Ok(ds) = file.dataset(path) {
        read_compound_frame(file, &ds)
    } else {
        Err(format!("no '{path}' element"))
    }
}

fn read_group_frame(group: &Group) -> HdfResult<Frame> {
    let index_name = hdf::attr_string(group, "_index").unwrap_or_else(|| "_index".to_string());
    let index = match group.dataset(&index_name) {
        Ok(ds) => hdf::read_strings(&ds)?,
        Err(_) => match group.dataset("index") {
            Ok(ds) => hdf::read_strings(&ds)?,
            Err(_) => return Err(format!("{} has no index ('{index_name}')", group.name())),
        },
    };
    let order =
        hdf::attr_strings(group, "column-order").filter(|o| !o.is_empty() && !o[0].is_empty());
    let members = group.member_names().map_err(|e| e.to_string())?;
    let names: Vec<String> = match order {
        Some(order) => order,
        None => members
            .into_iter()
            .filter(|m| m != &index_name && m != "index" && m != "__categories")
            .collect(),
    };
    let legacy_categories = group.group("__categories").ok();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let data = read_group_column(group, &name, legacy_categories.as_ref())
            .map_err(|e| format!("column '{name}' of {}: {e}", group.name()))?;
        if let Some(data) = data {
            columns.push(ObsColumn { name, data });
        }
    }
    check_lengths(&index, &columns, &group.name())?;
    Ok(Frame { index, columns })
}

/// Reads one column of a group-style frame; `None` for element kinds we do not show.
fn read_group_column(
    frame: &Group,
    name: &str,
    legacy_categories: Option<&Group>,
) -> HdfResult<Option<ColumnData>> {
    if let Ok(col) = frame.group(name) {
        return read_encoded_group_column(&col);
    }
    let ds = frame.dataset(name).map_err(|e| e.to_string())?;
    if let Some(cats) = legacy_categories.and_then(|g| g.dataset(name).ok()) {
        let codes = ds.read_raw::<i32>().map_err(|e| e.to_string())?;
        let categories = hdf::read_strings(&cats)?;
        return Ok(Some(ColumnData::Categorical { codes, categories }));
    }
    read_plain_column(&ds).map(Some)
}

fn read_plain_column(ds: &Dataset) -> HdfResult<ColumnData> {
    if hdf::is_string(ds) {
        Ok(ColumnData::Text(hdf::read_strings(ds)?))
    } else if hdf::is_bool(ds) {
        Ok(ColumnData::Bool(hdf::read_bools(ds)?))
    } else if hdf::is_numeric(ds) {
        Ok(ColumnData::Numeric(
            ds.read_raw::<f64>().map_err(|e| e.to_string())?,
        ))
    } else {
        Err(format!("unsupported element type {}", hdf::dtype_name(ds)))
    }
}

/// Group-valued columns of anndata ≥ 0.8: categorical and nullable arrays.
fn read_encoded_group_column(col: &Group) -> HdfResult<Option<ColumnData>> {
    let encoding = hdf::attr_string(col, "encoding-type").unwrap_or_default();
    let ds = |n: &str| col.dataset(n).map_err(|e| format!("missing '{n}': {e}"));
    match encoding.as_str() {
        "categorical" => {
            let codes = ds("codes")?.read_raw::<i32>().map_err(|e| e.to_string())?;
            let categories = hdf::read_strings(&ds("categories")?)?;
            Ok(Some(ColumnData::Categorical { codes, categories }))
        }
        "nullable-integer" | "nullable-boolean" | "nullable-string-array" => {
            let values = ds("values")?;
            let mask = hdf::read_bools(&ds("mask")?)?;
            let data = match read_plain_column(&values)? {
                ColumnData::Numeric(mut v) => {
                    v.iter_mut()
                        .zip(&mask)
                        .filter(|(_, m)| **m)
                        .for_each(|(x, _)| *x = f64::NAN);
                    ColumnData::Numeric(v)
                }
                ColumnData::Text(mut v) => {
                    v.iter_mut()
                        .zip(&mask)
                        .filter(|(_, m)| **m)
                        .for_each(|(x, _)| x.clear());
                    ColumnData::Text(v)
                }
                other => other,
            };
            Ok(Some(data))
        }
        _ => Ok(None),
    }
}

/// anndata ≤ 0.6: one compound dataset; categorical codes with `uns/<col>_categories`.
fn read_compound_frame(file: &File, ds: &Dataset) -> HdfResult<Frame> {
    let fields = hdf::compound_fields(ds).ok_or_else(|| format!("{} is not a table", ds.name()))?;
    let mut index = Vec::new();
    let mut columns = Vec::new();
    for (name, ty) in fields {
        let data = match &ty {
            TypeDescriptor::FixedAscii(w) | TypeDescriptor::FixedUnicode(w) => {
                let strings = hdf::compound_field_strings(ds, &name, *w)?;
                if name == "index" {
                    index = strings;
                    continue;
                }
                ColumnData::Text(strings)
            }
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                let values = hdf::compound_field_i64(ds, &name)?;
                match file.dataset(&format!("uns/{name}_categories")) {
                    Ok(cats) => ColumnData::Categorical {
                        codes: values.iter().map(|&v| v as i32).collect(),
                        categories: hdf::read_strings(&cats)?,
                    },
                    Err(_) => ColumnData::Numeric(values.iter().map(|&v| v as f64).collect()),
                }
            }
            TypeDescriptor::Float(_) => ColumnData::Numeric(hdf::compound_field_f64(ds, &name, 1)?),
            d if hdf::descriptor_is_bool(d) => {
                ColumnData::Bool(hdf::compound_field_bools(ds, &name, ty.clone())?)
            }
            _ => continue,
        };
        columns.push(ObsColumn { name, data });
    }
    if index.is_empty() {
        index = (0..ds.size()).map(|i| i.to_string()).collect();
    }
    check_lengths(&index, &columns, &ds.name())?;
    Ok(Frame { index, columns })
}

/// Length of a column's data.
pub fn column_len(data: &ColumnData) -> usize {
    match data {
        ColumnData::Categorical { codes, .. } => codes.len(),
        ColumnData::Numeric(v) => v.len(),
        ColumnData::Bool(v) => v.len(),
        ColumnData::Text(v) => v.len(),
    }
}

fn check_lengths(index: &[String], columns: &[ObsColumn], what: &str) -> HdfResult<()> {
    for c in columns {
        let n = column_len(&c.data);
        if n != index.len() {
            return Err(format!(
                "column '{}' of {what} has {n} values but the index has {}; the file is inconsistent",
                c.name,
                index.len()
            ));
        }
        if let ColumnData::Categorical { codes, categories } = &c.data
            && codes.iter().any(|&k| k >= categories.len() as i32)
        {
            return Err(format!(
                "categorical column '{}' of {what} has codes beyond its {} categories",
                c.name,
                categories.len()
            ));
        }
    }
    Ok(())
}

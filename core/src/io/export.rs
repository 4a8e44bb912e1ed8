//! Tables out: cell sentences and chosen `obs` columns as Parquet or CSV (via polars).

use super::atomic::write_atomically;
use crate::dataset::{ColumnData, Dataset};
use crate::error::{Error, Result};
use polars::prelude::*;
use std::path::Path;

/// Output table formats, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Apache Parquet (`.parquet`).
    Parquet,
    /// Comma-separated values (`.csv`).
    Csv,
}

impl TableFormat {
    /// The format implied by `path`'s extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_lowercase)
            .as_deref()
        {
            Some("parquet") | Some("pq") => Ok(TableFormat::Parquet),
            Some("csv") => Ok(TableFormat::Csv),
            _ => Err(Error::InvalidArgument(format!(
                "cannot tell the table format of {}; use a .parquet or .csv file name",
                path.display()
            ))),
        }
    }
}

/// A polars column from an `obs` column: categories and text become strings, numbers `f64`.
pub fn obs_series(name: &str, data: &ColumnData) -> Column {
    let name = PlSmallStr::from(name);
    match data {
        ColumnData::Categorical { codes, categories } => Column::new(
            name,
            codes
                .iter()
                .map(|&k| (k >= 0).then(|| categories[k as usize].as_str()))
                .collect::<Vec<Option<&str>>>(),
        ),
        ColumnData::Numeric(v) => Column::new(name, v),
        ColumnData::Bool(v) => Column::new(name, v),
        ColumnData::Text(v) => Column::new(name, v),
    }
}

/// The table `cell_id`, `cell_sentence`, then the requested `obs` columns (in the order given).
pub fn sentence_table(
    ds: &Dataset,
    sentences: &[String],
    obs_columns: &[String],
) -> Result<DataFrame> {
    let mut columns = vec![
        Column::new("cell_id".into(), &ds.obs_names),
        Column::new("cell_sentence".into(), sentences),
    ];
    for name in obs_columns {
        if name == "cell_id" || name == "cell_sentence" {
            return Err(Error::InvalidArgument(format!(
                "obs column name '{name}' is reserved for the output"
            )));
        }
        let col = ds.obs_column(name).ok_or_else(|| {
            let names: Vec<&str> = ds.obs.iter().map(|c| c.name.as_str()).collect();
            Error::InvalidArgument(format!(
                "obs has no column '{name}'; available: {}",
                names.join(", ")
            ))
        })?;
        columns.push(obs_series(name, &col.data));
    }
    DataFrame::new(sentences.len(), columns).map_err(|e| Error::InvalidData(e.to_string()))
}

/// Writes a table atomically in the format implied by the extension.
pub fn write_table(path: &Path, df: &mut DataFrame) -> Result<()> {
    let format = TableFormat::from_path(path)?;
    write_atomically(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::Write {
            path: path.into(),
            detail: e.to_string(),
        })?;
        let result = match format {
            TableFormat::Parquet => ParquetWriter::new(file).finish(df).map(|_| ()),
            TableFormat::Csv => CsvWriter::new(file).include_header(true).finish(df),
        };
        result.map_err(|e| Error::Write {
            path: path.into(),
            detail: e.to_string(),
        })
    })
}

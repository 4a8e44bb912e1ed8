//! Tables out: cell sentences and chosen `obs` columns as Parquet or CSV (via polars).

use super::atomic::write_atomically;
use super::parquet::ParquetRowGroupWriter;
use crate::dataset::{ColumnData, Dataset};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::sentence::{SentenceChunk, SentenceOptions, for_each_sentence_chunk};
use polars::prelude::*;
use polars_arrow::array::{Utf8ViewArray, View};
use polars_arrow::datatypes::ArrowDataType;
use polars_buffer::Buffer;
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

/// The `cell_sentence` column of a chunk. The chunk's text buffers become the column's data
/// buffers as they are (no copy); only the 16-byte views are built.
pub fn sentence_column(chunk: SentenceChunk) -> Column {
    let name = PlSmallStr::from("cell_sentence");
    let fits = chunk
        .parts
        .iter()
        .all(|p| p.text.len() <= u32::MAX as usize);
    if !fits || chunk.parts.len() > u32::MAX as usize {
        let text: Vec<&str> = chunk.iter().collect();
        return Column::new(name, text);
    }
    let mut views = Vec::with_capacity(chunk.len());
    for (b, part) in chunk.parts.iter().enumerate() {
        views.extend(
            part.spans()
                .map(|r| View::new_from_bytes(&part.text[r.clone()], b as u32, r.start as u32)),
        );
    }
    let buffers: Vec<Buffer<u8>> = chunk
        .parts
        .into_iter()
        .map(|p| Buffer::from(p.text))
        .collect();
    let array = Utf8ViewArray::try_new(
        ArrowDataType::Utf8View,
        Buffer::from(views),
        Buffer::from(buffers),
        None,
    )
    .expect("views are built from spans of whole UTF-8 names in their own buffers");
    StringChunked::with_chunk(name, array).into_column()
}

/// The table rows `rows` of `cell_id`, the given `cell_sentence` column for those rows, then the
/// requested `obs` columns in the order given.
fn sentence_rows(
    ds: &Dataset,
    rows: std::ops::Range<usize>,
    sentences: Column,
    obs_columns: &[String],
) -> Result<DataFrame> {
    let mut columns = vec![
        Column::new("cell_id".into(), &ds.obs_names[rows.clone()]),
        sentences,
    ];
    for name in obs_columns {
        if name == "cell_id" || name == "cell_sentence" {
            return Err(Error::InvalidArgument(format!(
                "obs column name '{name}' is reserved for the output"
            )));
        }
        ds.require_obs_columns(std::slice::from_ref(name))?;
        let col = ds.obs_column(name).expect("checked above");
        columns.push(obs_series(name, &col.data).slice(rows.start as i64, rows.len()));
    }
    DataFrame::new(rows.len(), columns).map_err(|e| Error::InvalidData(e.to_string()))
}

enum TableWriter {
    Parquet(Box<ParquetRowGroupWriter<std::fs::File>>),
    Csv(polars::io::csv::write::BatchedWriter<std::fs::File>),
}

impl TableWriter {
    fn new(format: TableFormat, file: std::fs::File, schema: &Schema) -> PolarsResult<Self> {
        Ok(match format {
            // Cell ids and sentences are unique: no dictionary is tried for them.
            TableFormat::Parquet => TableWriter::Parquet(Box::new(ParquetRowGroupWriter::new(
                file,
                schema,
                &["cell_id", "cell_sentence"],
            )?)),
            TableFormat::Csv => {
                TableWriter::Csv(CsvWriter::new(file).include_header(true).batched(schema)?)
            }
        })
    }

    fn write(&mut self, df: &DataFrame) -> PolarsResult<()> {
        match self {
            TableWriter::Parquet(w) => w.write(df),
            TableWriter::Csv(w) => w.write_batch(df),
        }
    }

    fn finish(self) -> PolarsResult<()> {
        match self {
            TableWriter::Parquet(w) => w.finish(),
            TableWriter::Csv(mut w) => w.finish(),
        }
    }
}

/// Builds the cell sentences of `ds` and streams them, chunk by chunk, into a new table at
/// `path` with the requested `obs` columns, so only one chunk of sentences is held at a time.
/// With `keep`, the sentences are also collected there. Returns the number of rows written.
pub fn write_sentence_table(
    path: &Path,
    ds: &Dataset,
    options: &SentenceOptions,
    obs_columns: &[String],
    progress: &Progress,
    mut keep: Option<&mut Vec<String>>,
) -> Result<usize> {
    let format = TableFormat::from_path(path)?;
    ds.require_obs_columns(obs_columns)?;
    let fail = |e: PolarsError| Error::Write {
        path: path.into(),
        detail: e.to_string(),
    };
    let mut rows = 0;
    write_atomically(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::Write {
            path: path.into(),
            detail: e.to_string(),
        })?;
        let no_sentences = sentence_column(SentenceChunk::default());
        let empty = sentence_rows(ds, 0..0, no_sentences, obs_columns)?;
        let mut writer = TableWriter::new(format, file, empty.schema()).map_err(fail)?;
        // Encoding and compression run on their own thread while the next chunk is ranked.
        let (send, receive) = std::sync::mpsc::sync_channel::<DataFrame>(2);
        std::thread::scope(|scope| {
            let encoder = scope.spawn(move || -> PolarsResult<()> {
                for df in receive {
                    writer.write(&df)?;
                }
                writer.finish()
            });
            let ranked = for_each_sentence_chunk(
                &ds.expression,
                &ds.obs_names,
                &ds.var_names,
                options,
                progress,
                |first, chunk| {
                    let n = chunk.len();
                    if let Some(keep) = keep.as_deref_mut() {
                        keep.extend(chunk.iter().map(String::from));
                    }
                    let df =
                        sentence_rows(ds, first..first + n, sentence_column(chunk), obs_columns)?;
                    rows += n;
                    // A closed channel means the encoder failed; its error is reported below.
                    let _ = send.send(df);
                    Ok(())
                },
            );
            drop(send);
            let encoded = encoder.join().unwrap_or_else(|_| {
                Err(PolarsError::ComputeError(
                    "the table writer stopped unexpectedly".into(),
                ))
            });
            ranked?;
            encoded.map_err(fail)
        })
    })?;
    Ok(rows)
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

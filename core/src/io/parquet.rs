//! Parquet output with row groups encoded and compressed on all cores.
//!
//! polars' batched writer encodes and compresses a row group's pages one after another inside
//! its `write_batch`. A sentence column is hundreds of MiB of text, so that single thread
//! bounds the whole conversion. Here every column of a row group is cut into row ranges of
//! about one data page, each range is encoded and compressed on the rayon pool, and the pages
//! are handed to polars' writer in order (a column chunk may consist of any number of data
//! pages). Columns that may be dictionary-encoded stay whole: a column chunk holds at most one
//! dictionary page.

use polars::prelude::*;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, Encoding, ParquetType, StatisticsOptions, Version,
    WriteOptions, array_to_columns, compress, get_dtype_encoding,
};
use rayon::prelude::*;

/// Uncompressed bytes per independently encoded range (polars' data page size).
const RANGE_BYTES: usize = 1 << 20;

/// A Parquet file written row group by row group (LZ4 pages, statistics as polars writes them).
pub struct ParquetRowGroupWriter<W: std::io::Write> {
    inner: polars::io::parquet::write::BatchedWriter<W>,
    fields: Vec<ParquetType>,
    encodings: Vec<Vec<Encoding>>,
    options: WriteOptions,
}

impl<W: std::io::Write> ParquetRowGroupWriter<W> {
    /// A writer for tables with `schema`. Columns named in `plain` hold (nearly) unique values
    /// and are written without trying a dictionary; they are the ones encoded in parallel.
    pub fn new(writer: W, schema: &Schema, plain: &[&str]) -> PolarsResult<Self> {
        let compression = ParquetCompression::Lz4Raw;
        let mut inner = ParquetWriter::new(writer)
            .with_compression(compression)
            .batched(schema)?;
        let fields = inner.parquet_schema().fields().to_vec();
        let encodings = schema
            .iter()
            .map(|(name, dtype)| {
                if plain.contains(&name.as_str()) {
                    vec![Encoding::Plain]
                } else {
                    get_dtype_encoding(&dtype.to_arrow(CompatLevel::newest()))
                }
            })
            .collect();
        Ok(Self {
            inner,
            fields,
            encodings,
            options: WriteOptions {
                statistics: StatisticsOptions::default(),
                version: Version::V1,
                compression: CompressionOptions::Lz4Raw,
                data_page_size: None,
            },
        })
    }

    /// Writes `df` (with the schema given to [`ParquetRowGroupWriter::new`]) as one row group.
    pub fn write(&mut self, df: &DataFrame) -> PolarsResult<()> {
        if df.height() == 0 {
            return Ok(());
        }
        let mut chunks = Vec::new();
        for ((column, field), encoding) in
            df.columns().iter().zip(&self.fields).zip(&self.encodings)
        {
            chunks.extend(self.column_chunks(column, field, encoding)?);
        }
        self.inner.write_row_group(df.height() as u64, &chunks)
    }

    /// The compressed pages of one column, one list per leaf (one for a flat column).
    fn column_chunks(
        &self,
        column: &Column,
        field: &ParquetType,
        encoding: &[Encoding],
    ) -> PolarsResult<Vec<Vec<CompressedPage>>> {
        let series = column.as_materialized_series().rechunk();
        let array = series.to_arrow(0, CompatLevel::newest());
        let rows = array.len();
        let ranges = if encoding.iter().all(|e| *e == Encoding::Plain) {
            (series.estimated_size() / RANGE_BYTES).clamp(1, rows)
        } else {
            1
        };
        let per_range = rows.div_ceil(ranges);
        let options = self.options;
        // Per range, per leaf, the range's pages.
        let pieces: Vec<Vec<Vec<CompressedPage>>> = (0..rows)
            .step_by(per_range)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let piece = array.sliced(start, per_range.min(rows - start));
                array_to_columns(piece, field.clone(), options, encoding)?
                    .into_iter()
                    .map(|leaf| {
                        leaf.map(|page| Ok(compress(page?, Vec::new(), options.compression)?))
                            .collect::<PolarsResult<Vec<_>>>()
                    })
                    .collect()
            })
            .collect::<PolarsResult<_>>()?;
        let mut leaves: Vec<Vec<CompressedPage>> = Vec::new();
        for piece in pieces {
            leaves.resize_with(piece.len(), Vec::new);
            for (leaf, pages) in leaves.iter_mut().zip(piece) {
                leaf.extend(pages);
            }
        }
        Ok(leaves)
    }

    /// Writes the footer.
    pub fn finish(self) -> PolarsResult<()> {
        self.inner.finish().map(|_| ())
    }
}

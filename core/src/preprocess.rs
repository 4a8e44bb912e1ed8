//! Preprocessing as the Cell2Sentence tutorial does it, each step optional and recorded:
//! filter cells by expressed genes, filter genes by expressing cells, normalise each cell to a
//! total, then log1p (base 10 as C2S prescribes, or natural log as scanpy).

use crate::dataset::{ColumnData, Dataset, MatrixKind};
use crate::error::{Error, Result};
use crate::matrix::CsrMatrix;
use crate::progress::Progress;
use rayon::prelude::*;

/// Base of the log1p transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogBase {
    /// log10(1 + x), as the C2S tutorials prescribe.
    #[serde(rename = "10")]
    Ten,
    /// ln(1 + x), as scanpy's default.
    #[serde(rename = "e")]
    E,
}

impl std::fmt::Display for LogBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogBase::Ten => "10",
            LogBase::E => "e",
        })
    }
}

/// Which steps to run; `None` skips a step.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessOptions {
    /// Drop cells with fewer expressed genes than this (C2S default 200; C2S-Scale used 100).
    pub min_genes: Option<usize>,
    /// Then drop genes expressed in fewer remaining cells than this (default 3).
    pub min_cells: Option<usize>,
    /// Normalise each cell's total to this value (default 1e4).
    pub target_sum: Option<f64>,
    /// Then apply log1p in this base.
    pub log_base: Option<LogBase>,
}

impl PreprocessOptions {
    /// The C2S tutorial's pipeline: 200 genes, 3 cells, total 1e4, log10.
    pub fn c2s() -> Self {
        Self {
            min_genes: Some(200),
            min_cells: Some(3),
            target_sum: Some(1e4),
            log_base: Some(LogBase::Ten),
        }
    }

    /// No preprocessing at all.
    pub fn none() -> Self {
        Self {
            min_genes: None,
            min_cells: None,
            target_sum: None,
            log_base: None,
        }
    }
}

/// What preprocessing did, for the record kept with the output.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PreprocessReport {
    /// One line per step, in order.
    pub steps: Vec<String>,
    /// Cells in the input, before filtering.
    pub input_cells: usize,
    /// Cells kept, as indices into the input.
    #[serde(skip)]
    pub kept_cells: Vec<usize>,
    /// Genes kept, as indices into the input.
    #[serde(skip)]
    pub kept_genes: Vec<usize>,
    /// The log base applied, if any.
    pub log_base: Option<LogBase>,
}

/// Keeps rows whose positive entries number at least `min_genes`; returns kept row indices.
pub fn filter_cells(m: &mut CsrMatrix, min_genes: usize) -> Vec<usize> {
    let keep: Vec<usize> = (0..m.n_rows)
        .filter(|&i| m.row(i).1.iter().filter(|v| **v > 0.0).count() >= min_genes)
        .collect();
    let mut write = 0usize;
    let mut indptr = Vec::with_capacity(keep.len() + 1);
    indptr.push(0u64);
    for &i in &keep {
        let (start, end) = (m.indptr[i] as usize, m.indptr[i + 1] as usize);
        m.indices.copy_within(start..end, write);
        m.data.copy_within(start..end, write);
        write += end - start;
        indptr.push(write as u64);
    }
    m.indices.truncate(write);
    m.data.truncate(write);
    m.indptr = indptr;
    m.n_rows = keep.len();
    keep
}

/// Keeps columns with a positive value in at least `min_cells` rows; returns kept column indices.
pub fn filter_genes(m: &mut CsrMatrix, min_cells: usize) -> Vec<usize> {
    let mut counts = vec![0usize; m.n_cols];
    for (c, v) in m.indices.iter().zip(&m.data) {
        if *v > 0.0 {
            counts[*c as usize] += 1;
        }
    }
    let keep: Vec<usize> = (0..m.n_cols).filter(|&j| counts[j] >= min_cells).collect();
    let mut new_index = vec![u32::MAX; m.n_cols];
    for (new, &old) in keep.iter().enumerate() {
        new_index[old] = new as u32;
    }
    let mut write = 0usize;
    let mut read = 0usize;
    for i in 0..m.n_rows {
        let end = m.indptr[i + 1] as usize;
        while read < end {
            let j = new_index[m.indices[read] as usize];
            if j != u32::MAX {
                m.indices[write] = j;
                m.data[write] = m.data[read];
                write += 1;
            }
            read += 1;
        }
        m.indptr[i + 1] = write as u64;
    }
    m.indices.truncate(write);
    m.data.truncate(write);
    m.n_cols = keep.len();
    keep
}

/// Scales each row to sum to `target` (rows summing to zero stay zero).
pub fn normalize_total(m: &mut CsrMatrix, target: f64) {
    let indptr = &m.indptr;
    let mut rows: Vec<&mut [f32]> = Vec::with_capacity(m.n_rows);
    let mut rest: &mut [f32] = &mut m.data;
    for i in 0..m.n_rows {
        let len = (indptr[i + 1] - indptr[i]) as usize;
        let (row, tail) = rest.split_at_mut(len);
        rows.push(row);
        rest = tail;
    }
    rows.into_par_iter().for_each(|row| {
        let total: f64 = row.iter().map(|&v| f64::from(v)).sum();
        if total > 0.0 {
            let scale = target / total;
            row.iter_mut()
                .for_each(|v| *v = (f64::from(*v) * scale) as f32);
        }
    });
}

/// Applies log1p in place.
pub fn log1p(m: &mut CsrMatrix, base: LogBase) {
    m.data.par_iter_mut().for_each(|v| {
        *v = match base {
            LogBase::E => v.ln_1p(),
            LogBase::Ten => (f64::from(*v).ln_1p() / std::f64::consts::LN_10) as f32,
        }
    });
}

/// Runs the chosen steps on the dataset's loaded matrix and subsets cells and genes to match.
///
/// Normalisation and log1p run only on raw counts (a matrix that is already normalised is left
/// as it is, and the report says so); scaled data is refused.
pub fn preprocess_dataset(
    ds: &mut Dataset,
    options: &PreprocessOptions,
    progress: &Progress,
) -> Result<PreprocessReport> {
    let kind = ds
        .loaded
        .as_ref()
        .and_then(|c| ds.matrices.iter().find(|m| &m.choice == c))
        .map(|m| m.kind)
        .unwrap_or(MatrixKind::Empty);
    let matrix_name = ds
        .loaded
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    if kind == MatrixKind::Scaled {
        return Err(Error::InvalidData(format!(
            "matrix {matrix_name} is scaled (it has negative values), so genes cannot be ranked by expression; choose raw counts or log-normalized data instead (e.g. --matrix raw or --matrix layer:counts)"
        )));
    }
    let mut report = PreprocessReport::default();
    let m = &mut ds.expression;
    report.input_cells = m.n_rows;
    report.kept_cells = (0..m.n_rows).collect();
    report.kept_genes = (0..m.n_cols).collect();
    if let Some(min_genes) = options.min_genes {
        progress.set_stage("filtering cells");
        let before = m.n_rows;
        let kept = filter_cells(m, min_genes);
        report.kept_cells = kept.iter().map(|&i| report.kept_cells[i]).collect();
        report.steps.push(format!(
            "filter_cells(min_genes={min_genes}): kept {} of {before} cells",
            m.n_rows
        ));
        if m.n_rows == 0 {
            return Err(Error::InvalidData(format!(
                "no cell has at least {min_genes} expressed genes in matrix {matrix_name}; lower --min-genes (C2S-Scale used 100) or check the matrix"
            )));
        }
    }
    progress.check()?;
    if let Some(min_cells) = options.min_cells {
        progress.set_stage("filtering genes");
        let before = m.n_cols;
        let kept = filter_genes(m, min_cells);
        report.kept_genes = kept.iter().map(|&j| report.kept_genes[j]).collect();
        report.steps.push(format!(
            "filter_genes(min_cells={min_cells}): kept {} of {before} genes",
            m.n_cols
        ));
        if m.n_cols == 0 {
            return Err(Error::InvalidData(format!(
                "no gene is expressed in at least {min_cells} cells; lower --min-cells"
            )));
        }
    }
    progress.check()?;
    let counts = kind == MatrixKind::RawCounts;
    if let Some(target) = options.target_sum {
        if counts {
            progress.set_stage("normalizing totals");
            normalize_total(m, target);
            report
                .steps
                .push(format!("normalize_total(target_sum={target})"));
        } else {
            report.steps.push(format!(
                "normalize_total skipped: matrix {matrix_name} is not raw counts"
            ));
        }
    }
    if let Some(base) = options.log_base {
        if counts {
            progress.set_stage("log1p");
            log1p(m, base);
            report.log_base = Some(base);
            report.steps.push(format!("log1p(base={base})"));
        } else {
            report.steps.push(format!(
                "log1p skipped: matrix {matrix_name} is not raw counts"
            ));
        }
    }
    subset_annotations(ds, &report.kept_cells, &report.kept_genes);
    if let Some(info) = ds
        .loaded
        .clone()
        .and_then(|c| ds.matrices.iter_mut().find(|m| m.choice == c))
    {
        info.shape = (ds.expression.n_rows, ds.expression.n_cols);
        if counts && report.log_base.is_some() {
            info.kind = MatrixKind::LogNormalized;
        }
    }
    Ok(report)
}

/// Keeps the given cells (obs, obsm) and genes (var names) of a dataset, in the given order.
fn subset_annotations(ds: &mut Dataset, cells: &[usize], genes: &[usize]) {
    if cells.len() != ds.obs_names.len() {
        ds.obs_names = cells.iter().map(|&i| ds.obs_names[i].clone()).collect();
        for col in &mut ds.obs {
            col.data = match &col.data {
                ColumnData::Categorical { codes, categories } => ColumnData::Categorical {
                    codes: cells.iter().map(|&i| codes[i]).collect(),
                    categories: categories.clone(),
                },
                ColumnData::Numeric(v) => {
                    ColumnData::Numeric(cells.iter().map(|&i| v[i]).collect())
                }
                ColumnData::Bool(v) => ColumnData::Bool(cells.iter().map(|&i| v[i]).collect()),
                ColumnData::Text(v) => {
                    ColumnData::Text(cells.iter().map(|&i| v[i].clone()).collect())
                }
            };
        }
        for e in &mut ds.obsm {
            let w = e.n_cols;
            e.data = cells
                .iter()
                .flat_map(|&i| e.data[i * w..(i + 1) * w].to_vec())
                .collect();
        }
    }
    if genes.len() != ds.var_names.len() {
        ds.var_names = genes.iter().map(|&j| ds.var_names[j].clone()).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> CsrMatrix {
        // 3 cells x 3 genes: cell 0 expresses 3 genes, cell 1 two, cell 2 one.
        CsrMatrix {
            n_rows: 3,
            n_cols: 3,
            indptr: vec![0, 3, 5, 6],
            indices: vec![0, 1, 2, 0, 1, 0],
            data: vec![1.0, 3.0, 6.0, 2.0, 2.0, 5.0],
        }
    }

    #[test]
    fn filters_cells_then_genes() {
        let mut m = matrix();
        assert_eq!(filter_cells(&mut m, 2), [0, 1]);
        assert_eq!(m.indptr, [0, 3, 5]);
        assert_eq!(filter_genes(&mut m, 2), [0, 1]);
        assert_eq!(
            (m.n_cols, m.indices.clone(), m.data.clone()),
            (2, vec![0, 1, 0, 1], vec![1.0, 3.0, 2.0, 2.0])
        );
    }

    #[test]
    fn normalizes_and_logs() {
        let mut m = matrix();
        normalize_total(&mut m, 10.0);
        assert_eq!(&m.data[..3], &[1.0, 3.0, 6.0]);
        assert_eq!(&m.data[3..5], &[5.0, 5.0]);
        log1p(&mut m, LogBase::Ten);
        assert!((m.data[2] - 7f32.log10()).abs() < 1e-6);
        let mut m = matrix();
        log1p(&mut m, LogBase::E);
        assert!((m.data[0] - 2f32.ln()).abs() < 1e-6);
    }
}

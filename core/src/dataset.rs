//! An annotated single-cell dataset in memory, as read from an `.h5ad` file.

use crate::matrix::CsrMatrix;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which expression matrix of an AnnData file to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MatrixChoice {
    /// The main matrix `X`.
    X,
    /// `raw/X`, with gene names from `raw/var`.
    Raw,
    /// `layers/<name>`.
    Layer(String),
}

impl std::fmt::Display for MatrixChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatrixChoice::X => write!(f, "X"),
            MatrixChoice::Raw => write!(f, "raw"),
            MatrixChoice::Layer(name) => write!(f, "layer:{name}"),
        }
    }
}

/// What the values of a matrix look like, detected from its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MatrixKind {
    /// Non-negative integers: raw UMI or read counts.
    RawCounts,
    /// Non-negative, non-integer values with a log-like range: normalised and log-transformed.
    LogNormalized,
    /// Non-negative, non-integer values too large for a log scale (normalised, not logged).
    Normalized,
    /// Contains negative values: scaled / z-scored data (cannot make cell sentences).
    Scaled,
    /// Nothing stored (all zero) or not yet inspected.
    Empty,
}

/// Summary of one matrix found in the file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MatrixInfo {
    /// Which matrix this is.
    pub choice: MatrixChoice,
    /// Rows × columns.
    pub shape: (usize, usize),
    /// Storage: "csr", "csc" or "dense".
    pub storage: String,
    /// Element type as stored, e.g. "f32", "i64".
    pub dtype: String,
    /// Detected content.
    pub kind: MatrixKind,
}

/// Values of one `obs` column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Categorical: `codes[i]` indexes `categories`, −1 means missing.
    Categorical {
        /// Code of each cell (−1 = missing).
        codes: Vec<i32>,
        /// Category labels in stored order.
        categories: Vec<String>,
    },
    /// Numbers (integers are widened; missing values are NaN).
    Numeric(Vec<f64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Free text.
    Text(Vec<String>),
}

impl ColumnData {
    /// Number of cells.
    pub fn len(&self) -> usize {
        match self {
            Self::Categorical { codes, .. } => codes.len(),
            Self::Numeric(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::Text(v) => v.len(),
        }
    }

    /// Whether the column has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cell `i`'s value as text, `None` when missing (numbers as Rust prints them, booleans as
    /// Python does: `True`, `False`).
    pub fn text_at(&self, i: usize) -> Option<String> {
        match self {
            Self::Categorical { codes, categories } => {
                let k = *codes.get(i)?;
                (k >= 0).then(|| categories[k as usize].clone())
            }
            Self::Numeric(v) => v.get(i).filter(|x| !x.is_nan()).map(|x| x.to_string()),
            Self::Bool(v) => v
                .get(i)
                .map(|&b| if b { "True" } else { "False" }.to_string()),
            Self::Text(v) => v.get(i).cloned(),
        }
    }

    /// The distinct values that occur, as text: categories in stored order, other values
    /// sorted.
    pub fn distinct_values(&self) -> Vec<String> {
        match self {
            Self::Categorical { codes, categories } => {
                let mut used = vec![false; categories.len()];
                for &k in codes {
                    if k >= 0 {
                        used[k as usize] = true;
                    }
                }
                categories
                    .iter()
                    .zip(used)
                    .filter(|(_, u)| *u)
                    .map(|(c, _)| c.clone())
                    .collect()
            }
            _ => {
                let set: std::collections::BTreeSet<String> =
                    (0..self.len()).filter_map(|i| self.text_at(i)).collect();
                set.into_iter().collect()
            }
        }
    }
}

/// A named `obs` column.
#[derive(Debug, Clone, PartialEq)]
pub struct ObsColumn {
    /// Column name.
    pub name: String,
    /// Values, one per cell.
    pub data: ColumnData,
}

/// A 2-D (or wider) embedding from `obsm`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Key in `obsm`, e.g. `X_umap`.
    pub name: String,
    /// Number of components (columns).
    pub n_cols: usize,
    /// `n_cells × n_cols` values, row-major.
    pub data: Vec<f32>,
}

/// An annotated dataset: cells, genes, annotations, embeddings and one loaded matrix.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
    /// Cell ids (`obs` index).
    pub obs_names: Vec<String>,
    /// Gene names used in sentences (symbols when the file has them), aligned with the loaded matrix's columns.
    pub var_names: Vec<String>,
    /// Where `var_names` came from: "index" or a `var` column name.
    pub gene_column: String,
    /// `obs` columns in file order.
    pub obs: Vec<ObsColumn>,
    /// `obsm` embeddings.
    pub obsm: Vec<Embedding>,
    /// Every matrix found in the file.
    pub matrices: Vec<MatrixInfo>,
    /// The matrix loaded into [`Dataset::expression`].
    pub loaded: Option<MatrixChoice>,
    /// The loaded expression matrix (cells × `var_names`).
    pub expression: CsrMatrix,
    /// Colour palettes from `uns['<column>_colors']`, as `#rrggbb` strings.
    pub palettes: BTreeMap<String, Vec<String>>,
}

impl Dataset {
    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.obs_names.len()
    }

    /// The `obs` column called `name`.
    pub fn obs_column(&self, name: &str) -> Option<&ObsColumn> {
        self.obs.iter().find(|c| c.name == name)
    }

    /// Checks that every named `obs` column exists, naming the missing one and the alternatives.
    pub fn require_obs_columns(&self, names: &[String]) -> crate::Result<()> {
        match names.iter().find(|n| self.obs_column(n).is_none()) {
            Some(name) => Err(self.missing_column(name)),
            None => Ok(()),
        }
    }

    /// Obs column `name`, or an error naming the columns there are.
    pub fn require_obs_column(&self, name: &str) -> crate::Result<&ObsColumn> {
        self.obs_column(name)
            .ok_or_else(|| self.missing_column(name))
    }

    fn missing_column(&self, name: &str) -> crate::Error {
        let available: Vec<&str> = self.obs.iter().map(|c| c.name.as_str()).collect();
        crate::Error::InvalidArgument(format!(
            "obs has no column '{name}'; available: {}",
            available.join(", ")
        ))
    }

    /// The cells whose `column` reads `value` (as [`ColumnData::text_at`] spells it).
    pub fn rows_where(&self, column: &str, value: &str) -> crate::Result<Vec<usize>> {
        let data = &self.require_obs_column(column)?.data;
        let rows: Vec<usize> = (0..data.len())
            .filter(|&i| data.text_at(i).as_deref() == Some(value))
            .collect();
        if rows.is_empty() {
            let values = data.distinct_values();
            let shown: Vec<&str> = values.iter().take(12).map(String::as_str).collect();
            return Err(crate::Error::InvalidArgument(format!(
                "no cell has {column} = '{value}'; its values include: {}{}",
                shown.join(", "),
                if values.len() > 12 { ", ..." } else { "" }
            )));
        }
        Ok(rows)
    }

    /// The embedding called `name`.
    pub fn embedding(&self, name: &str) -> Option<&Embedding> {
        self.obsm.iter().find(|e| e.name == name)
    }
}

//! The obs table's model, free of UI code: a dataset's cell ids and `obs` columns as a polars
//! [`DataFrame`], a [`Query`] (filter text, sort, only selected) and the row order it gives.
//!
//! The filter text is a list of terms, all of which must hold (quotes keep spaces in a term):
//!
//! - `word`: the cell id or any text/categorical column contains `word` (case-insensitive);
//! - `column:text`: that column contains `text`;
//! - `column=value`, `column!=value`: equal / not equal (text case-insensitive);
//! - `column>value`, `>=`, `<`, `<=`: numeric comparisons on numeric columns.
//!
//! ```text
//! cell_type="CD4 T" n_counts>=2000 donor
//! ```

use std::sync::Arc;

use c2s_core::dataset::{ColumnData, Dataset};
use polars::prelude::*;

/// Name of the frame column holding each row's cell index.
const ROW: &str = "#row";

/// Label of the cell id column (the `obs` index).
pub const CELL_COLUMN: &str = "cell";

/// How a number is shown: integers without decimals, others with four; NaN (missing) as blank.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}")
    }
}

/// Sort order of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// Column index (0 = cell id, k = obs column k − 1).
    pub column: usize,
    /// Largest first.
    pub descending: bool,
}

/// What rows the table shows, in what order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// Filter text (see the module docs).
    pub filter: String,
    /// Sort order; `None` keeps the dataset's order.
    pub sort: Option<Sort>,
    /// Only the cells flagged here (one flag per cell); `None` for all cells.
    pub only: Option<Arc<Vec<bool>>>,
}

/// A comparison in a filter term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `:` contains (text).
    Contains,
    /// `=` or `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// One parsed filter term.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// Lower-cased text that some text column must contain.
    Any(String),
    /// Column index, comparison and the value as typed.
    Column(usize, Op, String),
}

/// The obs table as a polars frame: `#row` (cell index), then one column per table column.
#[derive(Debug, Clone)]
pub struct ObsFrame {
    frame: DataFrame,
    /// Column labels: `cell`, then the obs column names.
    names: Vec<String>,
}

/// Frame column name of table column `k` (labels may clash with `#row` or each other).
fn key(k: usize) -> String {
    format!("#{k}")
}

fn polars_error(e: PolarsError) -> String {
    format!("table: {e}")
}

impl ObsFrame {
    /// Builds the frame of `d`'s cell ids and obs columns (categories become strings).
    pub fn build(d: &Dataset) -> Result<Self, String> {
        let n = d.n_cells();
        let mut columns = vec![
            Column::new(ROW.into(), (0..n as IdxSize).collect::<Vec<IdxSize>>()),
            Column::new(key(0).into(), &d.obs_names),
        ];
        let mut names = vec![CELL_COLUMN.to_string()];
        for (k, c) in d.obs.iter().enumerate() {
            let column = match &c.data {
                // Missing numbers (NaN) become nulls: they match no comparison and sort last.
                ColumnData::Numeric(v) => Column::new(
                    key(k + 1).into(),
                    v.iter()
                        .map(|x| (!x.is_nan()).then_some(*x))
                        .collect::<Vec<Option<f64>>>(),
                ),
                data => c2s_core::io::export::obs_series(&key(k + 1), data),
            };
            columns.push(column);
            names.push(c.name.clone());
        }
        let frame = DataFrame::new(n, columns).map_err(polars_error)?;
        Ok(Self { frame, names })
    }

    /// Number of rows (cells).
    pub fn n_rows(&self) -> usize {
        self.frame.height()
    }

    /// Column labels: `cell`, then the obs columns.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn column(&self, k: usize) -> &Column {
        self.frame
            .column(&key(k))
            .expect("every label has a frame column")
    }

    /// The text shown for column `col` of cell `row`.
    pub fn text(&self, col: usize, row: usize) -> String {
        match self.column(col).get(row) {
            Ok(AnyValue::Null) | Err(_) => String::new(),
            Ok(AnyValue::String(s)) => s.to_string(),
            Ok(AnyValue::StringOwned(s)) => s.to_string(),
            Ok(AnyValue::Float64(v)) => format_number(v),
            Ok(AnyValue::Boolean(b)) => b.to_string(),
            Ok(other) => other.to_string(),
        }
    }

    /// Index of the column labelled `name` (exact match first, then ignoring case).
    fn find(&self, name: &str) -> Result<usize, String> {
        self.names
            .iter()
            .position(|c| c == name)
            .or_else(|| self.names.iter().position(|c| c.eq_ignore_ascii_case(name)))
            .ok_or_else(|| format!("no column '{name}' (columns: {})", self.names.join(", ")))
    }

    /// Parses filter text into terms, checking column names and values.
    pub fn parse(&self, text: &str) -> Result<Vec<Term>, String> {
        split_terms(text)?
            .into_iter()
            .map(|(name, op, value)| match name {
                None => Ok(Term::Any(value.to_lowercase())),
                Some(name) => {
                    let k = self.find(&name)?;
                    self.check(k, op, &value)?;
                    Ok(Term::Column(k, op, value))
                }
            })
            .collect()
    }

    /// Whether `op value` makes sense for column `k`.
    fn check(&self, k: usize, op: Op, value: &str) -> Result<(), String> {
        let name = &self.names[k];
        match self.column(k).dtype() {
            DataType::Float64 => {
                value.trim().parse::<f64>().map(|_| ()).map_err(|_| {
                    format!("'{value}' is not a number (column '{name}' holds numbers)")
                })
            }
            DataType::Boolean => {
                if !matches!(op, Op::Eq | Op::Ne | Op::Contains) {
                    return Err(format!("column '{name}' is true/false: use = or !="));
                }
                parse_bool(value)
                    .map(|_| ())
                    .ok_or_else(|| format!("'{value}' is not true or false (column '{name}')"))
            }
            _ if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) => Err(format!(
                "column '{name}' holds text: use =, != or : (contains), not <, >"
            )),
            _ => Ok(()),
        }
    }

    /// The mask of rows that satisfy `term`.
    fn mask(&self, term: &Term) -> Result<BooleanChunked, String> {
        match term {
            Term::Any(needle) => {
                let mut mask = BooleanChunked::full("".into(), false, self.n_rows());
                for k in 0..self.names.len() {
                    if let Ok(ca) = self.column(k).str() {
                        mask = &mask | &contains(ca, needle);
                    }
                }
                Ok(mask)
            }
            Term::Column(k, op, value) => {
                let col = self.column(*k);
                match col.dtype() {
                    DataType::Float64 => {
                        let ca = col.f64().map_err(polars_error)?;
                        let v: f64 = value
                            .trim()
                            .parse()
                            .map_err(|_| format!("'{value}' is not a number"))?;
                        Ok(match op {
                            Op::Contains | Op::Eq => ca.equal(v),
                            Op::Ne => ca.not_equal(v),
                            Op::Lt => ca.lt(v),
                            Op::Le => ca.lt_eq(v),
                            Op::Gt => ca.gt(v),
                            Op::Ge => ca.gt_eq(v),
                        })
                    }
                    DataType::Boolean => {
                        let ca = col.bool().map_err(polars_error)?;
                        let v = parse_bool(value)
                            .ok_or_else(|| format!("'{value}' is not true or false"))?;
                        let keep_equal = *op != Op::Ne;
                        Ok(ca
                            .iter()
                            .map(|b| b.map(|b| (b == v) == keep_equal))
                            .collect())
                    }
                    _ => {
                        let ca = col.str().map_err(polars_error)?;
                        let needle = value.to_lowercase();
                        Ok(match op {
                            Op::Contains => contains(ca, &needle),
                            Op::Eq => equals(ca, &needle),
                            Op::Ne => !&equals(ca, &needle),
                            _ => return Err("text columns compare with =, != or :".into()),
                        })
                    }
                }
            }
        }
    }

    /// The rows `query` shows, in order. `stale` is polled between steps: when it returns true
    /// the work stops and `Ok(None)` comes back.
    pub fn rows(
        &self,
        query: &Query,
        stale: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<usize>>, String> {
        let terms = self.parse(&query.filter)?;
        let n = self.n_rows();
        if let Some(only) = &query.only
            && only.len() != n
        {
            return Err(format!("selection has {} flags for {n} cells", only.len()));
        }
        if terms.is_empty() && query.sort.is_none() && query.only.is_none() {
            return Ok(Some((0..n).collect()));
        }
        let mut mask = match &query.only {
            Some(only) => BooleanChunked::from_iter_values("".into(), only.iter().copied()),
            None => BooleanChunked::full("".into(), true, n),
        };
        for term in &terms {
            if stale() {
                return Ok(None);
            }
            mask = &mask & &self.mask(term)?;
        }
        if stale() {
            return Ok(None);
        }
        let mut selected = vec![ROW.to_string()];
        if let Some(sort) = query.sort {
            selected.push(key(sort.column));
        }
        let mut sub = self
            .frame
            .select(selected)
            .and_then(|f| f.filter(&mask))
            .map_err(polars_error)?;
        if let Some(sort) = query.sort {
            if stale() {
                return Ok(None);
            }
            let options = SortMultipleOptions::default()
                .with_order_descending(sort.descending)
                .with_nulls_last(true)
                .with_maintain_order(true);
            sub = sub
                .sort([key(sort.column)], options)
                .map_err(polars_error)?;
        }
        let rows = sub
            .column(ROW)
            .and_then(|c| c.idx())
            .map_err(polars_error)?
            .into_no_null_iter()
            .map(|i| i as usize)
            .collect();
        Ok(Some(rows))
    }
}

/// Splits filter text into `(column, op, value)` triples; `column` is `None` for bare words.
fn split_terms(text: &str) -> Result<Vec<(Option<String>, Op, String)>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in text.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    const OPS: [(&str, Op); 8] = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        ("==", Op::Eq),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
        (":", Op::Contains),
    ];
    tokens
        .into_iter()
        .map(|token| {
            let Some(at) = token.find(['<', '>', '=', '!', ':']) else {
                return Ok((None, Op::Contains, token));
            };
            let (name, rest) = token.split_at(at);
            let (symbol, op) = OPS
                .iter()
                .find(|(s, _)| rest.starts_with(s))
                .ok_or_else(|| format!("'{token}': '!' must be followed by '='"))?;
            if name.is_empty() {
                return Err(format!("'{token}': put a column name before '{symbol}'"));
            }
            Ok((
                Some(name.to_string()),
                *op,
                rest[symbol.len()..].to_string(),
            ))
        })
        .collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Rows whose text contains the lower-cased `needle`, ignoring case.
fn contains(ca: &StringChunked, needle: &str) -> BooleanChunked {
    ca.iter()
        .map(|s| s.map(|s| contains_ignore_case(s, needle)))
        .collect()
}

/// Rows whose text equals the lower-cased `needle`, ignoring case.
fn equals(ca: &StringChunked, needle: &str) -> BooleanChunked {
    ca.iter()
        .map(|s| {
            s.map(|s| {
                if s.is_ascii() {
                    s.eq_ignore_ascii_case(needle)
                } else {
                    s.to_lowercase() == needle
                }
            })
        })
        .collect()
}

/// Whether `hay` contains the lower-cased `needle`, ignoring case (no allocation for ASCII).
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        hay.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    } else {
        hay.to_lowercase().contains(needle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2s_core::dataset::ObsColumn;

    /// Six cells: a category with a missing value, a number with a NaN, a flag and free text.
    fn dataset() -> Dataset {
        Dataset {
            obs_names: ["c0", "c1", "c2", "c3", "c4", "c5"]
                .map(String::from)
                .to_vec(),
            obs: vec![
                ObsColumn {
                    name: "cell_type".into(),
                    data: ColumnData::Categorical {
                        codes: vec![0, 1, 0, -1, 2, 1],
                        categories: vec!["CD4 T".into(), "B".into(), "NK".into()],
                    },
                },
                ObsColumn {
                    name: "n_counts".into(),
                    data: ColumnData::Numeric(vec![300.0, 100.0, f64::NAN, 200.0, 100.0, 50.5]),
                },
                ObsColumn {
                    name: "doublet".into(),
                    data: ColumnData::Bool(vec![false, true, false, false, true, false]),
                },
                ObsColumn {
                    name: "note".into(),
                    data: ColumnData::Text(
                        ["ok", "Bright", "ok", "", "dim", "ok"]
                            .map(String::from)
                            .to_vec(),
                    ),
                },
            ],
            ..Default::default()
        }
    }

    fn rows(query: &Query) -> Result<Vec<usize>, String> {
        let frame = ObsFrame::build(&dataset()).unwrap();
        frame.rows(query, &|| false).map(|r| r.expect("not stale"))
    }

    fn filter(text: &str) -> Result<Vec<usize>, String> {
        rows(&Query {
            filter: text.into(),
            ..Default::default()
        })
    }

    #[test]
    fn frame_holds_ids_and_columns_as_text() {
        let frame = ObsFrame::build(&dataset()).unwrap();
        assert_eq!(frame.n_rows(), 6);
        assert_eq!(
            frame.names(),
            &["cell", "cell_type", "n_counts", "doublet", "note"].map(String::from)
        );
        assert_eq!(frame.text(0, 2), "c2");
        assert_eq!(frame.text(1, 0), "CD4 T");
        assert_eq!(frame.text(1, 3), "", "missing category");
        assert_eq!(frame.text(2, 0), "300");
        assert_eq!(frame.text(2, 5), "50.5000");
        assert_eq!(frame.text(2, 2), "", "NaN");
        assert_eq!(frame.text(3, 1), "true");
    }

    #[test]
    fn no_query_keeps_the_dataset_order() {
        assert_eq!(rows(&Query::default()).unwrap(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn sorts_numbers_and_text_both_ways_stably() {
        let by = |column, descending| {
            rows(&Query {
                sort: Some(Sort { column, descending }),
                ..Default::default()
            })
            .unwrap()
        };
        // Missing numbers go last either way; ties keep the dataset order.
        assert_eq!(by(2, false), vec![5, 1, 4, 3, 0, 2]);
        assert_eq!(by(2, true), vec![0, 3, 1, 4, 5, 2]);
        // The missing category (null) goes last either way.
        assert_eq!(by(1, false), vec![1, 5, 0, 2, 4, 3]);
        assert_eq!(by(1, true), vec![4, 0, 2, 1, 5, 3]);
        assert_eq!(by(0, true), vec![5, 4, 3, 2, 1, 0]);
    }

    #[test]
    fn filters_words_columns_and_numbers() {
        // A bare word searches ids, categories and text, ignoring case.
        assert_eq!(filter("b").unwrap(), vec![1, 5]);
        assert_eq!(filter("C3").unwrap(), vec![3]);
        assert_eq!(filter("\"cd4 t\"").unwrap(), vec![0, 2]);
        assert_eq!(filter("cell_type=\"CD4 T\"").unwrap(), vec![0, 2]);
        assert_eq!(filter("cell_type!=b").unwrap(), vec![0, 2, 4]);
        assert_eq!(filter("note:o").unwrap(), vec![0, 2, 5]);
        assert_eq!(filter("n_counts>=100").unwrap(), vec![0, 1, 3, 4]);
        assert_eq!(filter("n_counts<100").unwrap(), vec![5]);
        assert_eq!(filter("N_COUNTS=100").unwrap(), vec![1, 4]);
        assert_eq!(filter("doublet=true").unwrap(), vec![1, 4]);
        // Terms combine with AND.
        assert_eq!(filter("n_counts>=100 doublet=no ok").unwrap(), vec![0]);
        assert_eq!(filter("  ").unwrap(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn only_selected_combines_with_filter_and_sort() {
        let only = Some(Arc::new(vec![true, true, false, true, true, false]));
        let got = rows(&Query {
            filter: "n_counts>50".into(),
            sort: Some(Sort {
                column: 2,
                descending: true,
            }),
            only,
        })
        .unwrap();
        assert_eq!(got, vec![0, 3, 1, 4]);
    }

    #[test]
    fn bad_filters_explain_themselves() {
        let err = |t: &str| filter(t).unwrap_err();
        assert!(
            err("size>3").contains("no column 'size'"),
            "{}",
            err("size>3")
        );
        assert!(err("n_counts>lots").contains("not a number"));
        assert!(err("cell_type>B").contains("holds text"));
        assert!(err("doublet=maybe").contains("not true or false"));
        assert!(err(">3").contains("column name"));
        assert!(err("a!b").contains("followed by '='"));
        assert!(err("\"open").contains("quote"));
        let frame = ObsFrame::build(&dataset()).unwrap();
        let wrong = Query {
            only: Some(Arc::new(vec![true])),
            ..Default::default()
        };
        assert!(frame.rows(&wrong, &|| false).is_err());
    }

    #[test]
    fn stale_work_stops() {
        let frame = ObsFrame::build(&dataset()).unwrap();
        let query = Query {
            filter: "ok".into(),
            ..Default::default()
        };
        assert_eq!(frame.rows(&query, &|| true).unwrap(), None);
    }

    #[test]
    fn case_insensitive_search() {
        assert!(contains_ignore_case("Bright", "righ"));
        assert!(!contains_ignore_case("dim", "dimmer"));
        assert!(contains_ignore_case("Zürich", "zür"));
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(0.25), "0.2500");
    }
}

//! Agreement of predicted labels with known ones: accuracy and the confusion table.

use std::collections::BTreeSet;

/// A confusion table: how often each true label was predicted as each label.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Confusion {
    /// True labels (rows), sorted.
    pub truth: Vec<String>,
    /// Predicted labels (columns): those that are also true labels first, in the rows' order,
    /// then the others, sorted — so agreement lies on the diagonal.
    pub predicted: Vec<String>,
    /// `truth × predicted` counts, row-major.
    pub counts: Vec<usize>,
    /// Pairs counted.
    pub total: usize,
    /// Pairs whose labels are equal.
    pub correct: usize,
}

impl Confusion {
    /// Counts `(true, predicted)` label pairs.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let truth: Vec<String> = pairs
            .clone()
            .into_iter()
            .map(|(t, _)| t)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(String::from)
            .collect();
        let other: BTreeSet<&str> = pairs
            .clone()
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| truth.binary_search_by(|t| t.as_str().cmp(p)).is_err())
            .collect();
        let predicted: Vec<String> = truth
            .iter()
            .cloned()
            .chain(other.into_iter().map(String::from))
            .collect();
        let mut out = Confusion {
            counts: vec![0; truth.len() * predicted.len()],
            truth,
            predicted,
            ..Default::default()
        };
        for (t, p) in pairs {
            let row = out.truth.binary_search_by(|x| x.as_str().cmp(t));
            let col = out.predicted.iter().position(|x| x == p);
            if let (Ok(row), Some(col)) = (row, col) {
                out.counts[row * out.predicted.len() + col] += 1;
            }
            out.total += 1;
            out.correct += usize::from(t == p);
        }
        out
    }

    /// Fraction of pairs that agree (0 when there are none).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// How often true label `row` was predicted as label `col`.
    pub fn count(&self, row: usize, col: usize) -> usize {
        self.counts[row * self.predicted.len() + col]
    }

    /// The fraction of true label `row` predicted correctly (its recall).
    pub fn recall(&self, row: usize) -> f64 {
        let n: usize = (0..self.predicted.len()).map(|c| self.count(row, c)).sum();
        self.count(row, row) as f64 / n.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pairs_with_agreement_on_the_diagonal() {
        let pairs = [
            ("T cell", "T cell"),
            ("B cell", "T cell"),
            ("B cell", "B cell"),
            ("T cell", "NK cell"),
            ("T cell", "T cell"),
        ];
        let c = Confusion::new(pairs.iter().copied());
        assert_eq!(c.truth, ["B cell", "T cell"]);
        assert_eq!(c.predicted, ["B cell", "T cell", "NK cell"]);
        assert_eq!(c.counts, [1, 1, 0, 0, 2, 1]);
        assert_eq!((c.correct, c.total), (3, 5));
        assert!((c.accuracy() - 0.6).abs() < 1e-12);
        assert!((c.recall(1) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn no_pairs_give_an_empty_table() {
        let c = Confusion::new(std::iter::empty());
        assert!(c.truth.is_empty() && c.counts.is_empty());
        assert_eq!(c.accuracy(), 0.0);
    }
}

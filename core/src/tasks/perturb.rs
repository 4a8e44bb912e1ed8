//! Perturbation effects: mean expression of predicted perturbed cells against their controls,
//! gene by gene, on the log scale of the data (so the difference is a log-fold change), and the
//! genes that move most.

use crate::matrix::CsrMatrix;

/// One gene's change.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneChange {
    /// Column of the gene.
    pub gene: usize,
    /// Mean of the predicted cells minus mean of the controls (log scale).
    pub log_fold_change: f64,
    /// Mean of the predicted cells.
    pub predicted_mean: f64,
    /// Mean of the controls.
    pub control_mean: f64,
}

/// Column means of the rows `rows` of `m`.
pub fn column_means(m: &CsrMatrix, rows: &[usize]) -> Vec<f64> {
    let mut sums = vec![0f64; m.n_cols];
    for &r in rows {
        let (cols, vals) = m.row(r);
        for (&c, &v) in cols.iter().zip(vals) {
            sums[c as usize] += f64::from(v);
        }
    }
    let n = rows.len().max(1) as f64;
    sums.into_iter().map(|s| s / n).collect()
}

/// Every gene's change from `control` (rows `control_rows` of the real data) to `predicted`
/// (rows `predicted_rows`), sorted by log-fold change, largest increase first.
pub fn gene_changes(
    predicted: &CsrMatrix,
    predicted_rows: &[usize],
    control: &CsrMatrix,
    control_rows: &[usize],
) -> Vec<GeneChange> {
    let p = column_means(predicted, predicted_rows);
    let c = column_means(control, control_rows);
    let mut out: Vec<GeneChange> = p
        .iter()
        .zip(&c)
        .enumerate()
        .map(|(gene, (&pm, &cm))| GeneChange {
            gene,
            log_fold_change: pm - cm,
            predicted_mean: pm,
            control_mean: cm,
        })
        .collect();
    out.sort_by(|a, b| {
        b.log_fold_change
            .total_cmp(&a.log_fold_change)
            .then(a.gene.cmp(&b.gene))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(rows: &[&[(u32, f32)]], n_cols: usize) -> CsrMatrix {
        let mut m = CsrMatrix {
            n_rows: rows.len(),
            n_cols,
            indptr: vec![0],
            ..Default::default()
        };
        for r in rows {
            for &(c, v) in *r {
                m.indices.push(c);
                m.data.push(v);
            }
            m.indptr.push(m.data.len() as u64);
        }
        m
    }

    #[test]
    fn changes_are_mean_differences_sorted_by_increase() {
        let control = csr(&[&[(0, 1.0), (1, 2.0)], &[(0, 3.0)], &[(2, 9.0)]], 3);
        let predicted = csr(&[&[(1, 4.0), (2, 1.0)], &[(1, 2.0), (2, 1.0)]], 3);
        // Controls are rows 0 and 1: means [2, 1, 0]; predicted means [0, 3, 1].
        let changes = gene_changes(&predicted, &[0, 1], &control, &[0, 1]);
        let order: Vec<usize> = changes.iter().map(|c| c.gene).collect();
        assert_eq!(order, [1, 2, 0]);
        assert_eq!(changes[0].log_fold_change, 2.0);
        assert_eq!(changes[1].log_fold_change, 1.0);
        assert_eq!(changes[2].log_fold_change, -2.0);
        assert_eq!(changes[2].control_mean, 2.0);
    }
}

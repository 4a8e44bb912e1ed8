//! The real cells that a model's generated or predicted cells are measured against: the
//! dataset's expression on C2S's scale (raw counts normalised to 10⁴ per cell and
//! log10(1 + x)-transformed; other matrices as they are, cells and genes all kept) and its
//! rank → expression fit, which turns generated sentences into expression on the same scale.

use crate::dataset::{Dataset, MatrixKind};
use crate::error::Result;
use crate::inverse::{self, InverseFit};
use crate::matrix::CsrMatrix;
use crate::preprocess::{LogBase, PreprocessOptions, preprocess_dataset};
use crate::progress::Progress;

/// A dataset's cells on C2S's scale.
#[derive(Debug, Clone)]
pub struct RealCells {
    /// Cells × genes, every cell and gene of the dataset.
    pub expression: CsrMatrix,
    /// The kind of `expression`'s values.
    pub kind: MatrixKind,
    /// Its rank → expression fit.
    pub fit: InverseFit,
}

/// The cells of `dataset` on C2S's scale, with their fit (seed 0, as `convert --fit-out`).
pub fn real_cells(dataset: &Dataset, progress: &Progress) -> Result<RealCells> {
    let mut scaled = Dataset {
        obs_names: dataset.obs_names.clone(),
        var_names: dataset.var_names.clone(),
        matrices: dataset.matrices.clone(),
        loaded: dataset.loaded.clone(),
        expression: dataset.expression.clone(),
        ..Default::default()
    };
    let options = PreprocessOptions {
        min_genes: None,
        min_cells: None,
        target_sum: Some(1e4),
        log_base: Some(LogBase::Ten),
    };
    let report = preprocess_dataset(&mut scaled, &options, progress)?;
    let kind = scaled
        .loaded
        .as_ref()
        .and_then(|c| scaled.matrices.iter().find(|m| &m.choice == c))
        .map_or(MatrixKind::LogNormalized, |m| m.kind);
    progress.set_stage("fitting rank → expression transform");
    let fit = inverse::fit_inverse(
        &scaled.expression,
        inverse::DEFAULT_SAMPLE,
        0,
        report.log_base.map(|b| b.to_string()),
    )?;
    Ok(RealCells {
        expression: scaled.expression,
        kind,
        fit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{MatrixChoice, MatrixInfo};
    use crate::embed::synthetic::clustered_counts;

    #[test]
    fn raw_counts_are_normalised_and_logged_with_every_cell_kept() {
        let counts = clustered_counts(40, 60, 2, 300, 3).counts;
        let dataset = Dataset {
            obs_names: (0..40).map(|i| format!("c{i}")).collect(),
            var_names: (0..60).map(|j| format!("G{j}")).collect(),
            matrices: vec![MatrixInfo {
                choice: MatrixChoice::X,
                shape: (40, 60),
                storage: "csr".into(),
                dtype: "f32".into(),
                kind: MatrixKind::RawCounts,
            }],
            loaded: Some(MatrixChoice::X),
            expression: counts.clone(),
            ..Default::default()
        };
        let real = real_cells(&dataset, &Progress::new()).unwrap();
        assert_eq!(real.kind, MatrixKind::LogNormalized);
        assert_eq!(real.expression.n_rows, 40);
        assert_eq!(real.expression.n_cols, 60);
        let (cols, vals) = counts.row(0);
        let total: f32 = vals.iter().sum();
        let expected = (1.0 + f64::from(vals[0] / total) * 1e4).log10();
        assert_eq!(real.expression.row(0).0, cols);
        assert!((f64::from(real.expression.row(0).1[0]) - expected).abs() < 1e-5);
        assert_eq!(real.fit.log_base.as_deref(), Some("10"));
        assert!(real.fit.slope < 0.0);
    }
}

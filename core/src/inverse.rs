//! The rank → expression transform of Cell2Sentence: fit `expression = slope · log10(1 + rank)
//! + intercept` on a dataset, and rebuild an expression vector from any (generated) sentence.

use crate::error::{Error, Result};
use crate::matrix::CsrMatrix;
use crate::rng::NumpyRandomState;
use rayon::prelude::*;
use std::collections::HashMap;

/// Cells sampled for the fit, as the reference does.
pub const DEFAULT_SAMPLE: usize = 1024;
/// Points with `log10(1 + rank)` below this enter the regression (ranks up to 998).
const X_THRESHOLD: f64 = 3.0;

/// A fitted inverse transform and how well it explains the data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InverseFit {
    /// Change of expression per unit of log10(1 + rank) (negative).
    pub slope: f64,
    /// Expression predicted at rank 0.
    pub intercept: f64,
    /// Coefficient of determination of the prediction over all non-zero points.
    pub r2: f64,
    /// Pearson correlation of prediction and value.
    pub pearson: f64,
    /// Spearman correlation of prediction and value.
    pub spearman: f64,
    /// The log base of the values ("10", "e"), or `None` when the input was used as it was.
    pub log_base: Option<String>,
    /// Cells used.
    pub n_cells: usize,
    /// Non-zero (rank, value) points used for the scores.
    pub n_points: usize,
}

impl InverseFit {
    /// Expression predicted for a gene at 0-based sentence position `rank`.
    pub fn expression_at(&self, rank: usize) -> f64 {
        self.intercept + self.slope * (1.0 + rank as f64).log10()
    }
}

/// Fits the transform on up to `sample` cells (all when fewer; else a seeded random sample).
///
/// Ties do not affect the fit: equal values occupy the same set of ranks whatever their order.
pub fn fit_inverse(
    m: &CsrMatrix,
    sample: usize,
    seed: u32,
    log_base: Option<String>,
) -> Result<InverseFit> {
    let rows: Vec<usize> = if m.n_rows <= sample {
        (0..m.n_rows).collect()
    } else {
        let mut rng = NumpyRandomState::new(seed);
        let mut all: Vec<usize> = (0..m.n_rows).collect();
        rng.shuffle(&mut all);
        let mut chosen = all[..sample].to_vec();
        chosen.sort_unstable();
        chosen
    };
    let points: Vec<(f64, f64)> = rows
        .par_iter()
        .flat_map_iter(|&i| {
            let mut vals: Vec<f32> = m.row(i).1.iter().copied().filter(|v| *v > 0.0).collect();
            vals.sort_unstable_by(|a, b| b.total_cmp(a));
            vals.into_iter()
                .enumerate()
                .map(|(r, v)| ((1.0 + r as f64).log10(), f64::from(v)))
        })
        .collect();
    let fit_points: Vec<&(f64, f64)> = points.iter().filter(|(x, _)| *x < X_THRESHOLD).collect();
    if fit_points.len() < 2 {
        return Err(Error::InvalidData(
            "too few expressed values to fit the rank → expression transform (need at least 2)"
                .into(),
        ));
    }
    let n = fit_points.len() as f64;
    let mx = fit_points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = fit_points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = fit_points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = fit_points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return Err(Error::InvalidData(
            "every cell expresses a single gene; the rank → expression fit is undefined".into(),
        ));
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let y: Vec<f64> = points.iter().map(|p| p.1).collect();
    let pred: Vec<f64> = points.iter().map(|p| intercept + slope * p.0).collect();
    Ok(InverseFit {
        slope,
        intercept,
        r2: r_squared(&y, &pred),
        pearson: pearson(&y, &pred),
        spearman: pearson(&average_ranks(&y), &average_ranks(&pred)),
        log_base,
        n_cells: rows.len(),
        n_points: points.len(),
    })
}

fn r_squared(y: &[f64], pred: &[f64]) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let ss_res: f64 = y.iter().zip(pred).map(|(a, b)| (a - b).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|a| (a - mean).powi(2)).sum();
    1.0 - ss_res / ss_tot
}

/// Pearson correlation coefficient.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    sab / (saa * sbb).sqrt()
}

/// Ranks (1-based) with ties given their average rank, as scipy's `rankdata`.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_unstable_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    ranks
}

/// Rebuilds an expression vector (in `genes` order) from a sentence.
///
/// Words are matched case-insensitively; a trailing "." on the last word is ignored; unknown
/// words get no value but still use up a position; a gene named more than once gets the mean of
/// its positions' values; genes not named are 0. Negative predictions are clipped to 0.
pub fn reconstruct(sentence: &str, genes: &[String], fit: &InverseFit) -> Vec<f32> {
    let index: HashMap<String, usize> = genes
        .iter()
        .enumerate()
        .map(|(j, g)| (g.to_uppercase(), j))
        .rev()
        .collect();
    let mut sums = vec![0f64; genes.len()];
    let mut counts = vec![0u32; genes.len()];
    let trimmed = sentence.trim().trim_end_matches('.');
    for (rank, word) in trimmed.split_whitespace().enumerate() {
        if let Some(&j) = index.get(&word.to_uppercase()) {
            sums[j] += fit.expression_at(rank);
            counts[j] += 1;
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(&s, &c)| {
            if c == 0 {
                0.0
            } else {
                (s / f64::from(c)).max(0.0) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(slope: f64, intercept: f64) -> InverseFit {
        InverseFit {
            slope,
            intercept,
            r2: 1.0,
            pearson: 1.0,
            spearman: 1.0,
            log_base: None,
            n_cells: 1,
            n_points: 1,
        }
    }

    #[test]
    fn reconstructs_reference_example() {
        // Reference vector for "MALAT1 B2M cd3e CD3E" with upstream's "last position wins" is
        // [1.8311, 0, 2.2379, 2.0345]; we average duplicate positions (2 and 3) instead.
        let genes: Vec<String> = ["CD3E", "IL7R", "MALAT1", "B2M"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = fit(-0.6757, 2.2379);
        let v = reconstruct("MALAT1 B2M cd3e CD3E.", &genes, &f);
        let cd3e = (f.expression_at(2) + f.expression_at(3)) / 2.0;
        assert!((f64::from(v[0]) - cd3e).abs() < 1e-5);
        assert_eq!(v[1], 0.0);
        assert!((v[2] - 2.2379).abs() < 1e-4);
        assert!((v[3] - 2.0345).abs() < 1e-4);
        assert!((f.expression_at(3) - 1.8311).abs() < 1e-4);
    }

    #[test]
    fn unknown_words_keep_their_position() {
        let genes = vec!["A".to_string(), "B".to_string()];
        let f = fit(-1.0, 2.0);
        let v = reconstruct("A FOO B", &genes, &f);
        assert!((f64::from(v[1]) - f.expression_at(2)).abs() < 1e-6);
    }

    #[test]
    fn fit_recovers_an_exact_line() {
        // Each cell has values intercept + slope*log10(1+rank) at ranks 0..50.
        let (slope, intercept) = (-0.5, 2.0);
        let mut m = CsrMatrix {
            n_rows: 10,
            n_cols: 50,
            indptr: vec![0],
            ..Default::default()
        };
        for _ in 0..10 {
            for r in 0..50u32 {
                m.indices.push(r);
                m.data
                    .push((intercept + slope * (1.0 + f64::from(r)).log10()) as f32);
            }
            m.indptr.push(m.data.len() as u64);
        }
        let f = fit_inverse(&m, DEFAULT_SAMPLE, 0, None).unwrap();
        assert!((f.slope - slope).abs() < 1e-5 && (f.intercept - intercept).abs() < 1e-5);
        assert!(f.r2 > 0.9999 && f.pearson > 0.9999 && (f.spearman - 1.0).abs() < 1e-9);
    }

    #[test]
    fn average_ranks_handle_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0]),
            [1.5, 3.0, 1.5, 4.0]
        );
    }
}

//! A 2-D embedding for datasets without one: PCA of the loaded matrix by block power iteration
//! on the sparse matrix (never densified), run in a job with progress and cancel.
//!
//! Raw counts are normalised to 10,000 per cell and log1p-transformed first (scanpy's default);
//! the 2,000 most variable genes are used. UMAP on top of the PCA is not done yet.

use c2s_core::dataset::{Dataset, Embedding, MatrixKind};

use super::jobs::{JobError, Progress};
use c2s_core::rng::SplitMix64;

/// Name of the computed embedding in `obsm`.
pub const COMPUTED_PCA: &str = "X_pca_computed";

/// Genes kept (highest variance).
pub const TOP_GENES: usize = 2_000;

/// Power iterations.
pub const ITERATIONS: usize = 40;

/// Computes a 2-component PCA of `d`'s loaded matrix.
pub fn pca_2d(d: &Dataset, progress: &Progress) -> Result<Embedding, JobError> {
    let m = &d.expression;
    if m.n_rows < 3 || m.n_cols < 2 || m.nnz() == 0 {
        return Err(JobError::Failed(
            "the loaded matrix is empty; cannot compute an embedding".into(),
        ));
    }
    let kind = d
        .matrices
        .iter()
        .find(|i| Some(&i.choice) == d.loaded.as_ref())
        .map(|i| i.kind);
    // Per-entry transform and per-row scale.
    let row_scale: Vec<f32> = (0..m.n_rows)
        .map(|i| {
            let total: f32 = m.row(i).1.iter().sum();
            if kind == Some(MatrixKind::RawCounts) && total > 0.0 {
                1e4 / total
            } else {
                1.0
            }
        })
        .collect();
    let log = kind == Some(MatrixKind::RawCounts);
    let value = |i: usize, v: f32| {
        let x = v * row_scale[i];
        if log { x.ln_1p() } else { x }
    };

    // Gene means and variances, then the most variable genes.
    progress.set(0.0, "gene statistics");
    let n = m.n_rows as f64;
    let mut sum = vec![0f64; m.n_cols];
    let mut sum_sq = vec![0f64; m.n_cols];
    for i in 0..m.n_rows {
        let (cols, vals) = m.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            let x = value(i, v) as f64;
            sum[j as usize] += x;
            sum_sq[j as usize] += x * x;
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let var: Vec<f64> = (0..m.n_cols)
        .map(|j| sum_sq[j] / n - mean[j] * mean[j])
        .collect();
    let mut order: Vec<usize> = (0..m.n_cols).collect();
    order.sort_by(|&a, &b| var[b].total_cmp(&var[a]));
    let mut keep = vec![usize::MAX; m.n_cols];
    let kept = order.len().min(TOP_GENES);
    for (k, &j) in order.iter().take(kept).enumerate() {
        keep[j] = k;
    }
    let mu: Vec<f64> = order.iter().take(kept).map(|&j| mean[j]).collect();

    // Block power iteration for the top 2 right singular vectors of the centred matrix.
    let mut rng = SplitMix64::new(7);
    let mut v: [Vec<f64>; 2] = [
        (0..kept).map(|_| rng.normal() as f64).collect(),
        (0..kept).map(|_| rng.normal() as f64).collect(),
    ];
    orthonormalize(&mut v);
    let mut scores = [vec![0f64; m.n_rows], vec![0f64; m.n_rows]];
    for it in 0..ITERATIONS {
        progress.check()?;
        progress.set(it as f32 / ITERATIONS as f32, format!("PCA iteration {it}"));
        // scores = Xc v
        for (s, vk) in scores.iter_mut().zip(&v) {
            let shift: f64 = mu.iter().zip(vk).map(|(a, b)| a * b).sum();
            for (i, out) in s.iter_mut().enumerate() {
                let (cols, vals) = m.row(i);
                let mut acc = 0.0;
                for (&j, &x) in cols.iter().zip(vals) {
                    let k = keep[j as usize];
                    if k != usize::MAX {
                        acc += value(i, x) as f64 * vk[k];
                    }
                }
                *out = acc - shift;
            }
        }
        // v = Xc^T scores
        for (vk, s) in v.iter_mut().zip(&scores) {
            vk.iter_mut().for_each(|x| *x = 0.0);
            let total: f64 = s.iter().sum();
            for (i, &si) in s.iter().enumerate() {
                let (cols, vals) = m.row(i);
                for (&j, &x) in cols.iter().zip(vals) {
                    let k = keep[j as usize];
                    if k != usize::MAX {
                        vk[k] += value(i, x) as f64 * si;
                    }
                }
            }
            for (x, &mk) in vk.iter_mut().zip(&mu) {
                *x -= mk * total;
            }
        }
        orthonormalize(&mut v);
    }
    progress.set(1.0, "done");
    let data = (0..m.n_rows)
        .flat_map(|i| [scores[0][i] as f32, scores[1][i] as f32])
        .collect();
    Ok(Embedding {
        name: COMPUTED_PCA.into(),
        n_cols: 2,
        data,
    })
}

/// Gram–Schmidt on two vectors.
fn orthonormalize(v: &mut [Vec<f64>; 2]) {
    let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-300);
    let n0 = norm(&v[0]);
    v[0].iter_mut().for_each(|x| *x /= n0);
    let dot: f64 = v[0].iter().zip(&v[1]).map(|(a, b)| a * b).sum();
    let (first, second) = v.split_at_mut(1);
    for (b, a) in second[0].iter_mut().zip(&first[0]) {
        *b -= dot * a;
    }
    let n1 = norm(&v[1]);
    v[1].iter_mut().for_each(|x| *x /= n1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::demo;
    use c2s_core::dataset::ColumnData;

    #[test]
    fn pca_separates_cell_types() {
        let d = demo::generate(600, &Progress::default()).unwrap();
        let e = pca_2d(&d, &Progress::default()).unwrap();
        assert_eq!(e.data.len(), 1200);
        let ColumnData::Categorical { codes, .. } = &d.obs_column("cell_type").unwrap().data else {
            panic!()
        };
        // Cluster centroids in PC space differ more than the within-cluster spread.
        let centroid = |t: i32| {
            let pts: Vec<[f32; 2]> = (0..600)
                .filter(|&i| codes[i] == t)
                .map(|i| [e.data[2 * i], e.data[2 * i + 1]])
                .collect();
            let n = pts.len() as f32;
            [
                pts.iter().map(|p| p[0]).sum::<f32>() / n,
                pts.iter().map(|p| p[1]).sum::<f32>() / n,
            ]
        };
        let (a, b) = (centroid(0), centroid(4)); // CD4 T vs CD14 Mono
        let dist = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        assert!(dist > 1.0, "centroids {a:?} {b:?}");
    }

    #[test]
    fn pca_cancels() {
        let d = demo::generate(100, &Progress::default()).unwrap();
        let p = Progress::default();
        p.cancel();
        assert_eq!(pca_2d(&d, &p).unwrap_err(), JobError::Cancelled);
    }
}

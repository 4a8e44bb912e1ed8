//! Synthetic single-cell counts with known clusters, for tests and benchmarks of the embedding
//! pipeline.
//!
//! Each cluster has a gene-expression profile: shared log-normal baseline rates, with about 5% of
//! the genes up-regulated e-fold squared (×7.4) as the cluster's markers. A cell draws a library
//! size around `counts_per_cell` (log-normal, σ = 0.3) and then that many reads from its
//! cluster's profile (a multinomial sample), like UMI counts.

use crate::matrix::CsrMatrix;
use crate::rng::{SplitMix64, mix64};
use rayon::prelude::*;

/// A generated counts matrix and each cell's cluster.
#[derive(Debug, Clone)]
pub struct ClusteredCounts {
    /// Cells × genes counts.
    pub counts: CsrMatrix,
    /// Cluster of each cell (`i % clusters`).
    pub labels: Vec<usize>,
}

/// Generates `cells × genes` counts in `clusters` clusters (deterministic for a seed).
pub fn clustered_counts(
    cells: usize,
    genes: usize,
    clusters: usize,
    counts_per_cell: usize,
    seed: u64,
) -> ClusteredCounts {
    let clusters = clusters.max(1);
    let mut rng = SplitMix64::new(seed);
    let base: Vec<f64> = (0..genes).map(|_| f64::from(rng.normal())).collect();
    // Cumulative distribution of each cluster's profile.
    let cdfs: Vec<Vec<f64>> = (0..clusters)
        .map(|_| {
            let mut acc = 0.0;
            let mut cdf: Vec<f64> = base
                .iter()
                .map(|&b| {
                    let marker = if rng.below(20) == 0 { 2.0 } else { 0.0 };
                    acc += (b + marker).exp();
                    acc
                })
                .collect();
            cdf.iter_mut().for_each(|c| *c /= acc);
            cdf
        })
        .collect();
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..cells)
        .into_par_iter()
        .map(|i| {
            let mut rng = SplitMix64::new(mix64(seed ^ mix64(i as u64 + 1)));
            let cdf = &cdfs[i % clusters];
            let size = (counts_per_cell as f64 * (0.3 * f64::from(rng.normal())).exp()).round();
            let mut draws: Vec<u32> = (0..size.max(1.0) as usize)
                .map(|_| {
                    let u = rng.next_f64();
                    cdf.partition_point(|&c| c < u).min(genes - 1) as u32
                })
                .collect();
            draws.sort_unstable();
            let mut cols = Vec::new();
            let mut vals: Vec<f32> = Vec::new();
            for run in draws.chunk_by(|a, b| a == b) {
                cols.push(run[0]);
                vals.push(run.len() as f32);
            }
            (cols, vals)
        })
        .collect();
    let mut counts = CsrMatrix {
        n_rows: cells,
        n_cols: genes,
        indptr: Vec::with_capacity(cells + 1),
        ..Default::default()
    };
    counts.indptr.push(0);
    for (cols, vals) in rows {
        counts.indices.extend(cols);
        counts.data.extend(vals);
        counts.indptr.push(counts.data.len() as u64);
    }
    ClusteredCounts {
        counts,
        labels: (0..cells).map(|i| i % clusters).collect(),
    }
}

/// Fraction of points whose nearest cluster centroid in `y` (`n × dim`, row-major) is the centroid
/// of their own cluster `labels[i]` (in `0..clusters`): 1 when the clusters are apart in `y`.
pub fn nearest_centroid_accuracy(y: &[f32], dim: usize, labels: &[usize], clusters: usize) -> f64 {
    let mut centroids = vec![0f64; clusters * dim];
    let mut sizes = vec![0usize; clusters];
    for (i, &l) in labels.iter().enumerate() {
        sizes[l] += 1;
        for d in 0..dim {
            centroids[l * dim + d] += f64::from(y[i * dim + d]);
        }
    }
    for l in 0..clusters {
        for d in 0..dim {
            centroids[l * dim + d] /= sizes[l].max(1) as f64;
        }
    }
    let correct = labels
        .par_iter()
        .enumerate()
        .filter(|&(i, &l)| {
            let dist = |c: usize| -> f64 {
                (0..dim)
                    .map(|d| (f64::from(y[i * dim + d]) - centroids[c * dim + d]).powi(2))
                    .sum()
            };
            (0..clusters).all(|c| c == l || dist(l) < dist(c))
        })
        .count();
    correct as f64 / labels.len().max(1) as f64
}

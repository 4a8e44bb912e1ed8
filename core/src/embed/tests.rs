//! End-to-end tests of the embedding pipeline on a dataset, and helpers shared by the step tests.

use super::synthetic::{clustered_counts, nearest_centroid_accuracy};
use super::*;
use crate::dataset::{MatrixChoice, MatrixInfo};
use crate::rng::SplitMix64;

/// `n` points in `dim` dimensions around `clusters` random centres (point `i` in cluster
/// `i % clusters`), centres ~ N(0, 8²), spread N(0, 1).
pub(crate) fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| 8.0 * rng.normal()).collect();
    let mut points = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = i % clusters;
        for d in 0..dim {
            points.push(centres[c * dim + d] + rng.normal());
        }
    }
    points
}

fn counts_dataset(cells: usize, clusters: usize) -> (Dataset, Vec<usize>) {
    let data = clustered_counts(cells, 800, clusters, 1_500, 11);
    let d = Dataset {
        obs_names: (0..cells).map(|i| format!("cell{i}")).collect(),
        var_names: (0..800).map(|j| format!("G{j}")).collect(),
        matrices: vec![MatrixInfo {
            choice: MatrixChoice::X,
            shape: (cells, 800),
            storage: "csr".into(),
            dtype: "f32".into(),
            kind: MatrixKind::RawCounts,
        }],
        loaded: Some(MatrixChoice::X),
        expression: data.counts,
        ..Default::default()
    };
    (d, data.labels)
}

#[test]
fn umap_of_a_counts_dataset_separates_its_clusters() {
    let (d, labels) = counts_dataset(1_200, 6);
    let options = UmapOptions {
        pca: PcaOptions {
            n_components: 20,
            n_top_genes: 500,
            ..Default::default()
        },
        ..Default::default()
    };
    let pca = compute_pca(&d, &options.pca, &Progress::new()).unwrap();
    assert_eq!(pca.name, COMPUTED_PCA);
    assert_eq!((pca.n_cols, pca.data.len()), (20, 1_200 * 20));
    // The clusters are already apart in the PCA ...
    assert!(nearest_centroid_accuracy(&pca.data, 20, &labels, 6) > 0.99);
    // ... and stay apart in the 2-D layout.
    let progress = Progress::new();
    let umap = umap_of(&pca, &options, &progress).unwrap();
    assert_eq!(umap.name, COMPUTED_UMAP);
    assert_eq!((umap.n_cols, umap.data.len()), (2, 1_200 * 2));
    let acc = nearest_centroid_accuracy(&umap.data, 2, &labels, 6);
    assert!(acc > 0.98, "nearest-centroid accuracy {acc}");
    assert_eq!(progress.stage(), "UMAP layout");
    assert_eq!(progress.fraction(), 1.0);
}

#[test]
fn compute_umap_reports_bad_input_and_cancellation() {
    let empty = Dataset::default();
    let err = compute_umap(&empty, &UmapOptions::default(), &Progress::new()).unwrap_err();
    assert!(matches!(err, Error::InvalidData(_)), "{err}");
    // Three cells: a PCA is possible, but a 15-neighbour graph shrinks to the 3 points there are.
    let (tiny, _) = counts_dataset(3, 3);
    let e = compute_umap(&tiny, &UmapOptions::default(), &Progress::new()).unwrap();
    assert_eq!(e.data.len(), 6);
    let (d, _) = counts_dataset(300, 3);
    let p = Progress::new();
    p.cancel();
    assert!(
        compute_umap(&d, &UmapOptions::default(), &p)
            .unwrap_err()
            .is_cancelled()
    );
}

#[test]
fn synthetic_counts_are_deterministic_integers() {
    let a = clustered_counts(50, 100, 4, 300, 5);
    let b = clustered_counts(50, 100, 4, 300, 5);
    assert_eq!(a.counts, b.counts);
    assert!(a.counts.data.iter().all(|v| v.fract() == 0.0 && *v >= 1.0));
    let total: f32 = a.counts.data.iter().sum();
    assert!(
        (total / 50.0 - 300.0).abs() < 60.0,
        "mean library size {}",
        total / 50.0
    );
}

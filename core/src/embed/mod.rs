//! Embeddings computed from the expression matrix, for datasets that have none: scanpy's
//! default pipeline, PCA → kNN graph → UMAP.
//!
//! 1. [`pca`]: counts normalised to 10,000 per cell and log1p-transformed (raw counts only),
//!    the most variable genes (Seurat flavour), and a randomized SVD of the implicitly centred
//!    sparse matrix (never densified).
//! 2. [`knn`]: approximate nearest neighbours of the PCA coordinates with an HNSW index, and an
//!    exact brute-force search to measure its recall.
//! 3. [`fuzzy`]: umap-learn's fuzzy simplicial set (smooth kNN distances, membership strengths,
//!    fuzzy union) and its curve parameters `a`, `b`.
//! 4. [`umap`]: the layout, by umap-learn's stochastic gradient descent with negative sampling.
//!
//! [`synthetic`] generates clustered counts for the tests and `c2s-studio bench-umap`.
//!
//! [`compute_pca`] and [`compute_umap`] run the steps on a [`Dataset`] and return `obsm`
//! embeddings, reporting stages "PCA", "neighbours" and "UMAP layout" to the [`Progress`] and
//! stopping at its next check when cancelled.

pub mod fuzzy;
pub mod knn;
pub mod pca;
pub mod synthetic;
pub mod umap;

use crate::dataset::{Dataset, Embedding, MatrixKind};
use crate::error::{Error, Result};
use crate::progress::Progress;

pub use knn::{Knn, KnnOptions};
pub use pca::{Pca, PcaOptions};
pub use umap::LayoutOptions;

/// Name of the computed PCA in `obsm`.
pub const COMPUTED_PCA: &str = "X_pca_computed";

/// Name of the computed UMAP in `obsm`.
pub const COMPUTED_UMAP: &str = "X_umap_computed";

/// Everything [`compute_umap`] needs: the PCA, the neighbour search and the layout.
#[derive(Debug, Clone, Default)]
pub struct UmapOptions {
    /// PCA of the expression matrix.
    pub pca: PcaOptions,
    /// kNN graph on the PCA coordinates.
    pub knn: KnnOptions,
    /// UMAP layout.
    pub layout: LayoutOptions,
}

/// The kind of the dataset's loaded matrix, if known.
fn loaded_kind(d: &Dataset) -> Option<MatrixKind> {
    d.matrices
        .iter()
        .find(|i| Some(&i.choice) == d.loaded.as_ref())
        .map(|i| i.kind)
}

/// PCA of `d`'s loaded matrix as an `obsm` embedding named [`COMPUTED_PCA`] (cells × components).
///
/// ```no_run
/// # let dataset = c2s_core::dataset::Dataset::default();
/// use c2s_core::embed::{PcaOptions, compute_pca};
/// let pca = compute_pca(&dataset, &PcaOptions::default(), &c2s_core::Progress::new())?;
/// # Ok::<(), c2s_core::Error>(())
/// ```
pub fn compute_pca(d: &Dataset, options: &PcaOptions, progress: &Progress) -> Result<Embedding> {
    progress.set_stage("PCA");
    let p = pca::pca(&d.expression, loaded_kind(d), options, progress)?;
    Ok(Embedding {
        name: COMPUTED_PCA.into(),
        n_cols: p.n_components,
        data: p.scores,
    })
}

/// UMAP of the rows of `points` (e.g. a PCA from [`compute_pca`]): kNN graph, then layout.
/// Returns an embedding named [`COMPUTED_UMAP`].
pub fn umap_of(
    points: &Embedding,
    options: &UmapOptions,
    progress: &Progress,
) -> Result<Embedding> {
    let dim = points.n_cols;
    if dim == 0 || !points.data.len().is_multiple_of(dim) {
        return Err(Error::InvalidData(format!(
            "embedding {} has {} values, not a whole number of rows of {dim}",
            points.name,
            points.data.len()
        )));
    }
    progress.set_stage("neighbours");
    let mut knn_options = options.knn.clone();
    knn_options.k = options.knn.k.min(points.data.len() / dim);
    let graph = knn::approximate_knn(&points.data, dim, &knn_options, progress)?;
    progress.set_stage("UMAP layout");
    let data = umap::layout(&points.data, dim, &graph, &options.layout, progress)?;
    Ok(Embedding {
        name: COMPUTED_UMAP.into(),
        n_cols: options.layout.n_components,
        data,
    })
}

/// PCA then UMAP of `d`'s loaded matrix (see [`compute_pca`] and [`umap_of`]).
pub fn compute_umap(d: &Dataset, options: &UmapOptions, progress: &Progress) -> Result<Embedding> {
    let pca = compute_pca(d, &options.pca, progress)?;
    umap_of(&pca, options, progress)
}

#[cfg(test)]
mod tests;

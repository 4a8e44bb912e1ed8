//! A 2-D embedding for datasets without one, computed in a job: PCA, kNN graph and UMAP layout
//! from `c2s_core::embed` (stages "PCA", "neighbours", "UMAP layout", with progress and cancel).
//! Both the PCA and the UMAP are kept as `obsm` embeddings of the session.

use c2s_core::dataset::{Dataset, Embedding};
use c2s_core::embed::{UmapOptions, compute_pca, umap_of};

use super::jobs::{JobError, Progress};

/// PCA (`X_pca_computed`) then UMAP (`X_umap_computed`) of `d`'s loaded matrix, in that order.
pub fn pca_and_umap(d: &Dataset, progress: &Progress) -> Result<Vec<Embedding>, JobError> {
    let options = UmapOptions::default();
    let core = progress.core();
    let pca = compute_pca(d, &options.pca, core)?;
    let umap = umap_of(&pca, &options, core)?;
    Ok(vec![pca, umap])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::demo;
    use c2s_core::dataset::ColumnData;
    use c2s_core::embed::synthetic::nearest_centroid_accuracy;
    use c2s_core::embed::{COMPUTED_PCA, COMPUTED_UMAP};

    #[test]
    fn umap_of_the_demo_separates_cell_types() {
        let d = demo::generate(1_000, &Progress::default()).unwrap();
        let out = pca_and_umap(&d, &Progress::default()).unwrap();
        assert_eq!(out[0].name, COMPUTED_PCA);
        assert_eq!(out[1].name, COMPUTED_UMAP);
        assert_eq!(out[1].data.len(), 2_000);
        let ColumnData::Categorical { codes, categories } =
            &d.obs_column("cell_type").unwrap().data
        else {
            panic!("cell_type is categorical")
        };
        let labels: Vec<usize> = codes.iter().map(|&c| c as usize).collect();
        let acc = nearest_centroid_accuracy(&out[1].data, 2, &labels, categories.len());
        assert!(acc > 0.9, "nearest-centroid accuracy {acc}");
    }

    #[test]
    fn cancelling_stops_the_job() {
        let d = demo::generate(100, &Progress::default()).unwrap();
        let p = Progress::default();
        p.cancel();
        assert_eq!(pca_and_umap(&d, &p).unwrap_err(), JobError::Cancelled);
    }
}

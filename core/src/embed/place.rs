//! Placing new cells (generated or predicted by a model) on an existing embedding of the real
//! cells, as umap-learn's `UMAP.transform` places new data:
//!
//! 1. A PCA of the real cells (as [`super::pca`]), and both real and new cells projected onto
//!    it.
//! 2. Each new cell's `k` nearest real cells in PCA space (exact search).
//! 3. Memberships `exp(-d / σ)` with `σ` from [`bandwidth`] at local connectivity 0, as
//!    umap-learn's `transform` computes them.
//! 4. The start position: the membership-weighted mean of the neighbours' positions on the
//!    embedding (a neighbour at distance 0 gives its own position).
//! 5. Refinement by [`transform_layout`] with the real cells fixed: 100 epochs up to 10,000
//!    new cells, else 30 (umap-learn's default).
//!
//! The embedding need not be a UMAP: any 2-D (or n-D) view of the real cells works, since only
//! its coordinates are used.

use super::fuzzy::{Graph, bandwidth, membership};
use super::pca::{PcaOptions, pca};
use super::umap::{LayoutOptions, transform_layout};
use crate::dataset::{Embedding, MatrixKind};
use crate::error::{Error, Result};
use crate::matrix::CsrMatrix;
use crate::progress::Progress;
use rayon::prelude::*;

/// Settings of [`Neighbourhood::new`] and [`Neighbourhood::place`].
#[derive(Debug, Clone)]
pub struct PlaceOptions {
    /// PCA of the real cells.
    pub pca: PcaOptions,
    /// Neighbours per new cell (umap-learn's `n_neighbors`).
    pub k: usize,
    /// Curve (`min_dist`, `spread`), learning rate, negative sampling and seed of the
    /// refinement.
    pub layout: LayoutOptions,
    /// Refinement epochs; `None`: umap-learn's default, `Some(0)`: the start position only.
    pub n_epochs: Option<usize>,
}

impl Default for PlaceOptions {
    fn default() -> Self {
        Self {
            pca: PcaOptions::default(),
            k: 15,
            // scanpy's `tl.umap` default, which most stored `X_umap` embeddings come from.
            layout: LayoutOptions {
                min_dist: 0.5,
                parallel: false,
                ..Default::default()
            },
            n_epochs: None,
        }
    }
}

/// New cells' nearest real cells and membership strengths: what placing them on any embedding
/// of the real cells needs.
#[derive(Debug, Clone)]
pub struct Neighbourhood {
    /// Nearest real cells of each new cell, `new cells × k`, nearest first.
    pub neighbours: Vec<u32>,
    /// Neighbours per new cell.
    pub k: usize,
    /// Real cells.
    n_real: usize,
    /// Memberships from new cells (heads) to real cells (tails).
    graph: Graph,
}

impl Neighbourhood {
    /// The neighbourhood of the rows of `new` (cells × the same genes as `real`, values of the
    /// same kind, `kind`; `None`: detected) among the rows of `real`: a PCA of `real`, both
    /// projected onto it, exact nearest neighbours, memberships (see the module docs).
    pub fn new(
        real: &CsrMatrix,
        kind: Option<MatrixKind>,
        new: &CsrMatrix,
        options: &PlaceOptions,
        progress: &Progress,
    ) -> Result<Self> {
        check_genes(real, new)?;
        let k = options.k.clamp(1, real.n_rows.max(1));
        if new.n_rows == 0 {
            return Ok(Self {
                neighbours: Vec::new(),
                k,
                n_real: real.n_rows,
                graph: Graph {
                    n: 0,
                    head: Vec::new(),
                    tail: Vec::new(),
                    weights: Vec::new(),
                },
            });
        }
        progress.set_stage("PCA of the real cells");
        let model = pca(real, kind, &options.pca, progress)?;
        // Real cells projected like the new ones (the PCA's own scores are the randomized
        // SVD's approximation of the same product), so a copy of a real cell is at distance 0.
        let reference = model.project(real);
        let queries = model.project(new);
        progress.set_stage("nearest real cells");
        let (neighbours, distances) = nearest(&reference, &queries, model.n_components, k);
        progress.check()?;
        Ok(Self {
            graph: memberships(&neighbours, &distances, k),
            neighbours,
            k,
            n_real: real.n_rows,
        })
    }

    /// The new cells' coordinates on `target`, an embedding of the real cells (`new cells ×
    /// target.n_cols`, row-major): the start positions, refined with `options.layout` for
    /// `options.n_epochs` epochs.
    pub fn place(
        &self,
        target: &Embedding,
        options: &PlaceOptions,
        progress: &Progress,
    ) -> Result<Vec<f32>> {
        check_target(self.n_real, target)?;
        let nc = target.n_cols;
        let mut coordinates = start_positions(&self.graph, &target.data, nc);
        let n_epochs = options
            .n_epochs
            .unwrap_or(if self.graph.n <= 10_000 { 100 } else { 30 });
        if n_epochs > 0 && self.graph.n > 0 {
            progress.set_stage(format!("placing on {}", target.name));
            transform_layout(
                &mut coordinates,
                &target.data,
                nc,
                &self.graph,
                &options.layout,
                n_epochs,
                progress,
            )?;
        }
        Ok(coordinates)
    }
}

/// Checks that the new cells have the real cells' genes.
fn check_genes(real: &CsrMatrix, new: &CsrMatrix) -> Result<()> {
    if new.n_cols != real.n_cols {
        return Err(Error::InvalidArgument(format!(
            "the new cells have {} genes but the real cells {}; they must share the genes",
            new.n_cols, real.n_cols
        )));
    }
    Ok(())
}

/// Checks that an embedding has one finite row per real cell.
fn check_target(n_real: usize, target: &Embedding) -> Result<()> {
    if target.n_cols == 0 || target.data.len() != n_real * target.n_cols {
        return Err(Error::InvalidArgument(format!(
            "embedding {} does not have one row per real cell ({} values for {} cells)",
            target.name,
            target.data.len(),
            n_real
        )));
    }
    if target.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidData(format!(
            "embedding {} contains NaN or infinite values; new cells cannot be placed on it",
            target.name
        )));
    }
    Ok(())
}

/// The `k` nearest rows of `points` to each row of `queries` (both `dim` wide), by exhaustive
/// search: indices and Euclidean distances, nearest first.
fn nearest(points: &[f32], queries: &[f32], dim: usize, k: usize) -> (Vec<u32>, Vec<f32>) {
    let rows: Vec<(Vec<u32>, Vec<f32>)> = queries
        .par_chunks(dim)
        .map(|q| {
            let mut d: Vec<(f32, u32)> = points
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, p)| {
                    let s: f32 = p.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
                    (s.sqrt(), i as u32)
                })
                .collect();
            if k < d.len() {
                d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                d.truncate(k);
            }
            d.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.into_iter().map(|(s, i)| (i, s)).unzip()
        })
        .collect();
    let mut indices = Vec::with_capacity(rows.len() * k);
    let mut distances = Vec::with_capacity(rows.len() * k);
    for (i, d) in rows {
        indices.extend(i);
        distances.extend(d);
    }
    (indices, distances)
}

/// The bipartite membership graph from new cells (heads) to real cells (tails), as
/// umap-learn's `transform`: `ρ = 0`, `σ` from [`bandwidth`] with the mean of all distances.
fn memberships(neighbours: &[u32], distances: &[f32], k: usize) -> Graph {
    let mean = distances.iter().map(|&d| f64::from(d)).sum::<f64>() / distances.len() as f64;
    let mut graph = Graph {
        n: neighbours.len() / k,
        head: Vec::with_capacity(neighbours.len()),
        tail: Vec::with_capacity(neighbours.len()),
        weights: Vec::with_capacity(neighbours.len()),
    };
    for (row, (idx, dist)) in neighbours.chunks(k).zip(distances.chunks(k)).enumerate() {
        let sigma = bandwidth(dist, 0.0, mean);
        for (&j, &d) in idx.iter().zip(dist) {
            let w = membership(d, sigma, 0.0);
            if w > 0.0 {
                graph.head.push(row as u32);
                graph.tail.push(j);
                graph.weights.push(w);
            }
        }
    }
    graph
}

/// umap-learn's `init_graph_transform`: each new cell at the weighted mean of its neighbours'
/// positions (weights normalised to sum 1), or exactly at the lowest-numbered neighbour of
/// weight 1 when it has one (an identical real cell).
fn start_positions(graph: &Graph, target: &[f32], nc: usize) -> Vec<f32> {
    let mut out = vec![0f32; graph.n * nc];
    let mut start = 0;
    for row in 0..graph.n {
        let end = start + graph.head[start..].partition_point(|&h| h as usize == row);
        let edges = start..end;
        let position = &mut out[row * nc..(row + 1) * nc];
        let exact = edges
            .clone()
            .filter(|&e| graph.weights[e] == 1.0)
            .min_by_key(|&e| graph.tail[e]);
        if let Some(e) = exact {
            let t = graph.tail[e] as usize;
            position.copy_from_slice(&target[t * nc..(t + 1) * nc]);
        } else if edges.is_empty() {
            position.fill(f32::NAN);
        } else {
            let total: f32 = graph.weights[edges.clone()].iter().sum();
            for e in edges {
                let t = graph.tail[e] as usize;
                let w = graph.weights[e] / total;
                for (p, v) in position.iter_mut().zip(&target[t * nc..(t + 1) * nc]) {
                    *p += w * v;
                }
            }
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::synthetic::clustered_counts;

    /// Each cell's cluster centre on a made-up 2-D embedding, plus a small offset per cell.
    fn cluster_embedding(labels: &[usize]) -> Embedding {
        let data = labels
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| {
                let jitter = (i % 7) as f32 * 0.1;
                [10.0 * c as f32 + jitter, -5.0 * c as f32 - jitter]
            })
            .collect();
        Embedding {
            name: "X_test".into(),
            n_cols: 2,
            data,
        }
    }

    fn small_pca() -> PlaceOptions {
        PlaceOptions {
            pca: PcaOptions {
                n_components: 10,
                n_top_genes: 200,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Places `new` on `target` in one call.
    fn place(
        real: &CsrMatrix,
        new: &CsrMatrix,
        target: &Embedding,
        options: &PlaceOptions,
    ) -> Result<(Neighbourhood, Vec<f32>)> {
        let p = Progress::new();
        let hood = Neighbourhood::new(real, Some(MatrixKind::RawCounts), new, options, &p)?;
        let coordinates = hood.place(target, options, &p)?;
        Ok((hood, coordinates))
    }

    #[test]
    fn a_copy_of_a_real_cell_starts_on_that_cell() {
        let data = clustered_counts(150, 300, 3, 800, 2);
        let target = cluster_embedding(&data.labels);
        let copies = data.counts.select_rows(&[4, 77]);
        let options = PlaceOptions {
            n_epochs: Some(0),
            ..small_pca()
        };
        let (hood, placed) = place(&data.counts, &copies, &target, &options).unwrap();
        assert_eq!(placed[..2], target.data[8..10]);
        assert_eq!(placed[2..], target.data[154..156]);
        assert_eq!(hood.neighbours[0], 4);
        assert_eq!(hood.neighbours[hood.k], 77);
    }

    #[test]
    fn new_cells_land_in_their_cluster() {
        let real = clustered_counts(300, 300, 3, 800, 8);
        // New cells: real cells with every count halved (rounded up) and one gene doubled,
        // so none equals a real cell but each keeps its cluster's profile.
        let mut new = real.counts.select_rows(&(0..30).collect::<Vec<_>>());
        new.data.iter_mut().for_each(|v| *v = (*v / 2.0).ceil());
        for i in 0..new.n_rows {
            let first = new.indptr[i] as usize;
            new.data[first] *= 2.0;
        }
        let target = cluster_embedding(&real.labels);
        let (_, placed) = place(&real.counts, &new, &target, &small_pca()).unwrap();
        for (i, p) in placed.chunks(2).enumerate() {
            let cluster = real.labels[i];
            let centre = [10.0 * cluster as f32 + 0.3, -5.0 * cluster as f32 - 0.3];
            let d = ((p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2)).sqrt();
            assert!(d < 2.5, "cell {i} of cluster {cluster} placed at {p:?}");
        }
    }

    #[test]
    fn mismatched_inputs_are_refused() {
        let data = clustered_counts(50, 100, 2, 500, 1);
        let target = cluster_embedding(&data.labels);
        let other_genes = clustered_counts(5, 90, 2, 500, 1).counts;
        let err = place(&data.counts, &other_genes, &target, &small_pca()).unwrap_err();
        assert!(err.to_string().contains("share the genes"), "{err}");
        let short = Embedding {
            data: target.data[..10].to_vec(),
            ..target.clone()
        };
        let new = data.counts.select_rows(&[0]);
        let err = place(&data.counts, &new, &short, &small_pca()).unwrap_err();
        assert!(err.to_string().contains("one row per real cell"), "{err}");
    }
}

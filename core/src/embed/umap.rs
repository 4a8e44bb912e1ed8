//! UMAP layout (McInnes, Healy & Melville 2018): stochastic gradient descent on the fuzzy
//! simplicial set, as umap-learn's `optimize_layout_euclidean`.
//!
//! Each edge `(j, k)` of weight `w` is sampled every `w_max / w` epochs: it pulls `j` and `k`
//! together, and `negative_sample_rate` random points push `j` away. The learning rate decays
//! linearly to 0. Gradients are clipped to ±4 as in umap-learn.
//!
//! Differences from umap-learn's defaults, on purpose:
//! - Initialisation is the first `n_components` input coordinates (umap-learn's `init="pca"` when
//!   the input is a PCA), scaled to [0, 10], instead of a spectral embedding.
//! - With `parallel`, edges are processed by several threads that update the shared coordinates
//!   without locks ("Hogwild!", as umap-learn with `n_jobs > 1`); updates are relaxed atomics, so
//!   this is sound, but the result then varies slightly from run to run. Without `parallel` the
//!   layout is a deterministic function of the seed.

use super::fuzzy::{Graph, find_ab_params, fuzzy_simplicial_set};
use super::knn::Knn;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::rng::{SplitMix64, mix64};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// Settings of [`layout`] (umap-learn's names and defaults).
#[derive(Debug, Clone)]
pub struct LayoutOptions {
    /// Output dimensions.
    pub n_components: usize,
    /// Minimum distance between embedded points.
    pub min_dist: f64,
    /// Scale of the embedded points.
    pub spread: f64,
    /// Epochs; `None`: 500 up to 10,000 points, else 200.
    pub n_epochs: Option<usize>,
    /// Initial learning rate.
    pub learning_rate: f32,
    /// Negative samples per positive sample.
    pub negative_sample_rate: usize,
    /// Weight of the repulsive term (`gamma`).
    pub repulsion_strength: f32,
    /// Seed of the initial jitter and of the negative sampling.
    pub seed: u64,
    /// Several threads, lock-free (see the module docs).
    pub parallel: bool,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        Self {
            n_components: 2,
            min_dist: 0.1,
            spread: 1.0,
            n_epochs: None,
            learning_rate: 1.0,
            negative_sample_rate: 5,
            repulsion_strength: 1.0,
            seed: 0,
            parallel: true,
        }
    }
}

/// Edges processed by one task (and one random stream) per epoch.
const EDGES_PER_TASK: usize = 4_096;

/// Largest gradient component.
const CLIP: f32 = 4.0;

/// UMAP layout of `points` (`n × dim`, e.g. PCA coordinates) from their kNN graph `knn`:
/// `n × n_components` coordinates, row-major. Progress is the fraction of epochs done; it stops
/// between epochs when cancelled.
pub fn layout(
    points: &[f32],
    dim: usize,
    knn: &Knn,
    options: &LayoutOptions,
    progress: &Progress,
) -> Result<Vec<f32>> {
    let n = knn.rows();
    let nc = options.n_components;
    if nc == 0 || dim < nc || points.len() != n * dim {
        return Err(Error::InvalidArgument(format!(
            "a {nc}-D layout needs {n} points of at least {nc} coordinates, got {} values of {dim}",
            points.len()
        )));
    }
    if !(options.min_dist >= 0.0 && options.spread > 0.0 && options.min_dist <= options.spread) {
        return Err(Error::InvalidArgument(format!(
            "min_dist ({}) must be between 0 and spread ({})",
            options.min_dist, options.spread
        )));
    }
    progress.set_fraction(0.0);
    let graph = fuzzy_simplicial_set(knn);
    progress.check()?;
    let n_epochs = options
        .n_epochs
        .unwrap_or(if n <= 10_000 { 500 } else { 200 })
        .max(1);
    let edges = Edges::new(&graph, n_epochs);
    let (a, b) = find_ab_params(options.spread, options.min_dist);
    let init = initial_coordinates(points, dim, nc, options.seed);
    let embedding: Vec<AtomicU32> = init
        .into_iter()
        .map(|v| AtomicU32::new(v.to_bits()))
        .collect();
    let mut state: Vec<EdgeState> = edges
        .epochs_per_sample
        .iter()
        .map(|&e| EdgeState {
            next: e,
            next_negative: e / options.negative_sample_rate.max(1) as f64,
        })
        .collect();
    let sgd = Sgd {
        embedding: &embedding,
        edges: &edges,
        nc,
        n,
        a: a as f32,
        b: b as f32,
        gamma: options.repulsion_strength,
        negative_rate: options.negative_sample_rate as f64,
    };
    for epoch in 0..n_epochs {
        progress.check()?;
        let alpha = options.learning_rate * (1.0 - epoch as f32 / n_epochs as f32);
        let run = |(task, chunk): (usize, &mut [EdgeState])| {
            let seed = mix64(options.seed ^ mix64(epoch as u64) ^ ((task as u64) << 32));
            sgd.run(task * EDGES_PER_TASK, chunk, epoch as f64, alpha, seed);
        };
        if options.parallel {
            state
                .par_chunks_mut(EDGES_PER_TASK)
                .enumerate()
                .for_each(run);
        } else {
            state.chunks_mut(EDGES_PER_TASK).enumerate().for_each(run);
        }
        progress.set_fraction((epoch + 1) as f32 / n_epochs as f32);
    }
    Ok(embedding
        .into_iter()
        .map(|v| f32::from_bits(v.into_inner()))
        .collect())
}

/// Refines the positions of new points (`positions`, `n_new × nc`, initialised near their
/// neighbours) against a fixed reference layout (`reference`, `n_ref × nc`), as umap-learn's
/// `transform` does: `graph` holds the memberships from new points (heads) to reference points
/// (tails); each edge pulls its new point towards its reference point and random reference
/// points push it away, with learning rate `learning_rate / 4` decaying to 0 over `n_epochs`.
/// Only the new points move. Deterministic for a given `options.seed`.
pub fn transform_layout(
    positions: &mut [f32],
    reference: &[f32],
    nc: usize,
    graph: &Graph,
    options: &LayoutOptions,
    n_epochs: usize,
    progress: &Progress,
) -> Result<()> {
    let n_ref = reference.len() / nc.max(1);
    if nc == 0 || n_ref == 0 || !positions.len().is_multiple_of(nc) {
        return Err(Error::InvalidArgument(format!(
            "cannot place {} values among {n_ref} reference points of {nc} coordinates",
            positions.len()
        )));
    }
    let n_epochs = n_epochs.max(1);
    let edges = Edges::new(graph, n_epochs);
    let (a, b) = find_ab_params(options.spread, options.min_dist);
    let (a, b) = (a as f32, b as f32);
    let negative_rate = options.negative_sample_rate.max(1) as f64;
    let mut next: Vec<EdgeState> = edges
        .epochs_per_sample
        .iter()
        .map(|&e| EdgeState {
            next: e,
            next_negative: e / negative_rate,
        })
        .collect();
    let mut rng = SplitMix64::new(options.seed);
    let initial_alpha = options.learning_rate / 4.0;
    for epoch in 0..n_epochs {
        progress.check()?;
        let alpha = initial_alpha * (1.0 - epoch as f32 / n_epochs as f32);
        for (e, s) in next.iter_mut().enumerate() {
            if s.next > epoch as f64 {
                continue;
            }
            let j = edges.head[e] as usize;
            let point = &mut positions[j * nc..(j + 1) * nc];
            let k = edges.tail[e] as usize;
            pull(point, &reference[k * nc..(k + 1) * nc], a, b, alpha);
            s.next += edges.epochs_per_sample[e];
            let per_negative = edges.epochs_per_sample[e] / negative_rate;
            let n_negative = ((epoch as f64 - s.next_negative) / per_negative).max(0.0) as usize;
            for _ in 0..n_negative {
                let other = (((rng.next_u64() >> 32) * n_ref as u64) >> 32) as usize;
                let gamma = options.repulsion_strength;
                push(
                    point,
                    &reference[other * nc..(other + 1) * nc],
                    a,
                    b,
                    gamma,
                    alpha,
                );
            }
            s.next_negative += n_negative as f64 * per_negative;
        }
        progress.set_fraction((epoch + 1) as f32 / n_epochs as f32);
    }
    Ok(())
}

/// Moves `point` along the attractive gradient towards `other`.
fn pull(point: &mut [f32], other: &[f32], a: f32, b: f32, alpha: f32) {
    let d2: f32 = point
        .iter()
        .zip(other)
        .map(|(p, o)| (p - o) * (p - o))
        .sum();
    if d2 > 0.0 {
        let d2b = pow_positive(d2, b);
        let coeff = -2.0 * a * b * (d2b / d2) / (a * d2b + 1.0);
        for (p, o) in point.iter_mut().zip(other) {
            *p += (coeff * (*p - o)).clamp(-CLIP, CLIP) * alpha;
        }
    }
}

/// Moves `point` along the repulsive gradient away from `other` (a point on top of it is
/// pushed by the full clip, as umap-learn does).
fn push(point: &mut [f32], other: &[f32], a: f32, b: f32, gamma: f32, alpha: f32) {
    let d2: f32 = point
        .iter()
        .zip(other)
        .map(|(p, o)| (p - o) * (p - o))
        .sum();
    let coeff = if d2 > 0.0 {
        2.0 * gamma * b / ((0.001 + d2) * (a * pow_positive(d2, b) + 1.0))
    } else {
        0.0
    };
    for (p, o) in point.iter_mut().zip(other) {
        let g = if coeff > 0.0 {
            (coeff * (*p - o)).clamp(-CLIP, CLIP)
        } else {
            CLIP
        };
        *p += g * alpha;
    }
}

/// Edges kept for the optimisation and how often each is sampled.
struct Edges {
    head: Vec<u32>,
    tail: Vec<u32>,
    /// Sample an edge every this many epochs (`w_max / w`).
    epochs_per_sample: Vec<f64>,
}

impl Edges {
    /// Drops edges too weak to be sampled once in `n_epochs` (as umap-learn does).
    fn new(graph: &Graph, n_epochs: usize) -> Self {
        let max = graph.weights.iter().copied().fold(0f32, f32::max);
        let threshold = max / n_epochs as f32;
        let mut edges = Edges {
            head: Vec::new(),
            tail: Vec::new(),
            epochs_per_sample: Vec::new(),
        };
        for e in 0..graph.weights.len() {
            let w = graph.weights[e];
            if w >= threshold && w > 0.0 {
                edges.head.push(graph.head[e]);
                edges.tail.push(graph.tail[e]);
                edges.epochs_per_sample.push(f64::from(max) / f64::from(w));
            }
        }
        edges
    }
}

/// When an edge is next sampled, and its negative samples.
#[derive(Clone, Copy)]
struct EdgeState {
    next: f64,
    next_negative: f64,
}

/// The first `nc` input coordinates, min-max scaled to [0, 10] per axis, plus a tiny jitter so
/// identical points can separate.
fn initial_coordinates(points: &[f32], dim: usize, nc: usize, seed: u64) -> Vec<f32> {
    let n = points.len() / dim;
    let mut rng = SplitMix64::new(seed);
    let mut out = vec![0f32; n * nc];
    for c in 0..nc {
        let column = (0..n).map(|i| points[i * dim + c]);
        let lo = column.clone().fold(f32::INFINITY, f32::min);
        let hi = column.fold(f32::NEG_INFINITY, f32::max);
        let scale = if hi > lo { 10.0 / (hi - lo) } else { 0.0 };
        for i in 0..n {
            out[i * nc + c] = (points[i * dim + c] - lo) * scale + 1e-4 * rng.normal();
        }
    }
    out
}

/// One epoch's updates over a range of edges.
struct Sgd<'a> {
    embedding: &'a [AtomicU32],
    edges: &'a Edges,
    nc: usize,
    n: usize,
    a: f32,
    b: f32,
    gamma: f32,
    negative_rate: f64,
}

impl Sgd<'_> {
    fn get(&self, i: usize, c: usize) -> f32 {
        f32::from_bits(self.embedding[i * self.nc + c].load(Ordering::Relaxed))
    }

    fn add(&self, i: usize, c: usize, delta: f32) {
        let slot = &self.embedding[i * self.nc + c];
        let v = f32::from_bits(slot.load(Ordering::Relaxed)) + delta;
        slot.store(v.to_bits(), Ordering::Relaxed);
    }

    fn distance_squared(&self, j: usize, k: usize) -> f32 {
        (0..self.nc)
            .map(|c| {
                let d = self.get(j, c) - self.get(k, c);
                d * d
            })
            .sum()
    }

    /// Processes edges `first..first + state.len()` in epoch `epoch`.
    fn run(&self, first: usize, state: &mut [EdgeState], epoch: f64, alpha: f32, seed: u64) {
        let (a, b) = (self.a, self.b);
        let mut rng = SplitMix64::new(seed);
        let epochs_per_negative = |e: usize| self.edges.epochs_per_sample[e] / self.negative_rate;
        for (offset, s) in state.iter_mut().enumerate() {
            if s.next > epoch {
                continue;
            }
            let e = first + offset;
            let (j, k) = (self.edges.head[e] as usize, self.edges.tail[e] as usize);
            // Attraction along the edge; both ends move.
            let d2 = self.distance_squared(j, k);
            if d2 > 0.0 {
                // One power: d2^(b−1) = d2^b / d2.
                let d2b = pow_positive(d2, b);
                let coeff = -2.0 * a * b * (d2b / d2) / (a * d2b + 1.0);
                for c in 0..self.nc {
                    let g = (coeff * (self.get(j, c) - self.get(k, c))).clamp(-CLIP, CLIP) * alpha;
                    self.add(j, c, g);
                    self.add(k, c, -g);
                }
            }
            s.next += self.edges.epochs_per_sample[e];
            // Repulsion from random points; only `j` moves.
            let per_negative = epochs_per_negative(e);
            let n_negative = ((epoch - s.next_negative) / per_negative).max(0.0) as usize;
            for _ in 0..n_negative {
                // Uniform in 0..n by a multiply-high (a division costs more than the rest).
                let other = (((rng.next_u64() >> 32) * self.n as u64) >> 32) as usize;
                if other == j {
                    continue;
                }
                let d2 = self.distance_squared(j, other);
                if d2 > 0.0 {
                    let coeff =
                        2.0 * self.gamma * b / ((0.001 + d2) * (a * pow_positive(d2, b) + 1.0));
                    for c in 0..self.nc {
                        let g = (coeff * (self.get(j, c) - self.get(other, c))).clamp(-CLIP, CLIP)
                            * alpha;
                        self.add(j, c, g);
                    }
                }
            }
            s.next_negative += n_negative as f64 * per_negative;
        }
    }
}

/// `x^b` for `x > 0`, as `2^(b·log2 x)` with short series (relative error below 1e-4): the
/// layout takes one power per sample, and libm's `powf` was half its time. Gradients are
/// clipped and stochastic, so this precision is ample.
fn pow_positive(x: f32, b: f32) -> f32 {
    // log2 x = exponent + log2 m, m in [1, 2); log2 m = 2/ln2 · atanh(t), t = (m−1)/(m+1) < 1/3.
    let bits = x.max(f32::MIN_POSITIVE).to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let atanh = t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 / 9.0))));
    let y = b * (exponent as f32 + std::f32::consts::LOG2_E * 2.0 * atanh);
    // 2^y = 2^n · e^(f·ln2), f in [0, 1), by a degree-7 Taylor series.
    let y = y.clamp(-126.0, 127.0);
    let n = y.floor();
    let z = (y - n) * std::f32::consts::LN_2;
    let e = 1.0
        + z * (1.0
            + z * (0.5
                + z * (1.0 / 6.0
                    + z * (1.0 / 24.0 + z * (1.0 / 120.0 + z * (1.0 / 720.0 + z / 5040.0))))));
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::knn::{KnnOptions, approximate_knn};
    use crate::embed::synthetic::nearest_centroid_accuracy;
    use crate::embed::tests::clustered;

    #[test]
    fn layout_separates_well_separated_clusters() {
        let (n, dim, clusters) = (1_500, 10, 5);
        let points = clustered(n, dim, clusters, 4);
        let knn = approximate_knn(&points, dim, &KnnOptions::default(), &Progress::new()).unwrap();
        let options = LayoutOptions {
            n_epochs: Some(200),
            ..Default::default()
        };
        let y = layout(&points, dim, &knn, &options, &Progress::new()).unwrap();
        assert_eq!(y.len(), n * 2);
        assert!(y.iter().all(|v| v.is_finite()));
        let labels: Vec<usize> = (0..n).map(|i| i % clusters).collect();
        let acc = nearest_centroid_accuracy(&y, 2, &labels, clusters);
        assert!(acc > 0.98, "nearest-centroid accuracy {acc}");
    }

    #[test]
    fn sequential_layout_is_deterministic() {
        let points = clustered(300, 5, 3, 9);
        let knn = approximate_knn(&points, 5, &KnnOptions::default(), &Progress::new()).unwrap();
        let options = LayoutOptions {
            n_epochs: Some(30),
            parallel: false,
            ..Default::default()
        };
        let once = layout(&points, 5, &knn, &options, &Progress::new()).unwrap();
        let again = layout(&points, 5, &knn, &options, &Progress::new()).unwrap();
        assert_eq!(once, again);
        let other_seed = LayoutOptions { seed: 1, ..options };
        assert_ne!(
            once,
            layout(&points, 5, &knn, &other_seed, &Progress::new()).unwrap()
        );
    }

    #[test]
    fn layout_rejects_bad_settings_and_stops_when_cancelled() {
        let points = clustered(100, 3, 2, 1);
        let knn = approximate_knn(&points, 3, &KnnOptions::default(), &Progress::new()).unwrap();
        let bad = LayoutOptions {
            min_dist: 2.0,
            ..Default::default()
        };
        assert!(layout(&points, 3, &knn, &bad, &Progress::new()).is_err());
        let three_d = LayoutOptions {
            n_components: 4,
            ..Default::default()
        };
        assert!(layout(&points, 3, &knn, &three_d, &Progress::new()).is_err());
        let p = Progress::new();
        p.cancel();
        let err = layout(&points, 3, &knn, &LayoutOptions::default(), &p).unwrap_err();
        assert!(err.is_cancelled());
    }

    #[test]
    fn fast_power_matches_powf() {
        for b in [0.79, 0.895, 1.0, 1.6] {
            let mut x = 1e-9f32;
            while x < 1e6 {
                let (ours, exact) = (pow_positive(x, b), x.powf(b));
                assert!(
                    ((ours - exact) / exact).abs() < 1e-4,
                    "{x}^{b}: {ours} vs {exact}"
                );
                x *= 1.37;
            }
        }
    }
}

//! umap-learn's fuzzy simplicial set: from a kNN graph to a symmetric weighted graph, plus the
//! `a`, `b` parameters of the low-dimensional similarity curve `1 / (1 + a d^(2b))`.
//!
//! Follows `umap/umap_.py` (umap-learn 0.5) with `local_connectivity = 1`, `bandwidth = 1` and
//! `set_op_mix_ratio = 1` (the defaults): per row, `ρ` is the distance to the nearest other point
//! and `σ` solves `Σ_j exp(-(d_j - ρ) / σ) = log2(k)` by bisection; memberships
//! `exp(-(d - ρ) / σ)` are combined by the fuzzy union `P + Pᵀ - P ∘ Pᵀ`.

use super::knn::Knn;
use rayon::prelude::*;

/// Bisection steps of [`smooth_knn_dist`].
const SMOOTH_K_ITERATIONS: usize = 64;
/// Stop the bisection when the sum is this close to its target.
const SMOOTH_K_TOLERANCE: f64 = 1e-5;
/// Lower bound of `σ` relative to the mean distance.
const MIN_K_DIST_SCALE: f64 = 1e-3;

/// A symmetric weighted graph as a list of directed edges (both directions present), sorted by
/// `(head, tail)`, with positive weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Number of vertices.
    pub n: usize,
    /// Edge sources.
    pub head: Vec<u32>,
    /// Edge targets.
    pub tail: Vec<u32>,
    /// Edge weights in (0, 1].
    pub weights: Vec<f32>,
}

/// `(σ, ρ)` of one row of kNN distances (ascending, the row itself first at distance 0).
/// `mean_distance` is the mean over all rows, the floor of `σ` for rows whose `ρ` is 0.
pub fn smooth_knn_dist(distances: &[f32], mean_distance: f64) -> (f64, f64) {
    let rho = distances
        .iter()
        .find(|&&d| d > 0.0)
        .map_or(0.0, |&d| f64::from(d));
    (bandwidth(distances, rho, mean_distance), rho)
}

/// `σ` of one row of kNN distances (ascending) for a given `ρ`: the solution of
/// `Σ_{j ≥ 1} exp(-max(0, d_j - ρ) / σ) = log2(k)` by bisection, as umap-learn's
/// `smooth_knn_dist` (which skips the first column, the row itself when fitting), floored at
/// 10⁻³ of the row's mean distance when `ρ > 0`, else of `mean_distance`. umap-learn's
/// `transform` calls it with `ρ = 0` (local connectivity 0) on distances to the reference
/// points.
pub fn bandwidth(distances: &[f32], rho: f64, mean_distance: f64) -> f64 {
    let k = distances.len();
    let target = (k as f64).log2();
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..SMOOTH_K_ITERATIONS {
        let psum: f64 = distances[1.min(k)..]
            .iter()
            .map(|&d| {
                let d = f64::from(d) - rho;
                if d > 0.0 { (-d / mid).exp() } else { 1.0 }
            })
            .sum();
        if (psum - target).abs() < SMOOTH_K_TOLERANCE {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = if hi == f64::INFINITY {
                mid * 2.0
            } else {
                (lo + hi) / 2.0
            };
        }
    }
    let floor = if rho > 0.0 {
        MIN_K_DIST_SCALE * distances.iter().map(|&d| f64::from(d)).sum::<f64>() / k as f64
    } else {
        MIN_K_DIST_SCALE * mean_distance
    };
    mid.max(floor)
}

/// Membership strength of a neighbour at distance `d` for a row with `(σ, ρ)`
/// (umap-learn's `compute_membership_strengths`): 1 within `ρ`, else `exp(-(d - ρ) / σ)`.
pub fn membership(d: f32, sigma: f64, rho: f64) -> f32 {
    let excess = f64::from(d) - rho;
    if excess <= 0.0 || sigma == 0.0 {
        1.0
    } else {
        (-excess / sigma).exp() as f32
    }
}

/// The fuzzy simplicial set of a kNN graph (umap-learn's `fuzzy_simplicial_set`).
pub fn fuzzy_simplicial_set(knn: &Knn) -> Graph {
    let (n, k) = (knn.rows(), knn.k);
    let total: f64 = knn.distances.iter().map(|&d| f64::from(d)).sum();
    let mean_distance = total / knn.distances.len().max(1) as f64;
    // Directed memberships, each entered once as (i, j) forward and once as (j, i) backward.
    let mut entries: Vec<(u32, u32, f32, f32)> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let dists = &knn.distances[i * k..(i + 1) * k];
            let (sigma, rho) = smooth_knn_dist(dists, mean_distance);
            knn.neighbours(i)
                .iter()
                .zip(dists)
                .filter_map(move |(&j, &d)| {
                    if j as usize == i {
                        return None;
                    }
                    let w = membership(d, sigma, rho);
                    (w > 0.0).then_some([(i as u32, j, w, 0.0), (j, i as u32, 0.0, w)])
                })
                .flatten()
        })
        .collect();
    entries.par_sort_unstable_by_key(|e| (e.0, e.1));
    let mut graph = Graph {
        n,
        head: Vec::with_capacity(entries.len() / 2),
        tail: Vec::with_capacity(entries.len() / 2),
        weights: Vec::with_capacity(entries.len() / 2),
    };
    for run in entries.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        // Duplicates add up, as scipy's COO → CSR conversion does.
        let forward: f32 = run.iter().map(|e| e.2).sum();
        let backward: f32 = run.iter().map(|e| e.3).sum();
        let w = forward + backward - forward * backward;
        if w > 0.0 {
            graph.head.push(run[0].0);
            graph.tail.push(run[0].1);
            graph.weights.push(w);
        }
    }
    graph
}

/// `a`, `b` such that `1 / (1 + a x^(2b))` fits 1 below `min_dist` and `exp(-(x - min_dist) /
/// spread)` above it on 300 points of `[0, 3 spread]` (umap-learn's `find_ab_params`, a
/// least-squares fit; here by Levenberg–Marquardt like scipy's `curve_fit`).
pub fn find_ab_params(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let sse = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| (1.0 / (1.0 + a * x.powf(2.0 * b)) - y).powi(2))
            .sum()
    };
    let (mut a, mut b, mut lambda) = (1.0f64, 1.0f64, 1e-3f64);
    let mut err = sse(a, b);
    for _ in 0..200 {
        // Normal equations J^T J δ = -J^T r for the residuals r = f - y.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x <= 0.0 {
                continue; // f(0) = 1 whatever a, b: no gradient.
            }
            let p = x.powf(2.0 * b);
            let f = 1.0 / (1.0 + a * p);
            let df = -f * f;
            let (da, db) = (df * p, df * a * p * 2.0 * x.ln());
            let r = f - y;
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let (maa, mbb) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
        let det = maa * mbb - jab * jab;
        if det.abs() < 1e-300 {
            break;
        }
        let step_a = -(mbb * ga - jab * gb) / det;
        let step_b = -(maa * gb - jab * ga) / det;
        let candidate = sse(a + step_a, b + step_b);
        if candidate < err {
            let converged = (err - candidate) < 1e-15 * err.max(1e-300);
            a += step_a;
            b += step_b;
            err = candidate;
            lambda = (lambda / 10.0).max(1e-12);
            if converged {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ab_params_match_umap_learn() {
        // umap.umap_.find_ab_params(1.0, 0.1) = (1.5769434603113077, 0.8950608781227859).
        let (a, b) = find_ab_params(1.0, 0.1);
        assert!((a - 1.576_943_46).abs() < 1e-4, "a = {a}");
        assert!((b - 0.895_060_88).abs() < 1e-4, "b = {b}");
        // min_dist 0.5: (0.5830300205483709, 1.334166992455648).
        let (a, b) = find_ab_params(1.0, 0.5);
        assert!(
            (a - 0.583_03).abs() < 1e-3 && (b - 1.334_17).abs() < 1e-3,
            "{a} {b}"
        );
    }

    #[test]
    fn sigma_solves_the_membership_sum() {
        let d = [0.0f32, 1.0, 1.5, 2.0, 3.0, 4.0];
        let (sigma, rho) = smooth_knn_dist(&d, 2.0);
        assert_eq!(rho, 1.0);
        // umap.umap_.smooth_knn_dist(np.array([d], np.float32), 6.0) = ([1.4461365], [1.0]).
        assert!((sigma - 1.446_136_5).abs() < 1e-5, "sigma {sigma}");
        let sum: f64 = d[1..]
            .iter()
            .map(|&x| (-(f64::from(x) - rho).max(0.0) / sigma).exp())
            .sum();
        assert!((sum - 6f64.log2()).abs() < 1e-4, "{sum}");
        // All neighbours at distance 0: ρ = 0 and σ falls back to its floor.
        let (sigma, rho) = smooth_knn_dist(&[0.0; 4], 2.0);
        assert_eq!(rho, 0.0);
        assert!(sigma >= 2e-3);
    }

    #[test]
    fn fuzzy_union_is_symmetric() {
        // Four points on a line, 3 neighbours each (self included).
        let knn = Knn {
            k: 3,
            indices: vec![0, 1, 2, 1, 0, 2, 2, 1, 3, 3, 2, 1],
            distances: vec![0.0, 1.0, 2.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 2.0],
        };
        let g = fuzzy_simplicial_set(&knn);
        let w = |h: u32, t: u32| {
            (0..g.head.len())
                .find(|&e| g.head[e] == h && g.tail[e] == t)
                .map(|e| g.weights[e])
        };
        for e in 0..g.head.len() {
            assert_eq!(w(g.tail[e], g.head[e]), Some(g.weights[e]), "symmetric");
            assert!(g.weights[e] > 0.0 && g.weights[e] <= 1.0);
        }
        // The nearest neighbour has membership 1, hence union 1.
        assert_eq!(w(0, 1), Some(1.0));
        assert!(w(0, 3).is_none(), "0 and 3 are not neighbours either way");
        assert!(g.head.windows(2).all(|p| p[0] <= p[1]), "sorted by head");
    }
}

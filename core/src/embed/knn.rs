//! k nearest neighbours (Euclidean) of every row of a dense `n × dim` matrix: exact, by blocked
//! matrix products, up to a few hundred thousand rows; approximate with an HNSW index
//! (`hnsw_rs`, Malkov & Yashunin 2018) above; and exact for a sample of query rows to measure
//! the recall of the approximation.
//!
//! As in umap-learn, each row's first neighbour is the row itself at distance 0.

use crate::error::{Error, Result};
use crate::progress::Progress;
use hnsw_rs::prelude::{Distance, Hnsw};
use rayon::prelude::*;

/// Settings of [`approximate_knn`].
#[derive(Debug, Clone)]
pub struct KnnOptions {
    /// Neighbours per row, the row itself included (umap-learn's `n_neighbors`).
    pub k: usize,
    /// HNSW links per node and layer (`M`).
    pub max_connections: usize,
    /// Candidate list size while building the index.
    pub ef_construction: usize,
    /// Candidate list size while searching (at least `k`).
    pub ef_search: usize,
    /// Inputs with fewer rows than this are searched exactly: the blocked matrix product of
    /// [`exact_knn`] beats the HNSW index up to a few hundred thousand rows, and is exact.
    pub exact_below: usize,
}

impl Default for KnnOptions {
    fn default() -> Self {
        Self {
            k: 15,
            max_connections: 16,
            ef_construction: 100,
            ef_search: 48,
            exact_below: 200_000,
        }
    }
}

/// Neighbour lists: `rows × k`, row-major, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    /// Neighbours per row.
    pub k: usize,
    /// Row indices of the neighbours.
    pub indices: Vec<u32>,
    /// Euclidean distances to the neighbours, ascending within a row.
    pub distances: Vec<f32>,
}

impl Knn {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.indices.len() / self.k.max(1)
    }

    /// Neighbour indices of row `i`.
    pub fn neighbours(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }
}

/// Euclidean distance with eight independent partial sums, which the compiler turns into SIMD
/// (`hnsw_rs`'s own `DistL2` sums sequentially, which it cannot vectorise).
#[derive(Debug, Clone, Copy, Default)]
struct Euclidean;

impl Distance<f32> for Euclidean {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let mut lanes = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for l in 0..8 {
                let d = x[l] - y[l];
                lanes[l] += d * d;
            }
        }
        let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
        (lanes.iter().sum::<f32>() + tail).sqrt()
    }
}

/// Checks `points` is `n × dim` with `n ≥ 2`, finite, and `2 ≤ k ≤ n`; returns `n`.
fn validate(points: &[f32], dim: usize, k: usize) -> Result<usize> {
    if dim == 0 || !points.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument(format!(
            "{} values are not rows of {dim} coordinates",
            points.len()
        )));
    }
    let n = points.len() / dim;
    if n < 2 || k < 2 || k > n {
        return Err(Error::InvalidData(format!(
            "cannot find {k} neighbours among {n} points; a neighbour graph needs at least 2 neighbours and as many points"
        )));
    }
    if points.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidData(
            "the coordinates contain NaN or infinite values".into(),
        ));
    }
    Ok(n)
}

/// The `k` nearest neighbours of every row: HNSW for `n ≥ exact_below`, else exact.
/// Reports its fraction to `progress` and stops when it is cancelled.
pub fn approximate_knn(
    points: &[f32],
    dim: usize,
    options: &KnnOptions,
    progress: &Progress,
) -> Result<Knn> {
    let n = validate(points, dim, options.k)?;
    if n < options.exact_below {
        let all: Vec<usize> = (0..n).collect();
        return exact_knn(points, dim, &all, options.k, progress);
    }
    let k = options.k;
    let m = options.max_connections.clamp(4, 255);
    let mut index: Hnsw<'_, f32, Euclidean> =
        Hnsw::new(m, n, 16, options.ef_construction.max(k), Euclidean);
    // Insert in slices so that progress and cancellation are seen between them.
    let slices = 40;
    let per = n.div_ceil(slices);
    for s in 0..slices {
        progress.check()?;
        let rows: Vec<(&[f32], usize)> = (s * per..((s + 1) * per).min(n))
            .map(|i| (&points[i * dim..(i + 1) * dim], i))
            .collect();
        index.parallel_insert_slice(&rows);
        progress.set_fraction(0.7 * (s + 1) as f32 / slices as f32);
    }
    index.set_searching_mode(true);
    let ef = options.ef_search.max(k);
    let mut indices = vec![0u32; n * k];
    let mut distances = vec![0f32; n * k];
    let rows_per_slice = per.max(1);
    for (s, (idx, dist)) in indices
        .chunks_mut(rows_per_slice * k)
        .zip(distances.chunks_mut(rows_per_slice * k))
        .enumerate()
    {
        progress.check()?;
        idx.par_chunks_mut(k)
            .zip(dist.par_chunks_mut(k))
            .enumerate()
            .for_each(|(r, (idx, dist))| {
                let i = s * rows_per_slice + r;
                let found: Vec<(u32, f32)> = index
                    .search(&points[i * dim..(i + 1) * dim], k, ef)
                    .into_iter()
                    .map(|nb| (nb.d_id as u32, nb.distance))
                    .collect();
                let row = if found.len() == k {
                    self_first(i as u32, found, k)
                } else {
                    // Too few results (tiny or degenerate graphs): search this row exactly.
                    exact_row(points, dim, i, k)
                };
                for (slot, (j, d)) in row.into_iter().enumerate() {
                    idx[slot] = j;
                    dist[slot] = d;
                }
            });
        progress.set_fraction(0.7 + 0.3 * ((s + 1) * rows_per_slice).min(n) as f32 / n as f32);
    }
    Ok(Knn {
        k,
        indices,
        distances,
    })
}

/// Puts `i` itself first at distance 0 (HNSW may rank an identical point before it, or miss it)
/// and keeps `k` entries.
fn self_first(i: u32, mut found: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    found.retain(|&(j, _)| j != i);
    found.insert(0, (i, 0.0));
    found.truncate(k);
    found
}

/// Exact `k` nearest neighbours of row `i`, itself first, ties by index.
fn exact_row(points: &[f32], dim: usize, i: usize, k: usize) -> Vec<(u32, f32)> {
    let n = points.len() / dim;
    let q = &points[i * dim..(i + 1) * dim];
    let mut all: Vec<(u32, f32)> = (0..n)
        .filter(|&j| j != i)
        .map(|j| {
            let p = &points[j * dim..(j + 1) * dim];
            let d2: f32 = q.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
            (j as u32, d2)
        })
        .collect();
    let by_distance = |a: &(u32, f32), b: &(u32, f32)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
    if all.len() > k - 1 {
        all.select_nth_unstable_by(k - 1, by_distance);
        all.truncate(k - 1);
    }
    all.sort_unstable_by(by_distance);
    let mut row = Vec::with_capacity(k);
    row.push((i as u32, 0.0));
    row.extend(all.into_iter().map(|(j, d2)| (j, d2.sqrt())));
    row
}

/// Dot products computed per matrix product: one block of queries against every row is held
/// at once (16 Mi values, 64 MiB).
const DOTS_PER_BLOCK: usize = 16 << 20;

/// Exact `k` nearest neighbours of the rows `queries` (row `r` of the result is `queries[r]`),
/// each row itself first, then by distance (ties by index).
///
/// Squared distances are expanded as |p|² − 2 p·q (+ |q|²), so the work is a blocked matrix
/// product (`faer`, parallel) followed by a one-pass selection per query; the distances of the
/// selected neighbours are then recomputed directly, since the expansion loses precision for
/// close points.
pub fn exact_knn(
    points: &[f32],
    dim: usize,
    queries: &[usize],
    k: usize,
    progress: &Progress,
) -> Result<Knn> {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, Mat, MatRef, Par};
    let n = validate(points, dim, k)?;
    if let Some(&bad) = queries.iter().find(|&&q| q >= n) {
        return Err(Error::InvalidArgument(format!(
            "query row {bad} is out of range (0..{n})"
        )));
    }
    let norms: Vec<f32> = points
        .par_chunks(dim)
        .map(|r| r.iter().map(|x| x * x).sum())
        .collect();
    let all = MatRef::from_row_major_slice(points, n, dim);
    let block = (DOTS_PER_BLOCK / n).clamp(16, 1024);
    let mut dots = Mat::<f32>::zeros(n, block);
    let mut block_points = Mat::<f32>::zeros(dim, block);
    let mut indices = vec![0u32; queries.len() * k];
    let mut distances = vec![0f32; queries.len() * k];
    for (s, (qs, (idx, dist))) in queries
        .chunks(block)
        .zip(
            indices
                .chunks_mut(block * k)
                .zip(distances.chunks_mut(block * k)),
        )
        .enumerate()
    {
        progress.check()?;
        for (c, &q) in qs.iter().enumerate() {
            for (d, &x) in points[q * dim..(q + 1) * dim].iter().enumerate() {
                block_points[(d, c)] = x;
            }
        }
        // dots[j, c] = p_j · q_c
        matmul(
            dots.as_mut().subcols_mut(0, qs.len()),
            Accum::Replace,
            all,
            block_points.as_ref().subcols(0, qs.len()),
            1.0f32,
            Par::rayon(0),
        );
        let dots = &dots;
        idx.par_chunks_mut(k)
            .zip(dist.par_chunks_mut(k))
            .enumerate()
            .for_each(|(c, (idx, dist))| {
                let row = nearest_from_dots(dots.col_as_slice(c), &norms, points, dim, qs[c], k);
                for (slot, (j, d)) in row.into_iter().enumerate() {
                    idx[slot] = j;
                    dist[slot] = d;
                }
            });
        progress.set_fraction(((s + 1) * block).min(queries.len()) as f32 / queries.len() as f32);
    }
    Ok(Knn {
        k,
        indices,
        distances,
    })
}

/// The `k` nearest neighbours of row `q` (itself first) from its dot products with every row.
fn nearest_from_dots(
    dots: &[f32],
    norms: &[f32],
    points: &[f32],
    dim: usize,
    q: usize,
    k: usize,
) -> Vec<(u32, f32)> {
    // The k − 1 smallest |p|² − 2 p·q (the query's own |q|² is the same for all), ascending.
    let keep = k - 1;
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(keep + 1);
    let mut worst = f32::INFINITY;
    for (j, (&dot, &norm)) in dots.iter().zip(norms).enumerate() {
        let d = norm - 2.0 * dot;
        if (d < worst || best.len() < keep) && j != q {
            let at = best.partition_point(|b| b.0 <= d);
            best.insert(at, (d, j as u32));
            best.truncate(keep);
            if best.len() == keep {
                worst = best[keep - 1].0;
            }
        }
    }
    let query = &points[q * dim..(q + 1) * dim];
    let mut row: Vec<(u32, f32)> = best
        .into_iter()
        .map(|(_, j)| {
            let p = &points[j as usize * dim..(j as usize + 1) * dim];
            (j, Euclidean.eval(query, p))
        })
        .collect();
    row.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    row.insert(0, (q as u32, 0.0));
    row
}

/// Recall of `approx` (all rows) against `exact` (the rows `queries`, as from [`exact_knn`]):
/// the mean fraction of each query's exact neighbours that `approx` also lists.
pub fn recall(approx: &Knn, exact: &Knn, queries: &[usize]) -> f64 {
    if queries.is_empty() {
        return f64::NAN;
    }
    let hits: usize = queries
        .iter()
        .enumerate()
        .map(|(r, &q)| {
            let found = approx.neighbours(q);
            exact
                .neighbours(r)
                .iter()
                .filter(|j| found.contains(j))
                .count()
        })
        .sum();
    hits as f64 / (queries.len() * exact.k) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::tests::clustered;

    #[test]
    fn hnsw_recall_is_high_on_clustered_data() {
        let (n, dim) = (6_000, 20);
        let points = clustered(n, dim, 10, 1);
        let options = KnnOptions {
            exact_below: 0,
            ..Default::default()
        };
        let approx = approximate_knn(&points, dim, &options, &Progress::new()).unwrap();
        assert_eq!(approx.rows(), n);
        let queries: Vec<usize> = (0..n).step_by(20).collect();
        let exact = exact_knn(&points, dim, &queries, 15, &Progress::new()).unwrap();
        let r = recall(&approx, &exact, &queries);
        assert!(r >= 0.9, "recall {r}");
        for i in [0, 17, n - 1] {
            assert_eq!(approx.neighbours(i)[0], i as u32, "self first");
            let d = &approx.distances[i * 15..(i + 1) * 15];
            assert!(d.windows(2).all(|w| w[0] <= w[1]), "ascending {d:?}");
        }
    }

    #[test]
    fn blocked_exact_knn_matches_brute_force_over_several_blocks() {
        // 20,000 rows: blocks of 838 queries, so the queries below span several blocks.
        let (n, dim, k) = (20_000, 12, 10);
        let points = clustered(n, dim, 7, 3);
        let queries: Vec<usize> = (0..n).step_by(7).collect();
        let knn = exact_knn(&points, dim, &queries, k, &Progress::new()).unwrap();
        for (r, &q) in queries.iter().enumerate().step_by(97) {
            let expected = exact_row(&points, dim, q, k);
            let got = &knn.indices[r * k..(r + 1) * k];
            let want: Vec<u32> = expected.iter().map(|e| e.0).collect();
            // Equal distances may come in another order; the distances must agree.
            for (slot, (j, d)) in expected.iter().enumerate() {
                let ours = knn.distances[r * k + slot];
                assert!(
                    (ours - d).abs() <= 1e-4 * d.max(1.0),
                    "query {q}: {ours} vs {d}"
                );
                assert!(want.contains(&got[slot]) || (ours - d).abs() < 1e-6, "{j}");
            }
            assert_eq!(got[0], q as u32);
        }
    }

    #[test]
    fn exact_knn_is_exact_on_a_line() {
        // Points 0, 1, 2, ... on a line: the neighbours of 5 are 5, 4|6, ...
        let points: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let knn = exact_knn(&points, 1, &[5, 0], 3, &Progress::new()).unwrap();
        assert_eq!(knn.neighbours(0), &[5, 4, 6]);
        assert_eq!(knn.neighbours(1), &[0, 1, 2]);
        assert_eq!(&knn.distances[..3], &[0.0, 1.0, 1.0]);
        // Small inputs go to the exact search, duplicates keep themselves first.
        let dup = [1.0f32, 1.0, 1.0, 5.0];
        let knn = approximate_knn(
            &dup,
            1,
            &KnnOptions {
                k: 2,
                ..Default::default()
            },
            &Progress::new(),
        )
        .unwrap();
        assert_eq!(knn.neighbours(1)[0], 1);
    }

    #[test]
    fn simd_friendly_distance_is_euclidean() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| (i * i) as f32 * 0.1).collect();
        let want: f32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt();
        assert!((Euclidean.eval(&a, &b) - want).abs() < 1e-4 * want);
        assert_eq!(Euclidean.eval(&a, &a), 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        let p = Progress::new();
        assert!(approximate_knn(&[1.0, 2.0, 3.0], 2, &KnnOptions::default(), &p).is_err());
        assert!(approximate_knn(&[1.0, 2.0], 1, &KnnOptions::default(), &p).is_err());
        assert!(exact_knn(&[1.0, f32::NAN, 2.0], 1, &[0], 2, &p).is_err());
        assert!(exact_knn(&[1.0, 2.0, 3.0], 1, &[3], 2, &p).is_err());
    }

    #[test]
    fn knn_stops_when_cancelled() {
        let points = clustered(5_000, 4, 3, 2);
        let p = Progress::new();
        p.cancel();
        let options = KnnOptions {
            exact_below: 0,
            ..Default::default()
        };
        assert!(
            approximate_knn(&points, 4, &options, &p)
                .unwrap_err()
                .is_cancelled()
        );
    }
}

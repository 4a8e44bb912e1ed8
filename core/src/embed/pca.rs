//! PCA as scanpy's `normalize_total` → `log1p` → `highly_variable_genes` → `pca`, on the sparse
//! matrix without densifying it.
//!
//! Values are prepared per matrix kind: raw counts are scaled to 10,000 per cell and
//! log1p-transformed, normalised (unlogged) values are log1p-transformed, log-normalised and
//! other values are used as they are. The `n_top_genes` most variable genes are kept (scanpy's
//! `flavor="seurat"`: log dispersion normalised within 20 bins of mean expression; plain variance
//! for scaled data, which has no dispersion). The top components of the centred matrix come from
//! a randomized SVD (Halko, Martinsson & Tropp 2011) with subspace iteration, where every
//! product with the centred matrix `X - 1 μᵀ` is a sparse product with `X` minus a rank-one
//! correction, so memory stays at a few `cells × (components + oversamples)` dense blocks.

use crate::dataset::MatrixKind;
use crate::error::{Error, Result};
use crate::io::h5ad::detect_kind;
use crate::matrix::CsrMatrix;
use crate::progress::Progress;
use crate::rng::SplitMix64;
use faer::Mat;
use rayon::prelude::*;

/// Settings of [`pca`].
#[derive(Debug, Clone)]
pub struct PcaOptions {
    /// Components to compute (fewer when the data has fewer cells or genes).
    pub n_components: usize,
    /// Highly variable genes to keep.
    pub n_top_genes: usize,
    /// Extra random directions beyond `n_components` (accuracy of the trailing components).
    pub oversamples: usize,
    /// Subspace (power) iterations; each costs two passes over the matrix.
    pub power_iterations: usize,
    /// Seed of the random test matrix.
    pub seed: u64,
}

impl Default for PcaOptions {
    fn default() -> Self {
        Self {
            n_components: 50,
            n_top_genes: 2_000,
            oversamples: 10,
            power_iterations: 5,
            seed: 0,
        }
    }
}

/// A computed PCA.
#[derive(Debug, Clone)]
pub struct Pca {
    /// Number of components `k`.
    pub n_components: usize,
    /// Cell coordinates, `cells × k` row-major (scanpy's `obsm['X_pca']`).
    pub scores: Vec<f32>,
    /// Loadings, `genes.len() × k` row-major (scanpy's `varm['PCs']` restricted to the genes used).
    pub loadings: Vec<f32>,
    /// Indices (columns of the input matrix) of the genes used, in the order of `loadings`' rows.
    pub genes: Vec<usize>,
    /// Variance of each component (`σ² / (n - 1)`).
    pub variance: Vec<f64>,
    /// Fraction of the total variance of the genes used that each component explains.
    pub variance_ratio: Vec<f64>,
    /// Mean of each gene used (after `transform`), in the order of `genes`: the centre.
    pub mean: Vec<f64>,
    /// How stored values were transformed before the PCA.
    pub transform: Transform,
}

impl Pca {
    /// Coordinates of the rows of `matrix` (cells × the same genes as the PCA's input, values of
    /// the same kind) in this PCA's space: `rows × n_components`, row-major. Projecting the
    /// PCA's own input gives its `scores`.
    pub fn project(&self, matrix: &CsrMatrix) -> Vec<f32> {
        let k = self.n_components;
        let mut column = vec![usize::MAX; matrix.n_cols];
        for (slot, &j) in self.genes.iter().enumerate() {
            if let Some(c) = column.get_mut(j) {
                *c = slot;
            }
        }
        // The centre's own coordinates, subtracted from every row.
        let mut shift = vec![0f64; k];
        for (slot, m) in self.mean.iter().enumerate() {
            let row = &self.loadings[slot * k..(slot + 1) * k];
            shift
                .iter_mut()
                .zip(row)
                .for_each(|(s, &l)| *s += m * f64::from(l));
        }
        let values = transformed_values(matrix, self.transform);
        let mut out = vec![0f32; matrix.n_rows * k];
        out.par_chunks_mut(k).enumerate().for_each(|(i, o)| {
            let start = matrix.indptr[i] as usize;
            let mut acc = vec![0f64; k];
            for (&j, &v) in matrix.row(i).0.iter().zip(&values[start..]) {
                let slot = column[j as usize];
                if slot != usize::MAX {
                    let row = &self.loadings[slot * k..(slot + 1) * k];
                    acc.iter_mut()
                        .zip(row)
                        .for_each(|(a, &l)| *a += f64::from(v) * f64::from(l));
                }
            }
            for ((o, a), s) in o.iter_mut().zip(&acc).zip(&shift) {
                *o = (a - s) as f32;
            }
        });
        out
    }
}

/// How stored values become the values the PCA sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// `log1p(v · 10⁴ / cell total)`.
    NormalizeLog,
    /// `log1p(v)`.
    Log,
    /// `v`.
    Identity,
}

impl Transform {
    fn for_kind(kind: Option<MatrixKind>) -> Self {
        match kind {
            Some(MatrixKind::RawCounts) => Transform::NormalizeLog,
            Some(MatrixKind::Normalized) => Transform::Log,
            _ => Transform::Identity,
        }
    }
}

/// PCA of `matrix` (cells × genes) whose values are of `kind` (see the module docs; `None`:
/// detected from the values).
///
/// Errors on a matrix with fewer than 3 cells, fewer than 2 genes that vary, or non-finite
/// values; returns `Error::Cancelled` when `progress` is cancelled.
pub fn pca(
    matrix: &CsrMatrix,
    kind: Option<MatrixKind>,
    options: &PcaOptions,
    progress: &Progress,
) -> Result<Pca> {
    if matrix.n_rows < 3 || matrix.n_cols < 2 || matrix.nnz() == 0 {
        return Err(Error::InvalidData(format!(
            "cannot compute a PCA of a {} × {} matrix with {} stored values; it needs at least 3 cells and 2 genes with data",
            matrix.n_rows,
            matrix.n_cols,
            matrix.nnz()
        )));
    }
    if matrix.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidData(
            "the matrix contains NaN or infinite values; cannot compute a PCA".into(),
        ));
    }
    // Unknown kind: judge by a sample of the values, as the reader does.
    let kind = kind.or_else(|| Some(detect_kind(&matrix.data[..matrix.nnz().min(100_000)])));
    let transform = Transform::for_kind(kind);
    progress.set_fraction(0.0);
    let values = transformed_values(matrix, transform);
    let seurat = kind != Some(MatrixKind::Scaled) && values.iter().all(|&v| v >= 0.0);
    let stats = gene_stats(matrix, &values, seurat);
    let genes = select_genes(&stats, options.n_top_genes, seurat);
    if genes.len() < 2 {
        return Err(Error::InvalidData(format!(
            "only {} gene(s) vary across cells; a PCA needs at least 2",
            genes.len()
        )));
    }
    progress.check()?;
    let x = subset_columns(matrix, &values, &genes);
    let mean: Vec<f64> = genes.iter().map(|&j| stats.mean[j]).collect();
    let total_variance: f64 = genes.iter().map(|&j| stats.var[j]).sum();
    let mut out = randomized_pca(&x, &mean, options, progress)?;
    out.transform = transform;
    out.variance_ratio = out
        .variance
        .iter()
        .map(|v| v / total_variance.max(f64::MIN_POSITIVE))
        .collect();
    out.genes = genes;
    Ok(out)
}

/// The stored values after the transform, aligned with `matrix.data`.
fn transformed_values(matrix: &CsrMatrix, transform: Transform) -> Vec<f32> {
    let mut values = vec![0f32; matrix.nnz()];
    let starts: Vec<usize> = matrix.indptr.iter().map(|&p| p as usize).collect();
    let mut slices: Vec<&mut [f32]> = Vec::with_capacity(matrix.n_rows);
    let mut rest = values.as_mut_slice();
    for i in 0..matrix.n_rows {
        let (row, tail) = rest.split_at_mut(starts[i + 1] - starts[i]);
        slices.push(row);
        rest = tail;
    }
    slices.into_par_iter().enumerate().for_each(|(i, out)| {
        let vals = matrix.row(i).1;
        let scale = match transform {
            Transform::NormalizeLog => {
                let total: f32 = vals.iter().sum();
                if total > 0.0 { 1e4 / total } else { 1.0 }
            }
            _ => 1.0,
        };
        for (o, &v) in out.iter_mut().zip(vals) {
            *o = match transform {
                Transform::NormalizeLog => (v * scale).ln_1p(),
                Transform::Log => v.ln_1p(),
                Transform::Identity => v,
            };
        }
    });
    values
}

/// Per-gene statistics over all cells (implicit zeros included).
struct GeneStats {
    /// Mean of the transformed values.
    mean: Vec<f64>,
    /// Variance (ddof 1) of the transformed values.
    var: Vec<f64>,
    /// Mean of `expm1` of the transformed values (Seurat flavour only).
    mean_exp: Vec<f64>,
    /// Variance (ddof 1) of `expm1` of the transformed values (Seurat flavour only).
    var_exp: Vec<f64>,
}

fn gene_stats(matrix: &CsrMatrix, values: &[f32], seurat: bool) -> GeneStats {
    let g = matrix.n_cols;
    let chunk = 1024;
    let sums = (0..matrix.n_rows.div_ceil(chunk))
        .into_par_iter()
        .fold(
            || vec![0f64; 4 * g],
            |mut acc, c| {
                for i in c * chunk..((c + 1) * chunk).min(matrix.n_rows) {
                    let (cols, _) = matrix.row(i);
                    let start = matrix.indptr[i] as usize;
                    for (&j, &y) in cols.iter().zip(&values[start..start + cols.len()]) {
                        let (j, y) = (j as usize, f64::from(y));
                        acc[4 * j] += y;
                        acc[4 * j + 1] += y * y;
                        if seurat {
                            let e = y.exp_m1();
                            acc[4 * j + 2] += e;
                            acc[4 * j + 3] += e * e;
                        }
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; 4 * g],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let n = matrix.n_rows as f64;
    let mean_var = |s: f64, s2: f64| {
        let m = s / n;
        (m, ((s2 - n * m * m) / (n - 1.0)).max(0.0))
    };
    let (mean, var): (Vec<f64>, Vec<f64>) = (0..g)
        .map(|j| mean_var(sums[4 * j], sums[4 * j + 1]))
        .unzip();
    let (mean_exp, var_exp): (Vec<f64>, Vec<f64>) = (0..g)
        .map(|j| mean_var(sums[4 * j + 2], sums[4 * j + 3]))
        .unzip();
    GeneStats {
        mean,
        var,
        mean_exp,
        var_exp,
    }
}

/// Column indices of the `n_top` most variable genes, ascending; genes that do not vary are
/// never kept.
fn select_genes(stats: &GeneStats, n_top: usize, seurat: bool) -> Vec<usize> {
    let g = stats.var.len();
    let score = if seurat {
        seurat_dispersions(&stats.mean_exp, &stats.var_exp)
    } else {
        stats.var.clone()
    };
    let mut order: Vec<usize> = (0..g).filter(|&j| stats.var[j] > 0.0).collect();
    // Descending score, NaN last, ties by gene index (stable sort).
    order.sort_by(|&a, &b| match (score[a].is_nan(), score[b].is_nan()) {
        (false, false) => score[b].total_cmp(&score[a]),
        (x, y) => x.cmp(&y),
    });
    order.truncate(n_top.max(2));
    order.sort_unstable();
    order
}

/// scanpy's `highly_variable_genes(flavor="seurat")` score: the log dispersion of `expm1`
/// values, z-scored within 20 equal-width bins of `log1p(mean)`. NaN where undefined.
fn seurat_dispersions(mean: &[f64], var: &[f64]) -> Vec<f64> {
    const BINS: usize = 20;
    let disp: Vec<f64> = mean
        .iter()
        .zip(var)
        .map(|(&m, &v)| {
            let d = v / if m == 0.0 { 1e-12 } else { m };
            if d == 0.0 { f64::NAN } else { d.ln() }
        })
        .collect();
    let log_mean: Vec<f64> = mean.iter().map(|m| m.ln_1p()).collect();
    let lo = log_mean.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = log_mean.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = (hi - lo) / BINS as f64;
    let bin = |m: f64| {
        if width > 0.0 {
            // pandas.cut bins are right-closed: (edge_k, edge_k+1].
            (((m - lo) / width).ceil() as usize)
                .saturating_sub(1)
                .min(BINS - 1)
        } else {
            0
        }
    };
    let mut members: Vec<Vec<f64>> = vec![Vec::new(); BINS];
    for (&m, &d) in log_mean.iter().zip(&disp) {
        if !d.is_nan() {
            members[bin(m)].push(d);
        }
    }
    let moments: Vec<(f64, f64)> = members
        .iter()
        .map(|ds| {
            let n = ds.len() as f64;
            let mu = ds.iter().sum::<f64>() / n;
            let sd = (ds.iter().map(|d| (d - mu).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            // A bin with one gene has no spread: scanpy divides by its mean and centres on 0.
            if ds.len() == 1 { (0.0, mu) } else { (mu, sd) }
        })
        .collect();
    log_mean
        .iter()
        .zip(&disp)
        .map(|(&m, &d)| {
            let (mu, sd) = moments[bin(m)];
            (d - mu) / sd
        })
        .collect()
}

/// The transformed values of the columns `genes` (ascending), renumbered `0..genes.len()`.
fn subset_columns(matrix: &CsrMatrix, values: &[f32], genes: &[usize]) -> CsrMatrix {
    let mut new_index = vec![u32::MAX; matrix.n_cols];
    for (k, &j) in genes.iter().enumerate() {
        new_index[j] = k as u32;
    }
    let mut out = CsrMatrix {
        n_rows: matrix.n_rows,
        n_cols: genes.len(),
        indptr: Vec::with_capacity(matrix.n_rows + 1),
        ..Default::default()
    };
    out.indptr.push(0);
    for i in 0..matrix.n_rows {
        let start = matrix.indptr[i] as usize;
        for (&j, &y) in matrix.row(i).0.iter().zip(&values[start..]) {
            let k = new_index[j as usize];
            if k != u32::MAX {
                out.indices.push(k);
                out.data.push(y);
            }
        }
        out.indptr.push(out.data.len() as u64);
    }
    out
}

/// A dense row-major block.
struct Dense {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Dense {
    fn to_faer(&self) -> Mat<f64> {
        Mat::from_fn(self.rows, self.cols, |i, j| self.data[i * self.cols + j])
    }

    fn from_faer(m: faer::MatRef<'_, f64>) -> Self {
        let (rows, cols) = (m.nrows(), m.ncols());
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(m[(i, j)]);
            }
        }
        Self { rows, cols, data }
    }
}

/// `(X - 1 μᵀ) B` for `B` genes × l: one parallel pass over the rows.
fn centred_times(x: &CsrMatrix, mean: &[f64], b: &Dense) -> Dense {
    let l = b.cols;
    let shift: Vec<f64> = (0..l)
        .map(|c| (0..b.rows).map(|j| mean[j] * b.data[j * l + c]).sum())
        .collect();
    let mut data = vec![0f64; x.n_rows * l];
    data.par_chunks_mut(l).enumerate().for_each(|(i, out)| {
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            let row = &b.data[j as usize * l..(j as usize + 1) * l];
            let v = f64::from(v);
            out.iter_mut().zip(row).for_each(|(o, r)| *o += v * r);
        }
        out.iter_mut().zip(&shift).for_each(|(o, s)| *o -= s);
    });
    Dense {
        rows: x.n_rows,
        cols: l,
        data,
    }
}

/// `(X - 1 μᵀ)ᵀ Q` for `Q` cells × l: per-thread accumulators over row chunks, then summed.
fn centred_t_times(x: &CsrMatrix, mean: &[f64], q: &Dense) -> Dense {
    let (l, g) = (q.cols, x.n_cols);
    let chunk = 2048;
    let mut data = (0..x.n_rows.div_ceil(chunk))
        .into_par_iter()
        .fold(
            || vec![0f64; g * l],
            |mut acc, c| {
                for i in c * chunk..((c + 1) * chunk).min(x.n_rows) {
                    let (cols, vals) = x.row(i);
                    let qi = &q.data[i * l..(i + 1) * l];
                    for (&j, &v) in cols.iter().zip(vals) {
                        let v = f64::from(v);
                        let out = &mut acc[j as usize * l..(j as usize + 1) * l];
                        out.iter_mut().zip(qi).for_each(|(o, r)| *o += v * r);
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; g * l],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let col_sums: Vec<f64> = (0..l)
        .map(|c| (0..q.rows).map(|i| q.data[i * l + c]).sum())
        .collect();
    for (j, m) in mean.iter().enumerate() {
        for (o, s) in data[j * l..(j + 1) * l].iter_mut().zip(&col_sums) {
            *o -= m * s;
        }
    }
    Dense {
        rows: g,
        cols: l,
        data,
    }
}

/// Orthonormal basis of the columns of `a` (thin Q of its QR factorisation).
fn orthonormalize(a: &Dense) -> Dense {
    let q = a.to_faer().qr().compute_thin_Q();
    Dense::from_faer(q.as_ref())
}

/// Top principal components of `x - 1 meanᵀ` (cells × genes, values already transformed) by
/// randomized SVD. `genes` and `variance_ratio` are left empty for the caller.
pub fn randomized_pca(
    x: &CsrMatrix,
    mean: &[f64],
    options: &PcaOptions,
    progress: &Progress,
) -> Result<Pca> {
    let (n, g) = (x.n_rows, x.n_cols);
    let max_rank = n.min(g);
    if max_rank < 2 || mean.len() != g {
        return Err(Error::InvalidData(format!(
            "cannot compute a PCA of a {n} × {g} matrix"
        )));
    }
    let k = options.n_components.clamp(1, max_rank - 1);
    let l = (k + options.oversamples).min(max_rank);
    let passes = 2 * options.power_iterations + 2;
    let mut pass = 0;
    let mut step = |progress: &Progress| -> Result<()> {
        progress.check()?;
        pass += 1;
        progress.set_fraction(pass as f32 / passes as f32);
        Ok(())
    };

    let mut rng = SplitMix64::new(options.seed);
    let omega = Dense {
        rows: g,
        cols: l,
        data: (0..g * l).map(|_| f64::from(rng.normal())).collect(),
    };
    let mut q = orthonormalize(&centred_times(x, mean, &omega));
    step(progress)?;
    for _ in 0..options.power_iterations {
        let z = orthonormalize(&centred_t_times(x, mean, &q));
        step(progress)?;
        q = orthonormalize(&centred_times(x, mean, &z));
        step(progress)?;
    }
    // B = Qᵀ Xc (l × genes) = (Xcᵀ Q)ᵀ; its SVD gives the components.
    let bt = centred_t_times(x, mean, &q);
    step(progress)?;
    let svd = bt
        .to_faer()
        .thin_svd()
        .map_err(|e| Error::InvalidData(format!("the PCA's SVD did not converge: {e:?}")))?;
    // Bᵀ = V Σ Uᵀ: the left factor of Bᵀ holds the gene loadings, the right one rotates Q.
    let (v, s, u_small) = (svd.U(), svd.S().column_vector(), svd.V());
    let mut loadings = vec![0f32; g * k];
    let mut scores = vec![0f32; n * k];
    let mut variance = Vec::with_capacity(k);
    let mut sign = vec![1f64; k];
    for c in 0..k {
        // Deterministic signs: the largest loading of each component is positive.
        let (mut best, mut at) = (0f64, 0);
        for j in 0..g {
            if v[(j, c)].abs() > best {
                best = v[(j, c)].abs();
                at = j;
            }
        }
        sign[c] = if v[(at, c)] < 0.0 { -1.0 } else { 1.0 };
        for j in 0..g {
            loadings[j * k + c] = (sign[c] * v[(j, c)]) as f32;
        }
        variance.push(s[c] * s[c] / (n as f64 - 1.0));
    }
    // Scores = Xc V = Q U_small Σ.
    scores.par_chunks_mut(k).enumerate().for_each(|(i, out)| {
        let qi = &q.data[i * l..(i + 1) * l];
        for (c, o) in out.iter_mut().enumerate() {
            let dot: f64 = (0..l).map(|r| qi[r] * u_small[(r, c)]).sum();
            *o = (sign[c] * dot * s[c]) as f32;
        }
    });
    progress.set_fraction(1.0);
    Ok(Pca {
        n_components: k,
        scores,
        loadings,
        genes: Vec::new(),
        variance,
        variance_ratio: Vec::new(),
        mean: mean.to_vec(),
        transform: Transform::Identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random sparse low-rank-plus-noise matrix, dense copy alongside.
    fn low_rank(n: usize, g: usize, seed: u64) -> (CsrMatrix, Vec<f64>) {
        let mut rng = SplitMix64::new(seed);
        let rank = 4;
        let u: Vec<f64> = (0..n * rank).map(|_| f64::from(rng.normal())).collect();
        let w: Vec<f64> = (0..rank * g).map(|_| f64::from(rng.normal())).collect();
        let scale = [6.0, 4.0, 2.5, 1.5];
        let mut dense = vec![0f64; n * g];
        let mut m = CsrMatrix {
            n_rows: n,
            n_cols: g,
            indptr: vec![0],
            ..Default::default()
        };
        for i in 0..n {
            for j in 0..g {
                let mut v: f64 = (0..rank)
                    .map(|r| scale[r] * u[i * rank + r] * w[r * g + j])
                    .sum();
                v += 0.3 * f64::from(rng.normal());
                // Sparsify: a third of the entries are structural zeros.
                if rng.below(3) == 0 {
                    v = 0.0;
                }
                if v != 0.0 {
                    m.indices.push(j as u32);
                    m.data.push(v as f32);
                    dense[i * g + j] = f64::from(v as f32);
                }
            }
            m.indptr.push(m.data.len() as u64);
        }
        (m, dense)
    }

    #[test]
    fn projecting_the_input_gives_its_scores() {
        // Rank-4 data: the randomized SVD is exact, so Xc·V equals the stored scores.
        let (n, g) = (80, 30);
        let (m, dense) = low_rank(n, g, 7);
        let mean: Vec<f64> = (0..g)
            .map(|j| (0..n).map(|i| dense[i * g + j]).sum::<f64>() / n as f64)
            .collect();
        let options = PcaOptions {
            n_components: 4,
            ..Default::default()
        };
        let mut p = randomized_pca(&m, &mean, &options, &Progress::new()).unwrap();
        p.genes = (0..g).collect();
        let projected = p.project(&m);
        let scale = p.scores.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (x, s) in projected.iter().zip(&p.scores) {
            assert!((x - s).abs() < 1e-4 * scale, "{x} vs {s}");
        }
    }

    #[test]
    fn randomized_pca_matches_an_exact_dense_svd() {
        let (n, g) = (120, 40);
        let (m, dense) = low_rank(n, g, 3);
        let mean: Vec<f64> = (0..g)
            .map(|j| (0..n).map(|i| dense[i * g + j]).sum::<f64>() / n as f64)
            .collect();
        let centred = Mat::from_fn(n, g, |i, j| dense[i * g + j] - mean[j]);
        let exact = centred.thin_svd().unwrap();
        let options = PcaOptions {
            n_components: 4,
            ..Default::default()
        };
        let p = randomized_pca(&m, &mean, &options, &Progress::new()).unwrap();
        assert_eq!(p.n_components, 4);
        let s = exact.S().column_vector();
        for c in 0..4 {
            let want = s[c] * s[c] / (n as f64 - 1.0);
            assert!(
                (p.variance[c] - want).abs() < 1e-6 * want,
                "component {c}: variance {} vs exact {want}",
                p.variance[c]
            );
            // Same direction up to sign: |cos| of the loadings and of the scores ≈ 1.
            let v = exact.V();
            let cos_load: f64 = (0..g)
                .map(|j| f64::from(p.loadings[j * 4 + c]) * v[(j, c)])
                .sum();
            assert!(
                (cos_load.abs() - 1.0).abs() < 1e-5,
                "loadings {c}: {cos_load}"
            );
            let u = exact.U();
            let norm: f64 = (0..n)
                .map(|i| f64::from(p.scores[i * 4 + c]).powi(2))
                .sum::<f64>()
                .sqrt();
            let cos_score: f64 = (0..n)
                .map(|i| f64::from(p.scores[i * 4 + c]) * u[(i, c)])
                .sum::<f64>()
                / norm;
            assert!(
                (cos_score.abs() - 1.0).abs() < 1e-5,
                "scores {c}: {cos_score}"
            );
            assert!((norm - s[c]).abs() < 1e-4 * s[c], "score norm is σ");
        }
    }

    #[test]
    fn full_pipeline_keeps_the_top_genes_and_explains_variance() {
        let (n, g) = (200, 60);
        let (m, dense) = low_rank(n, g, 5);
        // Scaled data (negative values): plain variance picks the genes.
        let options = PcaOptions {
            n_components: 29,
            n_top_genes: 30,
            ..Default::default()
        };
        let p = pca(&m, Some(MatrixKind::Scaled), &options, &Progress::new()).unwrap();
        assert_eq!(p.genes.len(), 30);
        assert_eq!(p.n_components, 29);
        assert_eq!(p.scores.len(), n * 29);
        let var = |j: usize| {
            let mean = (0..n).map(|i| dense[i * g + j]).sum::<f64>() / n as f64;
            (0..n)
                .map(|i| (dense[i * g + j] - mean).powi(2))
                .sum::<f64>()
                / (n - 1) as f64
        };
        let kept_min = p
            .genes
            .iter()
            .map(|&j| var(j))
            .fold(f64::INFINITY, f64::min);
        let dropped_max = (0..g)
            .filter(|j| !p.genes.contains(j))
            .map(var)
            .fold(0.0, f64::max);
        assert!(kept_min >= dropped_max, "{kept_min} < {dropped_max}");
        // 29 of the 30 directions: what is left unexplained is the last singular value's share.
        let means: Vec<f64> = p
            .genes
            .iter()
            .map(|&j| (0..n).map(|i| dense[i * g + j]).sum::<f64>() / n as f64)
            .collect();
        let sub = Mat::from_fn(n, 30, |i, c| dense[i * g + p.genes[c]] - means[c]);
        let s = sub.thin_svd().unwrap().S().column_vector().to_owned();
        let total: f64 = (0..30).map(|c| s[c] * s[c]).sum();
        let explained: f64 = p.variance_ratio.iter().sum();
        let want = 1.0 - s[29] * s[29] / total;
        assert!((explained - want).abs() < 1e-6, "{explained} vs {want}");
        assert!(p.variance.windows(2).all(|w| w[0] >= w[1] * (1.0 - 1e-9)));
    }

    #[test]
    fn seurat_dispersion_normalises_within_bins() {
        // Two genes per bin at the ends: equal means give z-scores of ±1/√2.
        let mean = [1.0, 1.0, 100.0, 100.0];
        let var = [1.0, 4.0, 100.0, 400.0];
        let z = seurat_dispersions(&mean, &var);
        let half = std::f64::consts::FRAC_1_SQRT_2;
        for (got, want) in z.iter().zip([-half, half, -half, half]) {
            assert!((got - want).abs() < 1e-12, "{z:?}");
        }
        // A gene with zero dispersion has no score.
        assert!(seurat_dispersions(&[1.0, 2.0], &[0.0, 1.0])[0].is_nan());
    }

    #[test]
    fn degenerate_input_is_an_error_not_a_panic() {
        let empty = CsrMatrix {
            n_rows: 10,
            n_cols: 5,
            indptr: vec![0; 11],
            ..Default::default()
        };
        let err = pca(&empty, None, &PcaOptions::default(), &Progress::new()).unwrap_err();
        assert!(err.to_string().contains("stored values"), "{err}");
        // Every cell identical: no gene varies.
        let mut same = CsrMatrix {
            n_rows: 4,
            n_cols: 3,
            indptr: vec![0],
            ..Default::default()
        };
        for _ in 0..4 {
            same.indices.extend([0, 2]);
            same.data.extend([1.0, 2.0]);
            same.indptr.push(same.data.len() as u64);
        }
        let err = pca(&same, None, &PcaOptions::default(), &Progress::new()).unwrap_err();
        assert!(err.to_string().contains("vary"), "{err}");
        let mut nan = same.clone();
        nan.data[0] = f32::NAN;
        assert!(pca(&nan, None, &PcaOptions::default(), &Progress::new()).is_err());
    }

    #[test]
    fn pca_stops_when_cancelled() {
        let (m, _) = low_rank(50, 20, 1);
        let p = Progress::new();
        p.cancel();
        let err = pca(&m, Some(MatrixKind::Scaled), &PcaOptions::default(), &p).unwrap_err();
        assert!(err.is_cancelled());
    }
}

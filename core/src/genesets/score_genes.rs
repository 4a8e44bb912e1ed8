//! scanpy's `tl.score_genes` (Seurat's module score), exactly as scanpy 1.11.5 computes it with
//! its defaults (`ctrl_as_ref=True`, `ctrl_size=50`, `n_bins=25`, `random_state=0`), and the
//! scanpy 1.9.8 variant that the C2S-Scale paper used.
//!
//! ```text
//! avg[g]  = mean of gene g over cells            (see MeanMode: scanpy's float arithmetic)
//! cut[g]  = rank_min(avg)[g] // round_half_even(#genes / (n_bins − 1))
//! for each distinct cut c of the set's genes, ascending:
//!     members = genes with cut c, in column order
//!     1.11.5: if ctrl_size < |members|: members = members[permutation(|members|)[..ctrl_size]]
//!     1.9.8:  shuffle(members) always (consuming the RNG even for small bins); take ≤ ctrl_size
//!     control ∪= members \ set
//! score[cell] = mean over set genes − mean over control genes
//! ```
//!
//! The RNG is numpy's legacy `RandomState` reseeded with `random_state` for every set, so each
//! set's control genes are those scanpy picks for it alone. The two versions agree while every
//! bin holding a set gene has more than `ctrl_size` genes.

use crate::error::{Error, Result};
use crate::matrix::CsrMatrix;
use crate::rng::NumpyRandomState;

/// Which scanpy release to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanpyVersion {
    /// scanpy 1.11.5: bins with at most `ctrl_size` genes are taken whole without drawing.
    V1_11_5,
    /// scanpy 1.9.8 (the C2S-Scale paper's): every bin is shuffled, consuming random draws.
    V1_9_8,
}

impl std::fmt::Display for ScanpyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScanpyVersion::V1_11_5 => "scanpy 1.11.5",
            ScanpyVersion::V1_9_8 => "scanpy 1.9.8",
        })
    }
}

/// How scanpy averages each gene over cells, which decides ties between genes' averages and so
/// the bins. It follows the matrix's storage in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeanMode {
    /// A sparse matrix (CSR/CSC): an `f64` sum over cells in row order, divided by the count.
    Sparse,
    /// A dense `float32` matrix (`np.nanmean`): an `f32` sum, row by row, divided in `f32`.
    DenseF32,
}

/// Options of `score_genes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreGenesOptions {
    /// Control genes drawn per expression bin.
    pub ctrl_size: usize,
    /// Number of expression bins.
    pub n_bins: usize,
    /// Seed of numpy's legacy RNG (`None`: unseeded in scanpy, not reproducible, so refused).
    pub random_state: u32,
    /// The scanpy release to reproduce.
    pub version: ScanpyVersion,
}

impl Default for ScoreGenesOptions {
    /// scanpy's defaults: 50 control genes per bin, 25 bins, seed 0, version 1.11.5.
    fn default() -> Self {
        Self {
            ctrl_size: 50,
            n_bins: 25,
            random_state: 0,
            version: ScanpyVersion::V1_11_5,
        }
    }
}

/// One set's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneScore {
    /// Score of each cell.
    pub scores: Vec<f64>,
    /// Control gene columns, ordered by gene name as scanpy's index union leaves them.
    pub control: Vec<usize>,
}

/// Gene bins of one matrix, shared by every set scored on it.
#[derive(Debug, Clone)]
pub struct ScoreGenes {
    /// Bin of each gene.
    cut: Vec<u64>,
    options: ScoreGenesOptions,
}

impl ScoreGenes {
    /// Averages each gene of `matrix` (cells × genes) and bins the averages.
    pub fn new(matrix: &CsrMatrix, mode: MeanMode, options: ScoreGenesOptions) -> Result<Self> {
        if options.n_bins < 2 || options.ctrl_size == 0 {
            return Err(Error::InvalidArgument(format!(
                "score_genes needs at least 2 bins and 1 control gene per bin (got {} bins, {} control genes)",
                options.n_bins, options.ctrl_size
            )));
        }
        if matrix.n_rows == 0 {
            return Err(Error::InvalidData(
                "the matrix has no cells to score".into(),
            ));
        }
        if let Some(p) = crate::matrix::first_index_where(&matrix.data, |v| !v.is_finite()) {
            let row = matrix.indptr.partition_point(|&s| s as usize <= p) - 1;
            return Err(Error::InvalidData(format!(
                "cell {row} has a non-finite value ({}); score_genes needs finite expression values",
                matrix.data[p]
            )));
        }
        let avg = gene_means(matrix, mode);
        let n_genes = avg.len();
        let n_items = (n_genes as f64 / (options.n_bins - 1) as f64).round_ties_even() as u64;
        if n_items == 0 {
            return Err(Error::InvalidData(format!(
                "{n_genes} genes are too few for {} expression bins; score_genes needs at least about half as many genes as bins",
                options.n_bins
            )));
        }
        // pandas rank(method='min'): 1 + the number of genes with a smaller average.
        let mut order: Vec<usize> = (0..n_genes).collect();
        order.sort_by(|&a, &b| avg[a].total_cmp(&avg[b]));
        let mut cut = vec![0u64; n_genes];
        let mut start = 0;
        for (i, &g) in order.iter().enumerate() {
            if avg[g] != avg[order[start]] {
                start = i;
            }
            cut[g] = (start as u64 + 1) / n_items;
        }
        Ok(Self { cut, options })
    }

    /// The control genes scanpy draws for a set with gene columns `set` (`names`: every
    /// column's gene name). An empty control is an error, as in scanpy.
    pub fn control_genes(&self, set: &[usize], names: &[String]) -> Result<Vec<usize>> {
        if set.is_empty() {
            return Err(Error::InvalidArgument(
                "the gene set has no genes in the data to score".into(),
            ));
        }
        let mut rng = NumpyRandomState::new(self.options.random_state);
        let mut in_set = vec![false; self.cut.len()];
        set.iter().for_each(|&g| in_set[g] = true);
        let mut cuts: Vec<u64> = set.iter().map(|&g| self.cut[g]).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut control = Vec::new();
        for c in cuts {
            let mut members: Vec<usize> =
                (0..self.cut.len()).filter(|&g| self.cut[g] == c).collect();
            let size = self.options.ctrl_size;
            match self.options.version {
                ScanpyVersion::V1_11_5 => {
                    if size < members.len() {
                        let mut perm: Vec<usize> = (0..members.len()).collect();
                        rng.shuffle(&mut perm);
                        members = perm[..size].iter().map(|&p| members[p]).collect();
                    }
                }
                ScanpyVersion::V1_9_8 => {
                    rng.shuffle(&mut members);
                    members.truncate(size);
                }
            }
            control.extend(members.into_iter().filter(|&g| !in_set[g]));
        }
        control.sort_by(|&a, &b| names[a].cmp(&names[b]));
        control.dedup();
        if control.is_empty() {
            return Err(Error::InvalidData(
                "score_genes found no control genes in any expression bin (the set covers every gene of its bins); use a larger gene universe".into(),
            ));
        }
        Ok(control)
    }

    /// Scores every cell of `matrix` for the set with gene columns `set`.
    pub fn score(&self, matrix: &CsrMatrix, set: &[usize], names: &[String]) -> Result<GeneScore> {
        let control = self.control_genes(set, names)?;
        let mut tag = vec![0u8; matrix.n_cols];
        set.iter().for_each(|&g| tag[g] = 1);
        control.iter().for_each(|&g| tag[g] = 2);
        let (n_set, n_control) = (set.len() as f64, control.len() as f64);
        use rayon::prelude::*;
        let scores = (0..matrix.n_rows)
            .into_par_iter()
            .map(|i| {
                let (cols, vals) = matrix.row(i);
                let (mut a, mut b) = (0.0f64, 0.0f64);
                for (&c, &v) in cols.iter().zip(vals) {
                    match tag[c as usize] {
                        1 => a += f64::from(v),
                        2 => b += f64::from(v),
                        _ => {}
                    }
                }
                a / n_set - b / n_control
            })
            .collect();
        Ok(GeneScore { scores, control })
    }
}

/// Each gene's mean over cells, with scanpy's arithmetic for the storage.
fn gene_means(matrix: &CsrMatrix, mode: MeanMode) -> Vec<f64> {
    let n = matrix.n_rows as f64;
    match mode {
        MeanMode::Sparse => {
            let mut sum = vec![0.0f64; matrix.n_cols];
            for i in 0..matrix.n_rows {
                let (cols, vals) = matrix.row(i);
                for (&c, &v) in cols.iter().zip(vals) {
                    sum[c as usize] += f64::from(v);
                }
            }
            sum.into_iter().map(|s| s / n).collect()
        }
        MeanMode::DenseF32 => {
            let mut sum = vec![0.0f32; matrix.n_cols];
            for i in 0..matrix.n_rows {
                let (cols, vals) = matrix.row(i);
                for (&c, &v) in cols.iter().zip(vals) {
                    sum[c as usize] += v;
                }
            }
            sum.into_iter()
                .map(|s| f64::from((f64::from(s) / n) as f32))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[Vec<f32>]) -> CsrMatrix {
        let mut m = CsrMatrix {
            n_rows: rows.len(),
            n_cols: rows[0].len(),
            indptr: vec![0],
            ..Default::default()
        };
        for r in rows {
            for (j, &v) in r.iter().enumerate().filter(|e| *e.1 != 0.0) {
                m.indices.push(j as u32);
                m.data.push(v);
            }
            m.indptr.push(m.data.len() as u64);
        }
        m
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("g{i:03}")).collect()
    }

    #[test]
    fn numpy_permutation_vector_drives_the_draw() {
        // notes §0: seed(0) then permutation(1000)[:10].
        let mut rng = NumpyRandomState::new(0);
        let mut perm: Vec<usize> = (0..1000).collect();
        rng.shuffle(&mut perm);
        assert_eq!(
            perm[..10],
            [993, 859, 298, 553, 672, 971, 27, 231, 306, 706]
        );
    }

    #[test]
    fn bins_follow_rank_min_and_small_bins_are_taken_whole() {
        // 48 genes, 3 cells; gene g has mean g/2 (ties in pairs), so with 25 bins n_items = 2.
        let rows: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..48).map(|g| (g / 2) as f32).collect())
            .collect();
        let m = matrix(&rows);
        let opts = ScoreGenesOptions {
            ctrl_size: 2,
            ..Default::default()
        };
        let sg = ScoreGenes::new(&m, MeanMode::Sparse, opts).unwrap();
        // rank_min of gene g = 2·(g/2) + 1, so cut = (2·(g/2)+1) // 2 = g/2.
        assert!((0..48).all(|g| sg.cut[g] == (g / 2) as u64));
        // Bins of 2 genes with ctrl_size 2: taken whole (1.11.5 draws nothing; 1.9.8 shuffles
        // and takes both), less the set's own genes.
        let set = [10usize, 30];
        assert_eq!(sg.control_genes(&set, &names(48)).unwrap(), vec![11, 31]);
        let score = sg.score(&m, &set, &names(48)).unwrap();
        assert_eq!(score.scores, vec![0.0; 3]);
        let old = ScoreGenesOptions {
            version: ScanpyVersion::V1_9_8,
            ..opts
        };
        let v198 = ScoreGenes::new(&m, MeanMode::DenseF32, old).unwrap();
        assert_eq!(v198.control_genes(&set, &names(48)).unwrap(), vec![11, 31]);
        // ctrl_size 1: one gene drawn per bin, from that bin only.
        let one = ScoreGenes::new(
            &m,
            MeanMode::Sparse,
            ScoreGenesOptions {
                ctrl_size: 1,
                ..opts
            },
        )
        .unwrap();
        let drawn = one.control_genes(&set, &names(48)).unwrap_or_default();
        assert!(drawn.iter().all(|g| [11, 31].contains(g)), "{drawn:?}");
    }

    #[test]
    fn dense_f32_means_keep_float32_rounding() {
        let rows = vec![vec![0.1f32, 1.0], vec![0.2, 1.0], vec![0.3, 1.0]];
        let m = matrix(&rows);
        let dense = gene_means(&m, MeanMode::DenseF32);
        let sparse = gene_means(&m, MeanMode::Sparse);
        let f32_sum = 0.1f32 + 0.2f32 + 0.3f32;
        assert_eq!(dense[0], f64::from((f64::from(f32_sum) / 3.0) as f32));
        assert_eq!(
            sparse[0],
            (f64::from(0.1f32) + f64::from(0.2f32) + f64::from(0.3f32)) / 3.0
        );
    }

    #[test]
    fn bad_input_is_reported() {
        let m = matrix(&[vec![1.0, f32::NAN]]);
        let err = ScoreGenes::new(&m, MeanMode::Sparse, ScoreGenesOptions::default()).unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
        let tiny = matrix(&[vec![1.0, 2.0, 3.0, 4.0]]);
        let err =
            ScoreGenes::new(&tiny, MeanMode::Sparse, ScoreGenesOptions::default()).unwrap_err();
        assert!(err.to_string().contains("too few"), "{err}");
        // A set covering its whole bin leaves no control gene.
        let all = matrix(&[vec![1.0; 24]]);
        let sg = ScoreGenes::new(&all, MeanMode::Sparse, ScoreGenesOptions::default()).unwrap();
        let err = sg
            .control_genes(&(0..24).collect::<Vec<_>>(), &names(24))
            .unwrap_err();
        assert!(err.to_string().contains("no control genes"), "{err}");
    }
}

//! Cell sentences: the names of a cell's expressed genes, ordered by descending expression.
//!
//! Two tie-break rules for genes with equal values:
//! - [`TieBreak::Reference`] reproduces the `cell2sentence` 1.2.0 package exactly: one numpy
//!   MT19937 stream seeded with 42 shuffles every row's stored entries in turn, then a stable
//!   descending sort. The order of a cell therefore depends on every cell before it.
//! - [`TieBreak::Seeded`] (the default) orders ties by a hash of (seed, cell id, gene name), so a
//!   cell's sentence never changes when the dataset is subset, reordered or converted in chunks.
//!
//! Unlike the package, zero values (explicitly stored zeros) never enter a sentence, and genes
//! whose names coincide after upper-casing keep their own names (the package shifts every later
//! column onto the wrong gene).

use crate::error::{Error, Result};
use crate::matrix::CsrMatrix;
use crate::progress::Progress;
use crate::rng::NumpyRandomState;
use rayon::prelude::*;
use std::cmp::Ordering;

/// How to order genes whose expression values are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// Exactly as the `cell2sentence` 1.2.0 package (seed 42, depends on preceding cells).
    Reference,
    /// A per-cell order from a hash of (seed, cell id, gene name), independent of other cells.
    Seeded(u64),
}

impl Default for TieBreak {
    fn default() -> Self {
        TieBreak::Seeded(0)
    }
}

/// Options for building cell sentences.
#[derive(Debug, Clone, Default)]
pub struct SentenceOptions {
    /// Keep only the first `k` genes of each sentence.
    pub top_k: Option<usize>,
    /// Tie-break rule.
    pub ties: TieBreak,
}

/// The package seeds numpy's global generator with this value on every conversion.
const REFERENCE_SEED: u32 = 42;
/// Rows whose tie keys are drawn sequentially before they are sorted in parallel.
const ROW_CHUNK: usize = 8192;

/// Gene names as they appear in sentences: upper-cased, as the C2S models were trained.
pub fn sentence_gene_names(genes: &[String]) -> Vec<String> {
    genes.iter().map(|g| g.to_uppercase()).collect()
}

/// Names that occur more than once after upper-casing (each listed once, in first-seen order).
pub fn duplicate_gene_names(genes: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashMap::new();
    let mut dups = Vec::new();
    for g in sentence_gene_names(genes) {
        let count = seen.entry(g.clone()).or_insert(0usize);
        *count += 1;
        if *count == 2 {
            dups.push(g);
        }
    }
    dups
}

/// 64-bit mixing (splitmix64 finaliser).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Stable (platform-independent) hash of a string: FNV-1a then mixed.
fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Orders one row's stored entries: positive values only, descending, ties by ascending key.
/// Returns positions into the row's slices.
fn order_row(vals: &[f32], keys: &[u64], top_k: Option<usize>) -> Vec<u32> {
    let mut order: Vec<u32> = (0..vals.len() as u32)
        .filter(|&p| vals[p as usize] > 0.0)
        .collect();
    let cmp = |a: &u32, b: &u32| -> Ordering {
        let (a, b) = (*a as usize, *b as usize);
        vals[b]
            .partial_cmp(&vals[a])
            .unwrap_or(Ordering::Equal)
            .then(keys[a].cmp(&keys[b]))
    };
    match top_k {
        Some(k) if k < order.len() => {
            if k > 0 {
                order.select_nth_unstable_by(k - 1, cmp);
            }
            order.truncate(k);
            order.sort_unstable_by(cmp);
        }
        _ => order.sort_unstable_by(cmp),
    }
    order
}

/// Ranks every cell's genes and hands each ordered row (column indices) to `emit`, in parallel.
///
/// `emit(row, columns)` may be called from several threads, in any row order.
pub fn for_each_ranked_row<F>(
    matrix: &CsrMatrix,
    cell_ids: &[String],
    genes: &[String],
    options: &SentenceOptions,
    progress: &Progress,
    emit: F,
) -> Result<()>
where
    F: Fn(usize, Vec<u32>) + Sync,
{
    if cell_ids.len() != matrix.n_rows || genes.len() != matrix.n_cols {
        return Err(Error::InvalidArgument(format!(
            "matrix is {}×{} but {} cell ids and {} gene names were given",
            matrix.n_rows,
            matrix.n_cols,
            cell_ids.len(),
            genes.len()
        )));
    }
    if let Some(v) = matrix.data.iter().find(|v| **v < 0.0 || !v.is_finite()) {
        return Err(Error::InvalidData(format!(
            "the matrix holds a negative or non-finite value ({v}): it looks scaled (z-scored); cell sentences need non-negative expression — choose raw counts or log-normalized data (e.g. --matrix raw or a counts layer)"
        )));
    }
    let gene_hash: Vec<u64> = sentence_gene_names(genes)
        .iter()
        .map(|g| hash_str(g))
        .collect();
    let mut rng = NumpyRandomState::new(REFERENCE_SEED);
    let mut start = 0;
    while start < matrix.n_rows {
        progress.check()?;
        let end = (start + ROW_CHUNK).min(matrix.n_rows);
        // Reference mode: draw this chunk's shuffles sequentially (the stream is shared by all rows).
        let reference_keys: Option<Vec<Vec<u64>>> =
            (options.ties == TieBreak::Reference).then(|| {
                (start..end)
                    .map(|i| {
                        let m = matrix.row(i).0.len();
                        let mut perm: Vec<u32> = (0..m as u32).collect();
                        rng.shuffle(&mut perm);
                        let mut keys = vec![0u64; m];
                        for (t, &p) in perm.iter().enumerate() {
                            keys[p as usize] = t as u64;
                        }
                        keys
                    })
                    .collect()
            });
        (start..end).into_par_iter().for_each(|i| {
            let (cols, vals) = matrix.row(i);
            let keys: Vec<u64> = match (&reference_keys, options.ties) {
                (Some(k), _) => k[i - start].clone(),
                (None, TieBreak::Seeded(seed)) => {
                    let cell = mix(hash_str(&cell_ids[i]) ^ mix(seed));
                    cols.iter()
                        .map(|&c| mix(cell ^ gene_hash[c as usize]))
                        .collect()
                }
                (None, TieBreak::Reference) => unreachable!("reference keys are drawn above"),
            };
            let order = order_row(vals, &keys, options.top_k);
            emit(i, order.iter().map(|&p| cols[p as usize]).collect());
        });
        start = end;
        progress.set_fraction(start as f32 / matrix.n_rows as f32);
    }
    Ok(())
}

/// Builds the cell sentence of every cell (gene names upper-cased, separated by spaces).
pub fn cell_sentences(
    matrix: &CsrMatrix,
    cell_ids: &[String],
    genes: &[String],
    options: &SentenceOptions,
    progress: &Progress,
) -> Result<Vec<String>> {
    let names = sentence_gene_names(genes);
    let slots: Vec<std::sync::OnceLock<String>> = (0..matrix.n_rows)
        .map(|_| std::sync::OnceLock::new())
        .collect();
    for_each_ranked_row(matrix, cell_ids, genes, options, progress, |i, columns| {
        let mut s = String::with_capacity(columns.len() * 7);
        for (n, c) in columns.iter().enumerate() {
            if n > 0 {
                s.push(' ');
            }
            s.push_str(&names[*c as usize]);
        }
        let _ = slots[i].set(s);
    })?;
    Ok(slots
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_default())
        .collect())
}

/// The sentence of one cell with the seeded tie-break (e.g. for a hover tooltip).
pub fn cell_sentence(
    matrix: &CsrMatrix,
    row: usize,
    cell_id: &str,
    genes: &[String],
    seed: u64,
    top_k: Option<usize>,
) -> String {
    let (cols, vals) = matrix.row(row);
    let cell = mix(hash_str(cell_id) ^ mix(seed));
    let keys: Vec<u64> = cols
        .iter()
        .map(|&c| mix(cell ^ hash_str(&genes[c as usize].to_uppercase())))
        .collect();
    order_row(vals, &keys, top_k)
        .iter()
        .map(|&p| genes[cols[p as usize] as usize].to_uppercase())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(rows: &[&[(u32, f32)]], n_cols: usize) -> CsrMatrix {
        let mut m = CsrMatrix {
            n_rows: rows.len(),
            n_cols,
            indptr: vec![0],
            ..Default::default()
        };
        for r in rows {
            for &(c, v) in *r {
                m.indices.push(c);
                m.data.push(v);
            }
            m.indptr.push(m.data.len() as u64);
        }
        m
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("g{}", i + 1)).collect()
    }

    #[test]
    fn orders_by_descending_value_and_skips_zeros() {
        let m = csr(&[&[(0, 1.0), (1, 0.0), (2, 5.0), (3, 2.0)]], 4);
        let ids = vec!["c".to_string()];
        let s = cell_sentences(
            &m,
            &ids,
            &names(4),
            &SentenceOptions::default(),
            &Progress::new(),
        )
        .unwrap();
        assert_eq!(s, ["G3 G4 G1"]);
        let top = SentenceOptions {
            top_k: Some(2),
            ..Default::default()
        };
        assert_eq!(
            cell_sentences(&m, &ids, &names(4), &top, &Progress::new()).unwrap(),
            ["G3 G4"]
        );
    }

    #[test]
    fn seeded_ties_do_not_depend_on_other_cells() {
        let row: Vec<(u32, f32)> = (0..20).map(|c| (c, 1.0)).collect();
        let m2 = csr(&[&row, &row], 20);
        let m1 = csr(&[&row], 20);
        let opts = SentenceOptions::default();
        let both = cell_sentences(
            &m2,
            &["a".into(), "b".into()],
            &names(20),
            &opts,
            &Progress::new(),
        )
        .unwrap();
        let only_b =
            cell_sentences(&m1, &["b".into()], &names(20), &opts, &Progress::new()).unwrap();
        assert_eq!(both[1], only_b[0]);
        assert_ne!(both[0], both[1], "different cells get different tie orders");
        assert_eq!(cell_sentence(&m1, 0, "b", &names(20), 0, None), only_b[0]);
    }

    #[test]
    fn scaled_values_are_refused() {
        let m = csr(&[&[(0, -1.0)]], 1);
        let err = cell_sentences(
            &m,
            &["a".into()],
            &names(1),
            &SentenceOptions::default(),
            &Progress::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("scaled"), "{err}");
    }

    #[test]
    fn duplicates_after_uppercasing_are_reported() {
        let genes: Vec<String> = ["Actb", "ACTB", "gapdh", "cd3e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(duplicate_gene_names(&genes), ["ACTB"]);
        let m = csr(&[&[(0, 1.0), (1, 2.0), (2, 3.0)]], 4);
        let s = cell_sentences(
            &m,
            &["c".into()],
            &genes,
            &SentenceOptions::default(),
            &Progress::new(),
        )
        .unwrap();
        assert_eq!(s, ["GAPDH ACTB ACTB"]);
    }
}

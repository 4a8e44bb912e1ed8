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
use crate::rng::{NumpyRandomState, mix64};
use rayon::prelude::*;

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

/// Stable (platform-independent) hash of a string: FNV-1a then mixed.
fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h)
}

/// Sort key of a positive value: smaller for larger values (descending order), in the high
/// 32 bits; the low 32 bits hold a tie-break.
fn descending_key(value: f32, tie: u32) -> u64 {
    (u64::from(!value.to_bits()) << 32) | u64::from(tie)
}

/// Sorts keys ascending, keeping only the first `top_k` when given.
fn sort_keys<T: Ord + Copy>(keys: &mut Vec<T>, top_k: Option<usize>) {
    match top_k {
        Some(k) if k < keys.len() => {
            if k > 0 {
                keys.select_nth_unstable(k - 1);
            }
            keys.truncate(k);
            keys.sort_unstable();
        }
        _ => keys.sort_unstable(),
    }
}

/// Ranks one row with the reference rule: `perm[t]` is the stored entry at shuffled position `t`.
fn rank_reference(cols: &[u32], vals: &[f32], perm: &[u32], top_k: Option<usize>) -> Vec<u32> {
    let mut keys: Vec<u64> = perm
        .iter()
        .enumerate()
        .filter(|(_, p)| vals[**p as usize] > 0.0)
        .map(|(t, &p)| descending_key(vals[p as usize], t as u32))
        .collect();
    sort_keys(&mut keys, top_k);
    keys.iter()
        .map(|k| cols[perm[(*k & 0xffff_ffff) as usize] as usize])
        .collect()
}

/// Ranks one row with the seeded rule: ties by a hash of (cell, gene), then by column.
fn rank_seeded(
    cols: &[u32],
    vals: &[f32],
    cell_hash: u64,
    gene_hash: &[u64],
    top_k: Option<usize>,
) -> Vec<u32> {
    let mut keys: Vec<(u64, u32)> = cols
        .iter()
        .zip(vals)
        .filter(|(_, v)| **v > 0.0)
        .map(|(&c, &v)| {
            (
                descending_key(v, mix64(cell_hash ^ gene_hash[c as usize]) as u32),
                c,
            )
        })
        .collect();
    sort_keys(&mut keys, top_k);
    keys.into_iter().map(|(_, c)| c).collect()
}

fn validate(matrix: &CsrMatrix, cell_ids: &[String], genes: &[String]) -> Result<()> {
    if cell_ids.len() != matrix.n_rows || genes.len() != matrix.n_cols {
        return Err(Error::InvalidArgument(format!(
            "matrix is {}×{} but {} cell ids and {} gene names were given",
            matrix.n_rows,
            matrix.n_cols,
            cell_ids.len(),
            genes.len()
        )));
    }
    if let Some(v) = matrix
        .data
        .par_iter()
        .find_any(|v| **v < 0.0 || !v.is_finite())
    {
        return Err(Error::InvalidData(format!(
            "the matrix holds a negative or non-finite value ({v}): it looks scaled (z-scored); cell sentences need non-negative expression — choose raw counts or log-normalized data (e.g. --matrix raw or a counts layer)"
        )));
    }
    Ok(())
}

/// Builds cell sentences chunk by chunk (in row order) and hands each chunk to `sink` with the
/// index of its first row, so callers can stream them out without holding them all.
pub fn for_each_sentence_chunk<F>(
    matrix: &CsrMatrix,
    cell_ids: &[String],
    genes: &[String],
    options: &SentenceOptions,
    progress: &Progress,
    sink: F,
) -> Result<()>
where
    F: FnMut(usize, Vec<String>) -> Result<()>,
{
    sentences_in_chunks(matrix, cell_ids, genes, options, progress, ROW_CHUNK, sink)
}

fn sentences_in_chunks<F>(
    matrix: &CsrMatrix,
    cell_ids: &[String],
    genes: &[String],
    options: &SentenceOptions,
    progress: &Progress,
    chunk_rows: usize,
    mut sink: F,
) -> Result<()>
where
    F: FnMut(usize, Vec<String>) -> Result<()>,
{
    validate(matrix, cell_ids, genes)?;
    let names = sentence_gene_names(genes);
    let gene_hash: Vec<u64> = names.iter().map(|g| hash_str(g)).collect();
    let mut rng = NumpyRandomState::new(REFERENCE_SEED);
    let reference = options.ties == TieBreak::Reference;
    // One numpy stream shuffles every row in turn, so shuffles are drawn sequentially, chunk by
    // chunk; the next chunk's draws overlap with ranking the current chunk on other threads.
    let draw = |rng: &mut NumpyRandomState, rows: std::ops::Range<usize>| -> Vec<u32> {
        let mut perms = Vec::new();
        if reference {
            perms.reserve((matrix.indptr[rows.end] - matrix.indptr[rows.start]) as usize);
            for i in rows {
                let from = perms.len();
                perms.extend(0..matrix.row(i).0.len() as u32);
                rng.shuffle(&mut perms[from..]);
            }
        }
        perms
    };
    let chunk_end = |start: usize| (start + chunk_rows.max(1)).min(matrix.n_rows);
    let mut perms = draw(&mut rng, 0..chunk_end(0));
    let mut start = 0;
    while start < matrix.n_rows {
        progress.check()?;
        let end = chunk_end(start);
        let base = matrix.indptr[start] as usize;
        let rank_chunk = || -> Vec<String> {
            (start..end)
                .into_par_iter()
                .map(|i| {
                    let (cols, vals) = matrix.row(i);
                    let ranked = match options.ties {
                        TieBreak::Reference => {
                            let from = matrix.indptr[i] as usize - base;
                            rank_reference(
                                cols,
                                vals,
                                &perms[from..from + cols.len()],
                                options.top_k,
                            )
                        }
                        TieBreak::Seeded(seed) => {
                            let cell = mix64(hash_str(&cell_ids[i]) ^ mix64(seed));
                            rank_seeded(cols, vals, cell, &gene_hash, options.top_k)
                        }
                    };
                    join_names(&ranked, &names)
                })
                .collect()
        };
        let (sentences, next) = rayon::join(rank_chunk, || draw(&mut rng, end..chunk_end(end)));
        sink(start, sentences)?;
        perms = next;
        start = end;
        progress.set_fraction(start as f32 / matrix.n_rows as f32);
    }
    Ok(())
}

fn join_names(columns: &[u32], names: &[String]) -> String {
    let len: usize = columns.iter().map(|&c| names[c as usize].len() + 1).sum();
    let mut s = String::with_capacity(len);
    for (n, &c) in columns.iter().enumerate() {
        if n > 0 {
            s.push(' ');
        }
        s.push_str(&names[c as usize]);
    }
    s
}

/// Builds the cell sentence of every cell (gene names upper-cased, separated by spaces).
pub fn cell_sentences(
    matrix: &CsrMatrix,
    cell_ids: &[String],
    genes: &[String],
    options: &SentenceOptions,
    progress: &Progress,
) -> Result<Vec<String>> {
    let mut all = Vec::with_capacity(matrix.n_rows);
    for_each_sentence_chunk(matrix, cell_ids, genes, options, progress, |_, chunk| {
        all.extend(chunk);
        Ok(())
    })?;
    Ok(all)
}

/// The sentence of one cell with the seeded tie-break (e.g. for a hover tooltip); identical to
/// that cell's sentence from [`cell_sentences`] with [`TieBreak::Seeded`]`(seed)`.
pub fn cell_sentence(
    matrix: &CsrMatrix,
    row: usize,
    cell_id: &str,
    genes: &[String],
    seed: u64,
    top_k: Option<usize>,
) -> String {
    let (cols, vals) = matrix.row(row);
    let names = sentence_gene_names(genes);
    let gene_hash: Vec<u64> = names.iter().map(|g| hash_str(g)).collect();
    let cell = mix64(hash_str(cell_id) ^ mix64(seed));
    join_names(&rank_seeded(cols, vals, cell, &gene_hash, top_k), &names)
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
    fn chunk_size_does_not_change_sentences() {
        let rows: Vec<Vec<(u32, f32)>> = (0..23u32)
            .map(|i| {
                (0..12u32)
                    .filter(|c| (c + i) % 3 != 0)
                    .map(|c| (c, ((c * i) % 4 + 1) as f32))
                    .collect()
            })
            .collect();
        let refs: Vec<&[(u32, f32)]> = rows.iter().map(Vec::as_slice).collect();
        let m = csr(&refs, 12);
        let ids: Vec<String> = (0..23).map(|i| format!("c{i}")).collect();
        for ties in [TieBreak::Reference, TieBreak::Seeded(3)] {
            let opts = SentenceOptions {
                ties,
                top_k: Some(5),
            };
            let mut by_size = Vec::new();
            for chunk in [1, 4, 7, 100] {
                let mut all = Vec::new();
                sentences_in_chunks(
                    &m,
                    &ids,
                    &names(12),
                    &opts,
                    &Progress::new(),
                    chunk,
                    |first, c| {
                        assert_eq!(first, all.len());
                        all.extend(c);
                        Ok(())
                    },
                )
                .unwrap();
                by_size.push(all);
            }
            assert!(by_size.windows(2).all(|w| w[0] == w[1]), "{ties:?}");
            assert!(by_size[0].iter().all(|s| s.split(' ').count() <= 5));
        }
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

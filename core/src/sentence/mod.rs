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

mod chunk;
mod names;
mod rank;

pub use chunk::{SentenceChunk, TextPart};

use crate::error::{Error, Result};
use crate::matrix::{CsrMatrix, first_index_where};
use crate::progress::Progress;
use crate::rng::{NumpyRandomState, mix64};
use names::NameSlots;
use rank::Ranker;
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
/// Rows written into one text buffer by one worker task.
const PART_ROWS: usize = 256;

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
    if let Some(p) = first_index_where(&matrix.data, |v| *v < 0.0 || !v.is_finite()) {
        let v = matrix.data[p];
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
    F: FnMut(usize, SentenceChunk) -> Result<()>,
{
    let sizes = ChunkSizes {
        rows: ROW_CHUNK,
        part_rows: PART_ROWS,
    };
    sentences_in_chunks(matrix, cell_ids, genes, options, progress, sizes, sink)
}

/// What every worker needs to write the sentences of any rows.
struct SentenceWriter<'a> {
    matrix: &'a CsrMatrix,
    cell_ids: &'a [String],
    names: NameSlots,
    gene_hash: Vec<u64>,
    options: &'a SentenceOptions,
}

impl SentenceWriter<'_> {
    /// Upper bound of the text length of `rows`' sentences.
    fn text_bound(&self, rows: std::ops::Range<usize>) -> usize {
        rows.map(|i| {
            let cols = self.matrix.row(i).0;
            let all: usize = cols.iter().map(|&c| self.names.spaced_len(c)).sum();
            match self.options.top_k {
                Some(k) => all.min(k.saturating_mul(self.names.longest())),
                None => all,
            }
        })
        .sum()
    }

    /// The sentences of `rows`; `draws` holds the reference shuffles' draws from row
    /// `draw_row` on, row `i`'s at `indptr[i] - indptr[draw_row]` (empty for the seeded rule).
    fn write_part(
        &self,
        rows: std::ops::Range<usize>,
        draws: &[u32],
        draw_row: usize,
        ranker: &mut Ranker,
    ) -> TextPart {
        let m = self.matrix;
        let mut text = vec![0u8; self.text_bound(rows.clone()) + self.names.slack()];
        let mut end = 0;
        let mut ends = Vec::with_capacity(rows.len());
        let base = m.indptr[draw_row] as usize;
        for i in rows {
            let (cols, vals) = m.row(i);
            let ranked = match self.options.ties {
                TieBreak::Reference => {
                    let from = m.indptr[i] as usize - base;
                    let row_draws = &draws[from..from + cols.len().saturating_sub(1)];
                    ranker.reference(cols, vals, row_draws, self.options.top_k)
                }
                TieBreak::Seeded(seed) => {
                    let cell = mix64(hash_str(&self.cell_ids[i]) ^ mix64(seed));
                    ranker.seeded(cols, vals, cell, &self.gene_hash, self.options.top_k)
                }
            };
            end = self.names.write(&mut text, end, ranked);
            ends.push(end);
        }
        text.truncate(end);
        TextPart { text, ends }
    }
}

/// Rows per chunk (drawn, ranked and handed on together) and per part (one worker task).
#[derive(Debug, Clone, Copy)]
struct ChunkSizes {
    rows: usize,
    part_rows: usize,
}

fn sentences_in_chunks<F>(
    matrix: &CsrMatrix,
    cell_ids: &[String],
    genes: &[String],
    options: &SentenceOptions,
    progress: &Progress,
    sizes: ChunkSizes,
    mut sink: F,
) -> Result<()>
where
    F: FnMut(usize, SentenceChunk) -> Result<()>,
{
    validate(matrix, cell_ids, genes)?;
    let names = sentence_gene_names(genes);
    let writer = SentenceWriter {
        matrix,
        cell_ids,
        gene_hash: names.iter().map(|g| hash_str(g)).collect(),
        names: NameSlots::new(&names),
        options,
    };
    let mut rng = NumpyRandomState::new(REFERENCE_SEED);
    let reference = options.ties == TieBreak::Reference;
    // One numpy stream shuffles every row in turn, so its draws are made sequentially, chunk by
    // chunk; the next chunk's draws overlap with ranking the current chunk on other threads.
    // A row of `n` entries takes `n - 1` draws; one filler after them puts every row's draws
    // at its offset in the matrix.
    let draw = |rng: &mut NumpyRandomState, rows: std::ops::Range<usize>| -> Vec<u32> {
        let mut draws = Vec::new();
        if reference {
            draws.reserve((matrix.indptr[rows.end] - matrix.indptr[rows.start]) as usize);
            for i in rows {
                let n = matrix.row(i).0.len();
                rng.shuffle_draws(n, &mut draws);
                if n > 0 {
                    draws.push(0);
                }
            }
        }
        draws
    };
    let chunk_end = |start: usize| (start + sizes.rows.max(1)).min(matrix.n_rows);
    let part_rows = sizes.part_rows.max(1);
    let mut draws = draw(&mut rng, 0..chunk_end(0));
    let mut start = 0;
    while start < matrix.n_rows {
        progress.check()?;
        let end = chunk_end(start);
        let rank_chunk = || -> SentenceChunk {
            let parts = (start..end)
                .step_by(part_rows)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map_init(Ranker::default, |ranker, from| {
                    let to = (from + part_rows).min(end);
                    writer.write_part(from..to, &draws, start, ranker)
                })
                .collect();
            SentenceChunk { parts }
        };
        let (sentences, next) = rayon::join(rank_chunk, || draw(&mut rng, end..chunk_end(end)));
        sink(start, sentences)?;
        draws = next;
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
    let mut all = Vec::with_capacity(matrix.n_rows);
    for_each_sentence_chunk(matrix, cell_ids, genes, options, progress, |_, chunk| {
        all.extend(chunk.iter().map(String::from));
        Ok(())
    })?;
    Ok(all)
}

/// Sentences of single cells with the seeded tie-break, for many calls over the same genes
/// (a hover tooltip): the sentence spelling and hash of every gene are made once.
#[derive(Debug, Clone)]
pub struct CellSentencer {
    names: Vec<String>,
    gene_hash: Vec<u64>,
}

impl CellSentencer {
    /// A sentencer for a matrix whose columns are `genes`.
    pub fn new(genes: &[String]) -> Self {
        let names = sentence_gene_names(genes);
        Self {
            gene_hash: names.iter().map(|g| hash_str(g)).collect(),
            names,
        }
    }

    /// The sentence of `row` (with id `cell_id`), identical to that cell's sentence from
    /// [`cell_sentences`] with [`TieBreak::Seeded`]`(seed)`; `top_k` keeps the first `k` genes.
    pub fn sentence(
        &self,
        matrix: &CsrMatrix,
        row: usize,
        cell_id: &str,
        seed: u64,
        top_k: Option<usize>,
    ) -> String {
        let (cols, vals) = matrix.row(row);
        let cell = mix64(hash_str(cell_id) ^ mix64(seed));
        let mut ranker = Ranker::default();
        let ranked = ranker.seeded(cols, vals, cell, &self.gene_hash, top_k);
        let names: Vec<&str> = ranked
            .iter()
            .map(|&g| self.names[g as usize].as_str())
            .collect();
        names.join(" ")
    }
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
        let sentencer = CellSentencer::new(&names(20));
        assert_eq!(sentencer.sentence(&m1, 0, "b", 0, None), only_b[0]);
        assert_eq!(sentencer.sentence(&m2, 0, "a", 0, None), both[0]);
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
            for (rows, part_rows) in [(1, 1), (4, 3), (7, 2), (100, 5), (100, 256)] {
                let mut all = Vec::new();
                sentences_in_chunks(
                    &m,
                    &ids,
                    &names(12),
                    &opts,
                    &Progress::new(),
                    ChunkSizes { rows, part_rows },
                    |first, c| {
                        assert_eq!(first, all.len());
                        all.extend(c.iter().map(String::from));
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

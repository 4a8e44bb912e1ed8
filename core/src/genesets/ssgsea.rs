//! Single-sample GSEA exactly as gseapy 1.3.1 computes it with `sample_norm_method='rank'`.
//!
//! For each sample, genes are ranked (pandas `rank(method='average')`, 1-based) and scaled to
//! `V = 10000 · rank / n`; genes are ordered by `V` descending, ties with the higher original
//! column first (gseapy sorts stably ascending, then reverses). With `m = |V|^W` at each
//! position `i` of that order, a set with members at positions `i_1 < … < i_k` scores
//!
//! ```text
//! ES = Σ m(i_j)·(n − i_j) / Σ m(i_j)  −  (n(n+1)/2 − Σ (n − i_j)) / (n − k)
//! ```
//!
//! (the sum over all positions of the running hit-minus-miss sum; values are in the thousands).
//! NES divides every ES by `max ES − min ES` over all (sample, set) pairs of the same call, so it
//! depends on the whole batch: state the batch when reporting it.
//!
//! Each sample costs `O(nnz log nnz + G + K)` for `nnz` stored values, `G` genes in any set and
//! `K` set memberships: genes without a stored value tie at zero and their positions follow
//! from a count, and every set accumulates its members in position order (gseapy's summation
//! order) in one walk down the ranking, so nothing gene-length is touched per sample. Samples
//! run in parallel.

use super::gmt::SetMatch;
use crate::error::{Error, Result};
use crate::matrix::CsrMatrix;
use crate::progress::Progress;
use rayon::prelude::*;

/// Options of the ssGSEA call (gseapy's `weight`, `min_size`, `max_size`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsgseaOptions {
    /// Exponent `W` on the scaled ranks: 0 scores gene order only; gseapy's default is 0.25.
    pub weight: f64,
    /// Smallest number of a set's genes that must be in the data.
    pub min_size: usize,
    /// Largest number of a set's genes allowed in the data.
    pub max_size: usize,
}

impl Default for SsgseaOptions {
    /// gseapy 1.3.1's defaults: weight 0.25, sizes 15 to 500.
    fn default() -> Self {
        Self {
            weight: 0.25,
            min_size: 15,
            max_size: 500,
        }
    }
}

/// A set left out by the size filter, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSet {
    /// The set's name.
    pub name: String,
    /// Its genes present in the data.
    pub n_present: usize,
}

/// ssGSEA scores: ES for each (sample, set), and the batch's NES scale.
#[derive(Debug, Clone, PartialEq)]
pub struct SsgseaScores {
    /// Names of the scored sets (columns).
    pub sets: Vec<String>,
    /// Number of samples (rows).
    pub n_samples: usize,
    /// ES, row-major: `es[sample * sets.len() + set]`.
    pub es: Vec<f64>,
}

impl SsgseaScores {
    /// ES of `sample` for set number `set`.
    pub fn es(&self, sample: usize, set: usize) -> f64 {
        self.es[sample * self.sets.len() + set]
    }

    /// `max ES − min ES` over every (sample, set) of this call: gseapy's NES denominator.
    /// Zero (NES infinite or NaN) when the call has a single score.
    pub fn nes_scale(&self) -> f64 {
        let max = self.es.iter().fold(f64::MIN, |a, &b| a.max(b));
        let min = self.es.iter().fold(f64::MAX, |a, &b| a.min(b));
        max - min
    }

    /// NES of every score, in the layout of [`SsgseaScores::es`].
    pub fn nes(&self) -> Vec<f64> {
        let scale = self.nes_scale();
        self.es.iter().map(|e| e / scale).collect()
    }

    /// ES of set number `set` for every sample.
    pub fn es_column(&self, set: usize) -> Vec<f64> {
        (0..self.n_samples).map(|s| self.es(s, set)).collect()
    }
}

/// ssGSEA over fixed sets of one gene universe.
#[derive(Debug, Clone)]
pub struct Ssgsea {
    names: Vec<String>,
    /// Members of each set present in the data.
    sizes: Vec<usize>,
    /// Genes in at least one set, descending (the order zero-valued genes are ranked in).
    member_genes: Vec<u32>,
    /// `sets_of[set_offsets[g]..set_offsets[g + 1]]`: the sets gene `g` belongs to.
    set_offsets: Vec<u32>,
    sets_of: Vec<u32>,
    n_genes: usize,
    weight: f64,
}

impl Ssgsea {
    /// Prepares `sets` (matched to a universe of `n_genes` genes) with gseapy's size filter: a
    /// set is kept iff `min_size ≤ k ≤ max_size` and `k < n_genes` for its `k` genes present.
    /// Returns the scorer and the sets left out.
    pub fn new(
        sets: &[SetMatch],
        n_genes: usize,
        options: SsgseaOptions,
    ) -> Result<(Self, Vec<SkippedSet>)> {
        if !(options.weight.is_finite() && options.weight >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "ssGSEA weight must be a finite number ≥ 0 (gseapy uses 0, 0.25 or 1), not {}",
                options.weight
            )));
        }
        if options.min_size == 0 || options.min_size > options.max_size {
            return Err(Error::InvalidArgument(format!(
                "ssGSEA set sizes: need 1 ≤ min size ≤ max size, got {} and {}",
                options.min_size, options.max_size
            )));
        }
        let mut names = Vec::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        let mut skipped = Vec::new();
        for set in sets {
            let k = set.n_present();
            if (options.min_size..=options.max_size).contains(&k) && k < n_genes {
                let mut cols: Vec<u32> = set.columns.iter().map(|&c| c as u32).collect();
                cols.sort_unstable();
                cols.dedup();
                names.push(set.name.clone());
                members.push(cols);
            } else {
                skipped.push(SkippedSet {
                    name: set.name.clone(),
                    n_present: k,
                });
            }
        }
        // Invert set → genes into gene → sets.
        let mut counts = vec![0u32; n_genes + 1];
        for cols in &members {
            for &g in cols {
                counts[g as usize + 1] += 1;
            }
        }
        for g in 0..n_genes {
            counts[g + 1] += counts[g];
        }
        let set_offsets = counts.clone();
        let mut sets_of = vec![0u32; *counts.last().unwrap_or(&0) as usize];
        for (set, cols) in members.iter().enumerate() {
            for &g in cols {
                sets_of[counts[g as usize] as usize] = set as u32;
                counts[g as usize] += 1;
            }
        }
        let member_genes: Vec<u32> = (0..n_genes as u32)
            .rev()
            .filter(|&g| set_offsets[g as usize] < set_offsets[g as usize + 1])
            .collect();
        let scorer = Self {
            names,
            sizes: members.iter().map(Vec::len).collect(),
            member_genes,
            set_offsets,
            sets_of,
            n_genes,
            weight: options.weight,
        };
        Ok((scorer, skipped))
    }

    /// Names of the sets that will be scored.
    pub fn set_names(&self) -> &[String] {
        &self.names
    }

    /// Scores every row (sample) of `matrix` (samples × genes, rows canonical as the reader
    /// leaves them). With `clip_at_zero`, negative values count as zero (for reconstructed
    /// expression, where a negative value would rank below every unlisted gene).
    pub fn score_matrix(
        &self,
        matrix: &CsrMatrix,
        clip_at_zero: bool,
        progress: &Progress,
    ) -> Result<SsgseaScores> {
        if matrix.n_cols != self.n_genes {
            return Err(Error::InvalidArgument(format!(
                "the matrix has {} genes but the sets were matched to {}",
                matrix.n_cols, self.n_genes
            )));
        }
        if let Some(p) = crate::matrix::first_index_where(&matrix.data, |v| !v.is_finite()) {
            let row = matrix.indptr.partition_point(|&s| s as usize <= p) - 1;
            return Err(Error::InvalidData(format!(
                "sample {row} has a non-finite value ({}); ssGSEA needs finite expression values",
                matrix.data[p]
            )));
        }
        self.score_rows(matrix.n_rows, progress, |i, row| {
            let (cols, vals) = matrix.row(i);
            row.extend(cols.iter().zip(vals).map(|(&c, &v)| {
                let v = f64::from(v);
                (c, if clip_at_zero { v.max(0.0) } else { v })
            }));
        })
    }

    /// Scores cell sentences by order alone (rank-only ssGSEA, which needs weight 0). Each
    /// sentence lists gene columns of the universe, most expressed first; unlisted genes tie
    /// at zero below them, in descending column order, as gseapy orders tied genes. A gene
    /// listed twice counts at its first place.
    pub fn score_sentences(
        &self,
        sentences: &[Vec<u32>],
        progress: &Progress,
    ) -> Result<SsgseaScores> {
        if self.weight != 0.0 {
            return Err(Error::InvalidArgument(format!(
                "a cell sentence has an order but no values, so it can only be scored with weight 0 (got {})",
                self.weight
            )));
        }
        if let Some((s, &g)) = sentences.iter().enumerate().find_map(|(s, v)| {
            v.iter()
                .find(|&&g| g as usize >= self.n_genes)
                .map(|g| (s, g))
        }) {
            return Err(Error::InvalidArgument(format!(
                "sentence {s} names gene column {g}, outside the {} genes the sets were matched to",
                self.n_genes
            )));
        }
        self.score_rows(sentences.len(), progress, |i, row| {
            let sentence = &sentences[i];
            let len = sentence.len() as f64;
            // Descending distinct values in sentence order; a repeat gets a lower value and is
            // dropped below in favour of its first place.
            row.extend(
                sentence
                    .iter()
                    .enumerate()
                    .map(|(p, &g)| (g, len - p as f64)),
            );
            row.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
            row.dedup_by_key(|e| e.0);
        })
    }

    /// Scores `n` samples; `fill(i, row)` appends sample `i`'s stored (column, value) pairs
    /// with columns strictly increasing; absent columns are zero.
    fn score_rows<F>(&self, n: usize, progress: &Progress, fill: F) -> Result<SsgseaScores>
    where
        F: Fn(usize, &mut Vec<(u32, f64)>) + Sync,
    {
        let n_sets = self.names.len();
        let mut es = vec![0.0; n * n_sets];
        if n_sets > 0 {
            const CHUNK: usize = 64;
            let done = std::sync::atomic::AtomicUsize::new(0);
            es.par_chunks_mut(CHUNK * n_sets)
                .enumerate()
                .try_for_each_init(Scratch::default, |scratch, (c, out)| {
                    progress.check()?;
                    for (k, sample_out) in out.chunks_mut(n_sets).enumerate() {
                        scratch.row.clear();
                        fill(c * CHUNK + k, &mut scratch.row);
                        self.score_sample(scratch, sample_out);
                    }
                    let finished = done
                        .fetch_add(out.len() / n_sets, std::sync::atomic::Ordering::Relaxed)
                        + out.len() / n_sets;
                    progress.set_fraction(finished as f32 / n as f32);
                    Ok::<(), Error>(())
                })?;
        }
        Ok(SsgseaScores {
            sets: self.names.clone(),
            n_samples: n,
            es,
        })
    }

    /// ES of every set for the sample in `scratch.row`, written to `out`.
    fn score_sample(&self, s: &mut Scratch, out: &mut [f64]) {
        let n = self.n_genes;
        let nf = n as f64;
        // Stored non-zero values, by value descending, then column descending.
        s.ranked.clear();
        s.ranked
            .extend(s.row.iter().filter(|e| e.1 != 0.0).map(|&(g, v)| (v, g)));
        s.ranked
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        let n_pos = s.ranked.iter().take_while(|e| e.0 > 0.0).count();
        let n_zero = n - s.ranked.len();
        s.acc.clear();
        s.acc.resize(self.names.len(), Acc::default());
        // Walk the ranking down: positives, the zero tie, negatives, so that each set adds its
        // members in position order.
        self.visit_groups(&s.ranked[..n_pos], 0, &mut s.acc);
        if n_zero > 0 {
            let m = self.group_metric(n_pos, n_zero);
            let row = &s.row;
            let mut j = row.len();
            let mut nonzero_above = 0usize;
            for &g in &self.member_genes {
                while j > 0 && row[j - 1].0 > g {
                    j -= 1;
                    nonzero_above += usize::from(row[j].1 != 0.0);
                }
                if j > 0 && row[j - 1].0 == g && row[j - 1].1 != 0.0 {
                    continue;
                }
                // Among zero genes, higher columns come first.
                let place = n_pos + (n - 1 - g as usize) - nonzero_above;
                self.visit(g, place, m, &mut s.acc);
            }
        }
        self.visit_groups(&s.ranked[n_pos..], n_pos + n_zero, &mut s.acc);
        for ((a, &k), slot) in s.acc.iter().zip(&self.sizes).zip(out.iter_mut()) {
            let k = k as f64;
            *slot = a.weighted / a.total - (nf * (nf + 1.0) / 2.0 - a.steps) / (nf - k);
        }
    }

    /// Visits ranked non-zero genes `ranked` (tie groups of equal value) at places from `first`.
    fn visit_groups(&self, ranked: &[(f64, u32)], first: usize, acc: &mut [Acc]) {
        let mut g = 0;
        while g < ranked.len() {
            let end = g + ranked[g..]
                .iter()
                .take_while(|e| e.0 == ranked[g].0)
                .count();
            let m = self.group_metric(first + g, end - g);
            for (p, &(_, gene)) in ranked[g..end].iter().enumerate() {
                self.visit(gene, first + g + p, m, acc);
            }
            g = end;
        }
    }

    /// Adds gene `g`, ranked at `place` with metric `m`, to the sums of the sets holding it.
    #[inline]
    fn visit(&self, g: u32, place: usize, m: f64, acc: &mut [Acc]) {
        let (a, b) = (
            self.set_offsets[g as usize],
            self.set_offsets[g as usize + 1],
        );
        let step = self.n_genes as f64 - place as f64;
        for &set in &self.sets_of[a as usize..b as usize] {
            let sum = &mut acc[set as usize];
            sum.weighted += m * step;
            sum.total += m;
            sum.steps += step;
        }
    }

    /// `|V|^W` for a tie group of `len` genes at descending places `place..place + len`:
    /// pandas' average rank (ascending, 1-based) scaled as `10000 · rank / n`.
    fn group_metric(&self, place: usize, len: usize) -> f64 {
        let n = self.n_genes as u64;
        let (hi, lo) = (n - place as u64, n - (place + len) as u64 + 1);
        let sum = (lo + hi) * (hi - lo + 1) / 2;
        let rank = sum as f64 / len as f64;
        let v = 10000.0 * rank / self.n_genes as f64;
        v.abs().powf(self.weight)
    }
}

/// Running sums of one set over its members in position order.
#[derive(Debug, Default, Clone, Copy)]
struct Acc {
    /// Σ m·(n − i).
    weighted: f64,
    /// Σ m.
    total: f64,
    /// Σ (n − i).
    steps: f64,
}

/// Per-thread buffers, sized by a sample's stored values or the number of sets, never by genes.
#[derive(Default)]
struct Scratch {
    row: Vec<(u32, f64)>,
    ranked: Vec<(f64, u32)>,
    acc: Vec<Acc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gseapy's algorithm written out directly (dense argsort, O(n) per set), to check the
    /// sparse positions against.
    fn dense_reference(values: &[f64], sets: &[Vec<usize>], weight: f64) -> Vec<f64> {
        let n = values.len();
        let mut asc: Vec<usize> = (0..n).collect();
        asc.sort_by(|&a, &b| values[a].partial_cmp(&values[b]).unwrap());
        let mut rank = vec![0.0; n];
        let mut i = 0;
        while i < n {
            let mut j = i;
            while j + 1 < n && values[asc[j + 1]] == values[asc[i]] {
                j += 1;
            }
            let avg = ((i + 1..=j + 1).sum::<usize>()) as f64 / (j - i + 1) as f64;
            for &g in &asc[i..=j] {
                rank[g] = avg;
            }
            i = j + 1;
        }
        let order: Vec<usize> = asc.into_iter().rev().collect();
        let nf = n as f64;
        sets.iter()
            .map(|set| {
                let idx: Vec<usize> = (0..n).filter(|&p| set.contains(&order[p])).collect();
                let m: Vec<f64> = idx
                    .iter()
                    .map(|&p| (10000.0 * rank[order[p]] / nf).abs().powf(weight))
                    .collect();
                let w: f64 = idx.iter().zip(&m).map(|(&p, m)| m * (nf - p as f64)).sum();
                let t: f64 = m.iter().sum();
                let st: f64 = idx.iter().map(|&p| nf - p as f64).sum();
                w / t - (nf * (nf + 1.0) / 2.0 - st) / (nf - idx.len() as f64)
            })
            .collect()
    }

    fn set(name: &str, cols: &[usize]) -> SetMatch {
        SetMatch {
            name: name.into(),
            n_listed: cols.len(),
            columns: cols.to_vec(),
        }
    }

    fn csr(rows: &[Vec<f32>]) -> CsrMatrix {
        let mut m = CsrMatrix {
            n_rows: rows.len(),
            n_cols: rows[0].len(),
            indptr: vec![0],
            ..Default::default()
        };
        for r in rows {
            for (j, &v) in r.iter().enumerate() {
                // Keep one explicit zero per row to exercise stored zeros.
                if v != 0.0 || j == 1 {
                    m.indices.push(j as u32);
                    m.data.push(v);
                }
            }
            m.indptr.push(m.data.len() as u64);
        }
        m
    }

    #[test]
    fn sparse_positions_match_the_dense_algorithm_with_ties_and_negatives() {
        let mut rng = crate::rng::SplitMix64::new(7);
        let n = 40;
        let rows: Vec<Vec<f32>> = (0..25)
            .map(|_| {
                (0..n)
                    .map(|_| match rng.below(6) {
                        0..=2 => 0.0,
                        3 => -(rng.below(3) as f32),
                        _ => rng.below(4) as f32,
                    })
                    .collect()
            })
            .collect();
        let m = csr(&rows);
        let sets = vec![
            set("a", &[0, 3, 5, 7, 11, 13]),
            set("b", &[1, 2, 39, 38, 20]),
            set("c", &(0..20).collect::<Vec<_>>()),
        ];
        for weight in [0.0, 0.25, 1.0] {
            let options = SsgseaOptions {
                weight,
                min_size: 1,
                max_size: 500,
            };
            let (scorer, skipped) = Ssgsea::new(&sets, n, options).unwrap();
            assert!(skipped.is_empty());
            let scores = scorer.score_matrix(&m, false, &Progress::new()).unwrap();
            for (i, r) in rows.iter().enumerate() {
                let values: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
                let members: Vec<Vec<usize>> = sets.iter().map(|s| s.columns.clone()).collect();
                let want = dense_reference(&values, &members, weight);
                for (j, w) in want.iter().enumerate() {
                    assert_eq!(scores.es(i, j), *w, "sample {i} set {j} weight {weight}");
                }
            }
        }
    }

    #[test]
    fn sentences_score_as_their_order_and_clipping_lifts_negatives_to_the_zero_tie() {
        let sets = vec![set("a", &[0, 4, 6]), set("b", &[2, 3, 5])];
        let options = SsgseaOptions {
            weight: 0.0,
            min_size: 1,
            max_size: 10,
        };
        let (scorer, _) = Ssgsea::new(&sets, 8, options).unwrap();
        // Sentence [5, 0, 2]: expression values 3, 2, 1 at those genes.
        let by_sentence = scorer
            .score_sentences(&[vec![5, 0, 2, 0]], &Progress::new())
            .unwrap();
        let m = csr(&[vec![2.0, 0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 0.0]]);
        let by_values = scorer.score_matrix(&m, false, &Progress::new()).unwrap();
        assert_eq!(by_sentence.es, by_values.es);
        let negative = csr(&[vec![2.0, 0.0, 1.0, -4.0, 0.0, 3.0, -1.0, 0.0]]);
        let clipped = scorer
            .score_matrix(&negative, true, &Progress::new())
            .unwrap();
        assert_eq!(clipped.es, by_values.es);
        let unclipped = scorer
            .score_matrix(&negative, false, &Progress::new())
            .unwrap();
        assert_ne!(unclipped.es, by_values.es);
        let weighted = Ssgsea::new(&sets, 8, SsgseaOptions::default()).unwrap().0;
        let err = weighted
            .score_sentences(&[vec![1]], &Progress::new())
            .unwrap_err();
        assert!(err.to_string().contains("weight 0"), "{err}");
    }

    #[test]
    fn size_filter_nes_scale_and_bad_input() {
        let sets = vec![
            set("small", &[0]),
            set("ok", &[0, 1]),
            set("all", &[0, 1, 2]),
        ];
        let options = SsgseaOptions {
            weight: 1.0,
            min_size: 2,
            max_size: 5,
        };
        let (scorer, skipped) = Ssgsea::new(&sets, 3, options).unwrap();
        assert_eq!(scorer.set_names(), ["ok"]);
        let names: Vec<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["small", "all"]);
        let m = csr(&[vec![1.0, 2.0, 3.0], vec![3.0, 2.0, 1.0]]);
        let scores = scorer.score_matrix(&m, false, &Progress::new()).unwrap();
        let scale = scores.nes_scale();
        assert_eq!(scale, scores.es(1, 0) - scores.es(0, 0));
        assert_eq!(scores.nes()[1], scores.es(1, 0) / scale);
        let nan = csr(&[vec![1.0, f32::NAN, 3.0]]);
        let err = scorer
            .score_matrix(&nan, false, &Progress::new())
            .unwrap_err();
        assert!(err.to_string().contains("sample 0"), "{err}");
        let bad = SsgseaOptions {
            weight: -1.0,
            ..options
        };
        assert!(Ssgsea::new(&sets, 3, bad).is_err());
    }
}

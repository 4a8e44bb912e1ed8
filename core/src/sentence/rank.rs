//! Ordering one cell's expressed genes: descending value, ties by a tie-break rule.
//!
//! Rows are short (hundreds to a few thousand entries) and there are millions of them, so the
//! ranking is a stable least-significant-digit radix sort over byte digits, skipping digits
//! that are the same in every key (counts are small integers, so most value bytes are), with
//! buffers reused across rows.

/// Rows shorter than this are ordered by an insertion sort (radix set-up would dominate).
const SMALL_ROW: usize = 48;

/// Reusable buffers for ranking rows; one per worker thread.
#[derive(Debug, Default)]
pub struct Ranker {
    /// Reference rule: (descending key << 32 | column) per stored entry, shuffled, zeros left
    /// out, then sorted in place. Seeded rule: (descending key << 32 | tie << 16 | position in
    /// the row) per expressed entry.
    items: Vec<u64>,
    items_tmp: Vec<u64>,
    /// Seeded rule, rows the packed items cannot hold: (descending key << 32 | tie << 16,
    /// column) per expressed entry.
    pairs: Vec<(u64, u32)>,
    /// The ranked columns.
    ranked: Vec<u32>,
    /// Radix histograms, one per key byte.
    counts: Histograms,
}

/// Items of a radix pass are handled as this many interleaved segments (see
/// [`radix_sort_stable`]).
const SEGMENTS: usize = 4;

/// Digit counts of one radix pass, one histogram per segment (kept between rows).
#[derive(Debug)]
struct Histograms(Box<[[u32; 256]; SEGMENTS]>);

impl Default for Histograms {
    fn default() -> Self {
        Self(Box::new([[0; 256]; SEGMENTS]))
    }
}

/// Key of a value that sorts larger values first (positive `f32` bits order like the values,
/// so their complement orders them in reverse); zero and below get [`NOT_EXPRESSED`].
#[inline]
fn descending(value: f32) -> u32 {
    if value > 0.0 {
        !value.to_bits()
    } else {
        NOT_EXPRESSED
    }
}

/// The key of entries that are not expressed (zero, or `-0.0`); no positive value has it.
const NOT_EXPRESSED: u32 = u32::MAX;

impl Ranker {
    /// The columns of one row in the `cell2sentence` package's order: the stored entries
    /// shuffled as numpy does with `draws` (from [`crate::rng::NumpyRandomState::shuffle_draws`]
    /// for this row's length), then stable-sorted by descending value. Zeros are left out;
    /// `top_k` keeps the first `k`.
    pub fn reference(
        &mut self,
        cols: &[u32],
        vals: &[f32],
        draws: &[u32],
        top_k: Option<usize>,
    ) -> &[u32] {
        let items = &mut self.items;
        items.clear();
        items.extend(
            cols.iter()
                .zip(vals)
                .map(|(&c, &v)| (u64::from(descending(v)) << 32) | u64::from(c)),
        );
        crate::rng::apply_shuffle(items, draws);
        // Drop the zeros, keeping the shuffled order.
        let mut kept = 0;
        for t in 0..items.len() {
            let item = items[t];
            items[kept] = item;
            kept += usize::from((item >> 32) as u32 != NOT_EXPRESSED);
        }
        items.truncate(kept);
        let (items, tmp, counts) = (&mut self.items, &mut self.items_tmp, &mut self.counts);
        radix_sort_stable(items, tmp, counts, 4..8, |x: &u64| *x);
        self.ranked.clear();
        let n = top_k.unwrap_or(kept).min(kept);
        self.ranked
            .extend(self.items[..n].iter().map(|&x| x as u32));
        &self.ranked
    }

    /// The columns of one row in seeded order: descending value, ties by [`seeded_tie`] of
    /// `cell_hash` and the gene's hash, then by column. Zeros are left out; `top_k` keeps the
    /// first `k`.
    pub fn seeded(
        &mut self,
        cols: &[u32],
        vals: &[f32],
        cell_hash: u64,
        gene_hash: &[u64],
        top_k: Option<usize>,
    ) -> &[u32] {
        let key = |t: usize| {
            let tie = seeded_tie(cell_hash, gene_hash[cols[t] as usize]);
            (u64::from(descending(vals[t])) << 32) | (u64::from(tie) << 16)
        };
        let expressed = |k: u64| (k >> 32) as u32 != NOT_EXPRESSED;
        self.ranked.clear();
        if cols.len() <= 1 << 16 && cols.is_sorted() {
            // Columns in storage order: a stable sort on (value, tie) breaks equal keys by
            // column, and the position in the row (16 bits) rides along in the key.
            let items = &mut self.items;
            items.resize(cols.len(), 0);
            let mut kept = 0;
            for t in 0..cols.len() {
                let k = key(t);
                items[kept] = k | t as u64;
                kept += usize::from(expressed(k));
            }
            items.truncate(kept);
            let (items, tmp, counts) = (&mut self.items, &mut self.items_tmp, &mut self.counts);
            radix_sort_stable(items, tmp, counts, 2..8, |x: &u64| *x);
            let n = top_k.unwrap_or(kept).min(kept);
            self.ranked
                .extend(items[..n].iter().map(|&x| cols[(x & 0xffff) as usize]));
        } else {
            self.pairs.clear();
            self.pairs.extend(
                (0..cols.len())
                    .map(|t| (key(t), cols[t]))
                    .filter(|p| expressed(p.0)),
            );
            self.pairs.sort_unstable();
            let n = top_k.unwrap_or(self.pairs.len()).min(self.pairs.len());
            self.ranked.extend(self.pairs[..n].iter().map(|p| p.1));
        }
        &self.ranked
    }
}

/// The seeded tie key of a gene in a cell: 16 bits of the mix of their hashes. Genes that
/// share it (rare: a few pairs among hundreds of tied genes) fall back to column order.
#[inline]
fn seeded_tie(cell_hash: u64, gene_hash: u64) -> u16 {
    (crate::rng::mix64(cell_hash ^ gene_hash) >> 48) as u16
}

/// Stable least-significant-digit radix sort of `items` by the bytes `bytes` (lowest first) of
/// the 64-bit `key`, skipping bytes that are equal in every item. Short slices use an
/// insertion sort on the same bytes.
fn radix_sort_stable<T: Copy + Default>(
    items: &mut Vec<T>,
    tmp: &mut Vec<T>,
    counts: &mut Histograms,
    bytes: std::ops::Range<usize>,
    key: impl Fn(&T) -> u64,
) {
    let n = items.len();
    let in_range = |k: u64| {
        let low = k >> (8 * bytes.start);
        if bytes.end - bytes.start >= 8 {
            low
        } else {
            low & ((1u64 << (8 * (bytes.end - bytes.start))) - 1)
        }
    };
    if n < SMALL_ROW {
        insertion_sort_by_key(items, |x| in_range(key(x)));
        return;
    }
    // Bits that differ between items; only bytes holding some are sorted on.
    let (mut all_and, mut all_or) = (u64::MAX, 0u64);
    for x in items.iter() {
        let k = key(x);
        all_and &= k;
        all_or |= k;
    }
    let varying = all_and ^ all_or;
    tmp.resize(n, T::default());
    // The items are cut into four segments that are counted and scattered in an interleaved
    // loop. Runs of equal digits are common (counts take few values), and with one cursor per
    // digit every move would wait for the previous one's cursor increment; four segments give
    // four independent chains. Segment `s` covers `s * q..(s + 1) * q`, the last one also the
    // remainder, and its items go after those of earlier segments, so the sort stays stable.
    let q = n / SEGMENTS;
    let hist = &mut *counts.0;
    for b in bytes {
        let shift = 8 * b;
        if (varying >> shift) & 0xff == 0 {
            continue;
        }
        let digit = |x: &T| ((key(x) >> shift) & 0xff) as usize;
        // Every digit lies between the bytes of the AND and the OR of all keys.
        let (lo, hi) = (
            ((all_and >> shift) & 0xff) as usize,
            ((all_or >> shift) & 0xff) as usize,
        );
        for h in hist.iter_mut() {
            h[lo..=hi].fill(0);
        }
        for t in 0..q {
            for (s, h) in hist.iter_mut().enumerate() {
                h[digit(&items[s * q + t])] += 1;
            }
        }
        for x in &items[SEGMENTS * q..] {
            hist[SEGMENTS - 1][digit(x)] += 1;
        }
        let mut next = [[0u32; 256]; SEGMENTS];
        let mut sum = 0;
        for d in lo..=hi {
            for s in 0..SEGMENTS {
                next[s][d] = sum;
                sum += hist[s][d];
            }
        }
        for t in 0..q {
            for (s, cursor) in next.iter_mut().enumerate() {
                let x = items[s * q + t];
                let d = digit(&x);
                tmp[cursor[d] as usize] = x;
                cursor[d] += 1;
            }
        }
        for x in &items[SEGMENTS * q..] {
            let d = digit(x);
            tmp[next[SEGMENTS - 1][d] as usize] = *x;
            next[SEGMENTS - 1][d] += 1;
        }
        std::mem::swap(items, tmp);
    }
}

/// Stable insertion sort by key, for short rows.
fn insertion_sort_by_key<T: Copy>(items: &mut [T], key: impl Fn(&T) -> u64) {
    for i in 1..items.len() {
        let x = items[i];
        let k = key(&x);
        let mut j = i;
        while j > 0 && key(&items[j - 1]) > k {
            items[j] = items[j - 1];
            j -= 1;
        }
        items[j] = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{SplitMix64, mix64};

    /// A row with many ties: `n` entries over 40 columns-per-entry gaps, values from few levels.
    fn row(rng: &mut SplitMix64, n: usize, levels: usize, sorted: bool) -> (Vec<u32>, Vec<f32>) {
        let mut cols: Vec<u32> = (0..n as u32).map(|i| i * 3 + rng.below(3) as u32).collect();
        if !sorted {
            for i in (1..n).rev() {
                cols.swap(i, rng.below(i + 1));
            }
        }
        let vals = (0..n)
            .map(|_| match rng.below(levels + 1) {
                0 => 0.0,
                l => l as f32 * 0.37,
            })
            .collect();
        (cols, vals)
    }

    #[test]
    fn reference_order_equals_a_stable_comparison_sort() {
        let mut rng = SplitMix64::new(5);
        let mut ranker = Ranker::default();
        for n in [0, 1, 5, 47, 48, 49, 200, 1500] {
            for levels in [1, 3, 1000] {
                let (cols, vals) = row(&mut rng, n, levels, true);
                let draws: Vec<u32> = (1..n).rev().map(|i| rng.below(i + 1) as u32).collect();
                // `perm[t]`: the stored entry that the shuffle puts at position `t`.
                let mut perm: Vec<u32> = (0..n as u32).collect();
                crate::rng::apply_shuffle(&mut perm, &draws);
                let mut expected: Vec<(u32, u32)> = perm
                    .iter()
                    .filter(|&&p| vals[p as usize] > 0.0)
                    .map(|&p| (descending(vals[p as usize]), cols[p as usize]))
                    .collect();
                expected.sort_by_key(|e| e.0); // stable
                let expected: Vec<u32> = expected.into_iter().map(|e| e.1).collect();
                assert_eq!(ranker.reference(&cols, &vals, &draws, None), expected);
                let k = n / 3;
                assert_eq!(
                    ranker.reference(&cols, &vals, &draws, Some(k)),
                    &expected[..k.min(expected.len())]
                );
            }
        }
    }

    #[test]
    fn seeded_order_equals_a_comparison_sort_in_any_storage_order() {
        let mut rng = SplitMix64::new(9);
        let mixed: Vec<u64> = (0..5000u64).map(|g| mix64(g * 7 + 1)).collect();
        // Equal gene hashes make every tie key collide: ties then go by column.
        let equal = vec![3u64; 5000];
        let mut ranker = Ranker::default();
        for (n, gene_hash) in [
            (0, &mixed),
            (3, &mixed),
            (60, &mixed),
            (900, &mixed),
            (900, &equal),
        ] {
            for sorted in [true, false] {
                let (cols, vals) = row(&mut rng, n, 2, sorted);
                let cell = rng.next_u64();
                let mut expected: Vec<(u32, u16, u32)> = cols
                    .iter()
                    .zip(&vals)
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(&c, &v)| {
                        let tie = seeded_tie(cell, gene_hash[c as usize]);
                        (descending(v), tie, c)
                    })
                    .collect();
                expected.sort_unstable();
                let expected: Vec<u32> = expected.into_iter().map(|e| e.2).collect();
                assert_eq!(
                    ranker.seeded(&cols, &vals, cell, gene_hash, None),
                    expected,
                    "n={n} sorted={sorted}"
                );
            }
        }
    }
}

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
    /// Reference rule: (descending key << 32 | column) per stored entry, in storage order.
    packed: Vec<u64>,
    /// Reference rule: the same in shuffled order, zeros left out; sorted in place.
    items: Vec<u64>,
    items_tmp: Vec<u64>,
    /// Seeded rule: (descending key << 32 | tie, column) per expressed entry.
    pairs: Vec<(u64, u32)>,
    pairs_tmp: Vec<(u64, u32)>,
    /// The ranked columns.
    ranked: Vec<u32>,
    /// Radix histograms, one per key byte.
    counts: Histograms,
}

/// Digit counts of one radix pass, for even and odd items (kept between rows).
#[derive(Debug)]
struct Histograms(Box<[[u32; 256]; 2]>);

impl Default for Histograms {
    fn default() -> Self {
        Self(Box::new([[0; 256]; 2]))
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
    /// The columns of one row in the `cell2sentence` package's order: entries visited in the
    /// shuffled order `perm` (`perm[t]` is the stored entry at shuffled position `t`), then
    /// stable-sorted by descending value. Zeros are left out; `top_k` keeps the first `k`.
    pub fn reference(
        &mut self,
        cols: &[u32],
        vals: &[f32],
        perm: &[u32],
        top_k: Option<usize>,
    ) -> &[u32] {
        // Pack keys and columns in storage order first (sequential reads of the row), so the
        // shuffled visit below gathers from a small array already in cache.
        self.packed.clear();
        self.packed.extend(
            cols.iter()
                .zip(vals)
                .map(|(&c, &v)| (u64::from(descending(v)) << 32) | u64::from(c)),
        );
        self.items.resize(perm.len(), 0);
        let mut kept = 0;
        for &p in perm {
            let item = self.packed[p as usize];
            self.items[kept] = item;
            kept += usize::from((item >> 32) as u32 != NOT_EXPRESSED);
        }
        self.items.truncate(kept);
        let (items, tmp, counts) = (&mut self.items, &mut self.items_tmp, &mut self.counts);
        radix_sort_stable(items, tmp, counts, 4..8, |x: &u64| *x);
        self.ranked.clear();
        let n = top_k.unwrap_or(kept).min(kept);
        self.ranked
            .extend(self.items[..n].iter().map(|&x| x as u32));
        &self.ranked
    }

    /// The columns of one row in seeded order: descending value, ties by the 32-bit mix of
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
        self.pairs.clear();
        for (&c, &v) in cols.iter().zip(vals) {
            let key = descending(v);
            if key != NOT_EXPRESSED {
                let tie = crate::rng::mix64(cell_hash ^ gene_hash[c as usize]) as u32;
                self.pairs
                    .push(((u64::from(key) << 32) | u64::from(tie), c));
            }
        }
        if cols.is_sorted() {
            // A stable sort of entries in column order breaks equal keys by column.
            let (pairs, tmp, counts) = (&mut self.pairs, &mut self.pairs_tmp, &mut self.counts);
            radix_sort_stable(pairs, tmp, counts, 0..8, |x| x.0);
        } else {
            self.pairs.sort_unstable();
        }
        self.ranked.clear();
        let n = top_k.unwrap_or(self.pairs.len()).min(self.pairs.len());
        self.ranked.extend(self.pairs[..n].iter().map(|p| p.1));
        &self.ranked
    }
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
    let [even, odd] = &mut *counts.0;
    for b in bytes {
        let shift = 8 * b;
        if (varying >> shift) & 0xff == 0 {
            continue;
        }
        let digit = |x: &T| ((key(x) >> shift) & 0xff) as usize;
        // Two histograms, for even and odd items: runs of equal digits (common: counts take
        // few values) would otherwise chain every increment on the one before.
        even.fill(0);
        odd.fill(0);
        let mut two = items.chunks_exact(2);
        for p in &mut two {
            even[digit(&p[0])] += 1;
            odd[digit(&p[1])] += 1;
        }
        for x in two.remainder() {
            even[digit(x)] += 1;
        }
        let mut next = [0u32; 256];
        let mut sum = 0;
        for ((slot, &e), &o) in next.iter_mut().zip(even.iter()).zip(odd.iter()) {
            *slot = sum;
            sum += e + o;
        }
        for x in items.iter() {
            let d = digit(x);
            tmp[next[d] as usize] = *x;
            next[d] += 1;
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
                let mut perm: Vec<u32> = (0..n as u32).collect();
                for i in (1..n).rev() {
                    perm.swap(i, rng.below(i + 1));
                }
                let mut expected: Vec<(u32, u32)> = perm
                    .iter()
                    .filter(|&&p| vals[p as usize] > 0.0)
                    .map(|&p| (descending(vals[p as usize]), cols[p as usize]))
                    .collect();
                expected.sort_by_key(|e| e.0); // stable
                let expected: Vec<u32> = expected.into_iter().map(|e| e.1).collect();
                assert_eq!(ranker.reference(&cols, &vals, &perm, None), expected);
                let k = n / 3;
                assert_eq!(
                    ranker.reference(&cols, &vals, &perm, Some(k)),
                    &expected[..k.min(expected.len())]
                );
            }
        }
    }

    #[test]
    fn seeded_order_equals_a_comparison_sort_in_any_storage_order() {
        let mut rng = SplitMix64::new(9);
        let gene_hash: Vec<u64> = (0..5000u64).map(|g| mix64(g * 7 + 1)).collect();
        let mut ranker = Ranker::default();
        for n in [0, 3, 60, 900] {
            for sorted in [true, false] {
                let (cols, vals) = row(&mut rng, n, 2, sorted);
                let cell = rng.next_u64();
                let mut expected: Vec<(u64, u32)> = cols
                    .iter()
                    .zip(&vals)
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(&c, &v)| {
                        let tie = mix64(cell ^ gene_hash[c as usize]) as u32;
                        ((u64::from(descending(v)) << 32) | u64::from(tie), c)
                    })
                    .collect();
                expected.sort_unstable();
                let expected: Vec<u32> = expected.into_iter().map(|e| e.1).collect();
                assert_eq!(
                    ranker.seeded(&cols, &vals, cell, &gene_hash, None),
                    expected,
                    "n={n} sorted={sorted}"
                );
            }
        }
    }
}

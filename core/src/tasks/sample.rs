//! Drawing a few cells from a selection for a multi-cell prompt, reproducibly from a seed.

use crate::rng::SplitMix64;

/// `n` of `rows` (all of them when there are no more), drawn without replacement with `seed`,
/// returned in their order in `rows`: the same seed and rows always give the same cells.
pub fn sample_rows(rows: &[usize], n: usize, seed: u64) -> Vec<usize> {
    if n >= rows.len() {
        return rows.to_vec();
    }
    let mut rng = SplitMix64::new(seed);
    let mut picked: Vec<usize> = (0..rows.len()).collect();
    // A partial Fisher-Yates shuffle: the first `n` places get a uniform sample.
    for i in 0..n {
        let j = i + rng.below(rows.len() - i);
        picked.swap(i, j);
    }
    let mut chosen: Vec<usize> = picked[..n].to_vec();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| rows[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_reproducible_distinct_and_in_order() {
        let rows: Vec<usize> = (100..200).collect();
        let a = sample_rows(&rows, 10, 7);
        assert_eq!(a, sample_rows(&rows, 10, 7));
        assert_ne!(a, sample_rows(&rows, 10, 8));
        assert_eq!(a.len(), 10);
        assert!(
            a.windows(2).all(|w| w[0] < w[1]),
            "distinct, in order: {a:?}"
        );
        assert!(a.iter().all(|r| rows.contains(r)));
        assert_eq!(sample_rows(&rows[..3], 10, 1), rows[..3].to_vec());
    }
}

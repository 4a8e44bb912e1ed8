//! Next-token choice on the host, in `transformers`' order: temperature → top-k → top-p →
//! categorical draw; `temperature == 0` is greedy (first maximum, like `argmax`). Ids the
//! tokenizer does not know (Pythia pads its logits to 50,304 rows) are never chosen.
//!
//! Without top-k or top-p the draw walks the ids in order (as `torch.multinomial` does): the
//! weights `exp(v/T − max)` are summed in blocks with vector code, the draw's block is found from
//! the block sums and only that block is walked, so a draw costs two passes over the vocabulary
//! however flat the distribution. With top-k or top-p, nothing sorts the whole vocabulary either:
//! top-k is a selection (`select_nth_unstable_by`) and the top-p cut and the draw walk a sorted
//! prefix that grows only as far as they need. Candidates rank by logit, ties by lower id, as a
//! full sort would order them, so the same draw picks the same token.

use crate::rng::SplitMix64;
use std::cmp::Ordering;

/// Sampling settings of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 for greedy decoding.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability mass reaches `p` (1 = off).
    pub top_p: f32,
    /// Seed of the random draws; `None` draws a seed from the clock.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Rejects values that have no meaning, with a message naming the fix.
    pub fn validate(&self) -> Result<(), String> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(format!(
                "temperature must be >= 0 (0 = greedy), got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top-p must be in (0, 1], got {}", self.top_p));
        }
        Ok(())
    }
}

/// Why no token could be chosen from a row of logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleError {
    /// A logit of an allowed id is NaN (the computation overflowed).
    NanLogits,
    /// The filter allows no id of the row.
    NothingAllowed,
}

/// Chooses the next token from one row of logits. `allowed(id)` filters ids; a NaN logit among
/// the allowed ids is an error, not a silent choice.
pub fn choose(
    logits: &[f32],
    params: &SamplingParams,
    rng: &mut SplitMix64,
    allowed: impl Fn(usize) -> bool,
) -> Result<u32, SampleError> {
    if params.temperature == 0.0 {
        return argmax(logits, allowed);
    }
    let t = params.temperature;
    let filters = params.top_k > 0 || params.top_p < 1.0;
    // Scaled logits by id (ids never chosen at -∞), and with filters the candidates.
    let mut scaled = Vec::with_capacity(logits.len());
    let mut pool = Vec::with_capacity(if filters { logits.len() } else { 0 });
    let (mut count, mut max) = (0usize, f32::NEG_INFINITY);
    for (i, &v) in logits.iter().enumerate() {
        if !allowed(i) {
            scaled.push(f32::NEG_INFINITY);
            continue;
        }
        if v.is_nan() {
            return Err(SampleError::NanLogits);
        }
        let v = v / t;
        scaled.push(v);
        max = max.max(v);
        count += 1;
        if filters {
            pool.push((i as u32, v));
        }
    }
    if count == 0 {
        return Err(SampleError::NothingAllowed);
    }
    if (params.top_k == 0 || params.top_k >= count) && params.top_p >= 1.0 {
        if max == f32::NEG_INFINITY {
            // Every allowed logit is -∞: no distribution to draw from.
            return argmax(logits, allowed);
        }
        return Ok(draw_in_id_order(&scaled, max, rng.next_f64()));
    }
    let mut ranked = if params.top_k > 0 && params.top_k < pool.len() {
        pool.select_nth_unstable_by(params.top_k - 1, by_rank);
        pool.truncate(params.top_k);
        // Few enough to sort outright (and then sums run in the same order as a full sort's).
        pool.sort_unstable_by(by_rank);
        Ranked::sorted(pool)
    } else {
        Ranked::new(pool)
    };
    let max = ranked.top().1;
    let weight = |v: f32| f64::from(v - max).exp();
    // The normaliser over every candidate (summed in a sorted order only when already sorted).
    let total: f64 = ranked.pool.iter().map(|&(_, v)| weight(v)).sum();
    let u = rng.next_f64();
    if params.top_p < 1.0 {
        // The nucleus: the shortest prefix whose mass reaches `top_p`.
        let mut mass = 0.0;
        let mut keep = ranked.pool.len();
        let mut i = 0;
        while i < ranked.pool.len() {
            ranked.sort_prefix(i + 1);
            mass += weight(ranked.pool[i].1) / total;
            if mass >= f64::from(params.top_p) {
                keep = i + 1;
                break;
            }
            i += 1;
        }
        let keep = keep.max(1);
        ranked.sort_prefix(keep);
        let probs: Vec<f64> = ranked.pool[..keep]
            .iter()
            .map(|&(_, v)| weight(v) / total)
            .collect();
        let kept: f64 = probs.iter().sum();
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p / kept;
            if u < acc {
                return Ok(ranked.pool[i].0);
            }
        }
        return Ok(ranked.pool[keep - 1].0);
    }
    let mut acc = 0.0;
    for i in 0..ranked.pool.len() {
        ranked.sort_prefix(i + 1);
        acc += weight(ranked.pool[i].1) / total;
        if u < acc {
            return Ok(ranked.pool[i].0);
        }
    }
    ranked.sort_prefix(ranked.pool.len());
    Ok(ranked.pool[ranked.pool.len() - 1].0)
}

/// Weights summed per block of the id-order draw (sums of this many f32 weights stay within
/// about 1e-6 relative before they are added in f64).
const DRAW_BLOCK: usize = 1024;

/// The id whose cumulative weight `exp(v − max)`, in id order, first exceeds `u` (in `[0, 1)`)
/// times the total: the block sums locate the block, which is then walked id by id.
fn draw_in_id_order(scaled: &[f32], max: f32, u: f64) -> u32 {
    use crate::kernels::math::exp_nonpositive;
    let weight = |v: f32| f64::from(exp_nonpositive(v - max));
    let blocks = block_weights(scaled, max);
    let mut target = u * blocks.iter().sum::<f64>();
    for (b, &sum) in blocks.iter().enumerate() {
        if target >= sum && b + 1 < blocks.len() {
            target -= sum;
            continue;
        }
        let start = b * DRAW_BLOCK;
        let mut acc = 0.0;
        for (i, &v) in scaled[start..].iter().take(DRAW_BLOCK).enumerate() {
            acc += weight(v);
            if target < acc {
                return (start + i) as u32;
            }
        }
        break;
    }
    // Rounding left the draw past the last weight: the last id that has one (the maximum has).
    scaled
        .iter()
        .rposition(|&v| weight(v) > 0.0)
        .unwrap_or_default() as u32
}

crate::kernels::with_widest_vectors! {
    /// `Σ exp(v − max)` over each block of [`DRAW_BLOCK`] values.
    fn block_weights(scaled: &[f32], max: f32) -> Vec<f64> = block_weights_lanes;
}

#[inline(always)]
fn block_weights_lanes(scaled: &[f32], max: f32) -> Vec<f64> {
    use crate::kernels::math::{LANES, exp_nonpositive};
    scaled
        .chunks(DRAW_BLOCK)
        .map(|block| {
            let mut acc = [0.0f32; LANES];
            let chunks = block.chunks_exact(LANES);
            let tail: f32 = chunks
                .remainder()
                .iter()
                .map(|&v| exp_nonpositive(v - max))
                .sum();
            for c in chunks {
                for l in 0..LANES {
                    acc[l] += exp_nonpositive(c[l] - max);
                }
            }
            acc.iter().map(|&a| f64::from(a)).sum::<f64>() + f64::from(tail)
        })
        .collect()
}

/// Candidate order: higher (scaled) logit first, then lower id.
fn by_rank(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Candidates whose first `sorted` entries are in rank order and rank before all the rest.
struct Ranked {
    pool: Vec<(u32, f32)>,
    sorted: usize,
}

/// Entries the sorted prefix grows by at least (then doubling), so a long walk costs
/// `O(V log V)` at worst and a short one `O(V)`.
const FIRST_CHUNK: usize = 32;

impl Ranked {
    fn new(pool: Vec<(u32, f32)>) -> Self {
        Self { pool, sorted: 0 }
    }

    fn sorted(pool: Vec<(u32, f32)>) -> Self {
        let sorted = pool.len();
        Self { pool, sorted }
    }

    /// The best candidate.
    fn top(&mut self) -> (u32, f32) {
        self.sort_prefix(1);
        self.pool[0]
    }

    /// Makes at least the first `n` entries sorted (growing the prefix geometrically).
    fn sort_prefix(&mut self, n: usize) {
        if n <= self.sorted {
            return;
        }
        let len = self.pool.len();
        let target = n.max(2 * self.sorted).max(FIRST_CHUNK).min(len);
        let rest = &mut self.pool[self.sorted..];
        let take = target - self.sorted;
        if take < rest.len() {
            rest.select_nth_unstable_by(take - 1, by_rank);
        }
        rest[..take].sort_unstable_by(by_rank);
        self.sorted = target;
    }
}

/// Index of the first maximum among allowed ids (a NaN among them is an error).
pub fn argmax(logits: &[f32], allowed: impl Fn(usize) -> bool) -> Result<u32, SampleError> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if !allowed(i) {
            continue;
        }
        if v.is_nan() {
            return Err(SampleError::NanLogits);
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32)
        .ok_or(SampleError::NothingAllowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The straightforward implementation: sort every candidate, then cut and draw (without
    /// top-k or top-p, the draw walks the candidates in id order).
    fn full_sort_reference(
        logits: &[f32],
        params: &SamplingParams,
        rng: &mut SplitMix64,
        allowed: impl Fn(usize) -> bool,
    ) -> u32 {
        let t = params.temperature;
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(i, _)| allowed(*i))
            .map(|(i, v)| (i as u32, v / t))
            .collect();
        let unfiltered = (params.top_k == 0 || params.top_k >= cand.len()) && params.top_p >= 1.0;
        if !unfiltered {
            cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        if params.top_k > 0 && params.top_k < cand.len() {
            cand.truncate(params.top_k);
        }
        let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<f64> = cand.iter().map(|(_, v)| ((v - max) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        for p in &mut probs {
            *p /= total;
        }
        if params.top_p < 1.0 {
            let mut mass = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                mass += p;
                if mass >= params.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep.max(1));
            let total: f64 = probs.iter().sum();
            for p in &mut probs {
                *p /= total;
            }
        }
        let u = rng.next_f64();
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if u < acc {
                return cand[i].0;
            }
        }
        cand[probs.len() - 1].0
    }

    #[test]
    fn greedy_takes_first_maximum_and_skips_unknown_ids() {
        let logits = [0.1, 3.0, 3.0, 9.0];
        assert_eq!(argmax(&logits, |i| i < 3), Ok(1));
        assert_eq!(argmax(&logits, |_| false), Err(SampleError::NothingAllowed));
    }

    #[test]
    fn nan_logits_are_an_error_not_token_zero() {
        let logits = [f32::NAN, 1.0, f32::NAN];
        let mut rng = SplitMix64::new(1);
        for temperature in [0.0, 0.8] {
            let params = SamplingParams {
                temperature,
                ..Default::default()
            };
            assert_eq!(
                choose(&logits, &params, &mut rng, |_| true),
                Err(SampleError::NanLogits),
                "temperature {temperature}"
            );
            // A NaN on an id that can never be chosen does not matter.
            assert_eq!(choose(&logits, &params, &mut rng, |i| i == 1), Ok(1));
        }
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits = [0.1, 2.0, 1.0];
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            ..Default::default()
        };
        let mut rng = SplitMix64::new(7);
        for _ in 0..20 {
            assert_eq!(choose(&logits, &params, &mut rng, |_| true), Ok(1));
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // Probabilities ~ [0.665, 0.245, 0.09]: p = 0.6 keeps only the first token.
        let logits = [2.0, 1.0, 0.0];
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.6,
            ..Default::default()
        };
        let mut rng = SplitMix64::new(1);
        for _ in 0..50 {
            assert_eq!(choose(&logits, &params, &mut rng, |_| true), Ok(0));
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let params = SamplingParams {
            temperature: 0.8,
            top_k: 20,
            top_p: 0.9,
            seed: Some(3),
        };
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..30)
                .map(|_| choose(&logits, &params, &mut rng, |_| true).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn choices_equal_a_full_sort_for_the_same_draws() {
        let mut draws = SplitMix64::new(42);
        for case in 0..300 {
            let vocab = [7, 40, 333, 2_000][case % 4];
            // Random logits with ties (rounded) and a spread from flat to peaked.
            let scale = [0.5f32, 3.0, 12.0][case % 3];
            let logits: Vec<f32> = (0..vocab)
                .map(|_| (draws.normal() * scale * 4.0).round() / 4.0)
                .collect();
            let params = SamplingParams {
                temperature: [0.3, 0.8, 1.0, 1.7][case % 4],
                top_k: [0, 1, 5, 50, 5_000][case % 5],
                top_p: [1.0, 0.9, 0.5, 0.999, 0.05][(case / 5) % 5],
                seed: None,
            };
            let allowed = |i: usize| i % 11 != 3;
            let seed = draws.next_u64();
            let (mut a, mut b) = (SplitMix64::new(seed), SplitMix64::new(seed));
            for _ in 0..20 {
                let ours = choose(&logits, &params, &mut a, allowed).unwrap();
                let reference = full_sort_reference(&logits, &params, &mut b, allowed);
                assert_eq!(ours, reference, "case {case}: {params:?}, vocab {vocab}");
            }
        }
    }

    #[test]
    fn a_draw_in_id_order_follows_the_probabilities_across_blocks() {
        // Four likely ids in different blocks (one disallowed), the rest a flat floor.
        let mut logits = vec![-4.0f32; 5_000];
        for (id, v) in [(10, 2.0), (1_500, 3.0), (3_071, 2.5), (4_999, 3.0)] {
            logits[id] = v;
        }
        let allowed = |i: usize| i != 4_999;
        let params = SamplingParams {
            temperature: 1.0,
            ..Default::default()
        };
        let weights: Vec<f64> = (0..logits.len())
            .map(|i| {
                if allowed(i) {
                    f64::from(logits[i]).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut rng = SplitMix64::new(9);
        let draws = 40_000;
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..draws {
            counts[choose(&logits, &params, &mut rng, allowed).unwrap() as usize] += 1;
        }
        assert_eq!(counts[4_999], 0, "a disallowed id was drawn");
        for id in [10, 1_500, 3_071] {
            let p = weights[id] / total;
            let sd = (p * (1.0 - p) / draws as f64).sqrt();
            let seen = counts[id] as f64 / draws as f64;
            assert!((seen - p).abs() < 5.0 * sd, "id {id}: {seen} vs {p}");
        }
        let floor: usize =
            counts.iter().sum::<usize>() - counts[10] - counts[1_500] - counts[3_071];
        let p_floor = 1.0 - (weights[10] + weights[1_500] + weights[3_071]) / total;
        let sd = (p_floor * (1.0 - p_floor) / draws as f64).sqrt();
        assert!((floor as f64 / draws as f64 - p_floor).abs() < 5.0 * sd);
    }
}

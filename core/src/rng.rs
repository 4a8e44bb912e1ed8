//! Random number generators.
//!
//! - [`NumpyRandomState`]: numpy's legacy generator (`np.random.seed` / `RandomState`: MT19937
//!   with `init_genrand`, and the masked-rejection bounded integers its `shuffle` uses).
//!   Reproducing this stream exactly is what makes our cell sentences tie-break identically to
//!   the `cell2sentence` package.
//! - [`PythonRandom`]: CPython's `random` module (MT19937 seeded by `init_by_array`, and the
//!   rejection sampling of `random.choice`), so prompt templates are picked as the
//!   `cell2sentence` package picks them after `random.seed(42)`.
//! - [`SplitMix64`]: a small, fast generator for everything else (sampling, demo data, random
//!   initialisations), and [`mix64`], its finaliser, as a 64-bit hash mixer.

const N: usize = 624;
const M: usize = 397;

/// MT19937 in numpy's legacy seeding.
#[derive(Clone)]
pub struct NumpyRandomState {
    mt: [u32; N],
    /// The tempered outputs of the current state, handed out in order.
    out: [u32; N],
    idx: usize,
}

impl NumpyRandomState {
    /// Equivalent of `np.random.seed(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Self {
            mt,
            out: [0; N],
            idx: N,
        }
    }

    /// MT19937 seeded from a key of 32-bit words (`init_by_array`), as CPython seeds its
    /// `random` module.
    pub fn from_key(key: &[u32]) -> Self {
        let mut state = Self::new(19_650_218);
        let mt = &mut state.mt;
        let key = if key.is_empty() { &[0u32][..] } else { key };
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        state
    }

    fn twist(&mut self) {
        #[inline(always)]
        fn step(upper: u32, lower: u32, far: u32) -> u32 {
            let y = (upper & 0x8000_0000) | (lower & 0x7fff_ffff);
            far ^ (y >> 1) ^ ((y & 1).wrapping_neg() & 0x9908_b0df)
        }
        let mt = &mut self.mt;
        // The same recurrence as `mt[k] = step(mt[k], mt[(k+1)%N], mt[(k+M)%N])`, split so that no
        // index wraps inside a loop.
        for k in 0..N - M {
            mt[k] = step(mt[k], mt[k + 1], mt[k + M]);
        }
        for k in N - M..N - 1 {
            mt[k] = step(mt[k], mt[k + 1], mt[k + M - N]);
        }
        mt[N - 1] = step(mt[N - 1], mt[0], mt[M - 1]);
        // Temper the whole block at once (vectorises) instead of one output per call.
        for (o, &x) in self.out.iter_mut().zip(mt.iter()) {
            let mut y = x;
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c_5680;
            y ^= (y << 15) & 0xefc6_0000;
            *o = y ^ (y >> 18);
        }
        self.idx = 0;
    }

    /// Next raw 32-bit output.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            self.twist();
        }
        let y = self.out[self.idx];
        self.idx += 1;
        y
    }

    /// Appends the `n - 1` draws that numpy's legacy `RandomState.shuffle` makes on a 1-D array
    /// of `n` items: for `i` from `n - 1` down to 1, a uniform integer in `[0, i]` by masked
    /// rejection (numpy's `random_interval`). [`apply_shuffle`] then moves items as the shuffle
    /// does, so the sequential part (the stream) and the moves can run on different threads.
    pub fn shuffle_draws(&mut self, n: usize, out: &mut Vec<u32>) {
        if n < 2 {
            return;
        }
        let start = out.len();
        out.resize(start + n - 1, 0);
        let draws = &mut out[start..];
        // `k` is the next draw to fill, for `i = n - 1 - k`. While `i` stays in `[low, high]`
        // the mask is fixed, and each raw output is accepted or rejected without a branch:
        // it is stored at `k` either way, and `k` only moves on when it was accepted.
        let mut k = 0;
        let mut i = (n - 1) as u32;
        while i > 0 {
            if self.idx >= N {
                self.twist();
            }
            let mask = u32::MAX >> i.leading_zeros();
            let low = (mask >> 1) + 1;
            let mut used = 0;
            for &raw in &self.out[self.idx..] {
                let v = raw & mask;
                let accepted = v <= i;
                draws[k] = v;
                k += usize::from(accepted);
                i -= u32::from(accepted);
                used += 1;
                if i < low {
                    break;
                }
            }
            self.idx += used;
        }
    }

    /// In-place shuffle exactly as numpy's legacy `RandomState.shuffle` on a 1-D array.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        let mut draws = Vec::with_capacity(items.len());
        self.shuffle_draws(items.len(), &mut draws);
        apply_shuffle(items, &draws);
    }
}

/// Fisher–Yates from the end with draws from [`NumpyRandomState::shuffle_draws`]: swaps item
/// `i` with item `draws[n - 1 - i]` for `i` from `n - 1` down to 1.
pub fn apply_shuffle<T>(items: &mut [T], draws: &[u32]) {
    debug_assert_eq!(draws.len(), items.len().saturating_sub(1));
    for (i, &j) in (1..items.len()).rev().zip(draws) {
        items.swap(i, j as usize);
    }
}

/// 64-bit mixing function (the SplitMix64 finaliser): a bijection that scrambles all bits.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// CPython's `random.Random` for the calls the `cell2sentence` package makes: `seed(int)` and
/// `choice`.
#[derive(Clone)]
pub struct PythonRandom(NumpyRandomState);

impl PythonRandom {
    /// Equivalent of `random.seed(seed)` for a non-negative integer.
    pub fn new(seed: u64) -> Self {
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        Self(NumpyRandomState::from_key(&key))
    }

    /// `random.getrandbits(k)` for `k` in 1..=32.
    pub fn getrandbits(&mut self, k: u32) -> u32 {
        debug_assert!((1..=32).contains(&k));
        self.0.next_u32() >> (32 - k)
    }

    /// The index `random.choice(seq)` picks in a sequence of length `n` (`n` ≥ 1): `k` bits
    /// per draw, where `k` is `n`'s bit length, drawn again until below `n`.
    pub fn choice_index(&mut self, n: usize) -> usize {
        assert!(n > 0 && n <= u32::MAX as usize, "choice from 1..2^32 items");
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): deterministic, platform-independent, not
/// cryptographic.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.next_f32().max(1e-7);
        let u2 = self.next_f32();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    /// Uniform integer in `0..n` (`0` when `n` is 0; modulo bias below 2^-40 for n < 2^24).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_seed_42_stream() {
        let mut r = NumpyRandomState::new(42);
        assert_eq!(
            [r.next_u32(), r.next_u32(), r.next_u32()],
            [1608637542, 3421126067, 4083286876]
        );
    }

    #[test]
    fn permutation_matches_numpy() {
        let mut r = NumpyRandomState::new(42);
        let mut p: Vec<u32> = (0..10).collect();
        r.shuffle(&mut p);
        assert_eq!(p, [8, 1, 5, 0, 7, 2, 9, 4, 3, 6]);
        let mut r = NumpyRandomState::new(0);
        let mut p: Vec<u32> = (0..1000).collect();
        r.shuffle(&mut p);
        assert_eq!(p[..10], [993, 859, 298, 553, 672, 971, 27, 231, 306, 706]);
    }

    /// numpy's `random_interval` and `shuffle`, one draw at a time.
    fn naive_shuffle(r: &mut NumpyRandomState, items: &mut [u32]) {
        for i in (1..items.len()).rev() {
            let max = i as u32;
            let mask = u32::MAX >> max.leading_zeros();
            let j = loop {
                let v = r.next_u32() & mask;
                if v <= max {
                    break v;
                }
            };
            items.swap(i, j as usize);
        }
    }

    #[test]
    fn batched_draws_match_one_draw_at_a_time() {
        // Lengths around powers of two and past the 624-output block, one stream throughout.
        let lengths = [
            0, 1, 2, 3, 4, 5, 7, 8, 9, 255, 256, 257, 623, 624, 625, 1000, 4097,
        ];
        let (mut fast, mut naive) = (NumpyRandomState::new(7), NumpyRandomState::new(7));
        for _ in 0..3 {
            for &n in &lengths {
                let mut a: Vec<u32> = (0..n).collect();
                let mut b = a.clone();
                fast.shuffle(&mut a);
                naive_shuffle(&mut naive, &mut b);
                assert_eq!(a, b, "n = {n}");
            }
        }
        assert_eq!(fast.next_u32(), naive.next_u32(), "streams stay aligned");
    }

    #[test]
    fn python_random_matches_cpython() {
        // python3 -c "import random; random.seed(42); print([random.choice(range(15)) ...])"
        for (n, picks) in [
            (15, [10, 1, 0, 11, 4, 3, 3, 2]),
            (14, [10, 1, 0, 11, 4, 3, 3, 2]),
            (10, [1, 0, 4, 3, 3, 2, 1, 8]),
        ] {
            let mut r = PythonRandom::new(42);
            let got: Vec<usize> = (0..8).map(|_| r.choice_index(n)).collect();
            assert_eq!(got, picks, "n = {n}");
        }
        // random.seed(s); [random.getrandbits(32) for _ in range(3)]
        let mut r = PythonRandom::new(0);
        let bits: Vec<u32> = (0..3).map(|_| r.getrandbits(32)).collect();
        assert_eq!(bits, [3_626_764_237, 1_654_615_998, 3_255_389_356]);
        let mut r = PythonRandom::new((1 << 40) + 5);
        let bits: Vec<u32> = (0..3).map(|_| r.getrandbits(32)).collect();
        assert_eq!(bits, [2_166_296_868, 2_220_160_828, 1_153_647_273]);
    }

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // First outputs for seed 0 (reference implementation by Vigna).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let mut u = SplitMix64::new(3);
        for _ in 0..1000 {
            let x = u.next_f64();
            assert!((0.0..1.0).contains(&x));
            assert!(u.below(7) < 7);
        }
    }
}

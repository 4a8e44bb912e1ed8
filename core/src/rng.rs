//! numpy's legacy random generator (`np.random.seed` / `RandomState`: MT19937 with
//! `init_genrand`, and the masked-rejection bounded integers its `shuffle` uses).
//!
//! Reproducing this stream exactly is what makes our cell sentences tie-break identically to
//! the `cell2sentence` package.

const N: usize = 624;
const M: usize = 397;

/// MT19937 in numpy's legacy seeding.
#[derive(Clone)]
pub struct NumpyRandomState {
    mt: [u32; N],
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
        Self { mt, idx: N }
    }

    fn twist(&mut self) {
        for k in 0..N {
            let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.idx = 0;
    }

    /// Next raw 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            self.twist();
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Uniform integer in `[0, max]` by masked rejection, as numpy's legacy `random_interval`.
    pub fn random_interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// In-place Fisher–Yates shuffle from the end, as `RandomState.shuffle` on a 1-D array.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.random_interval(i as u32) as usize;
            items.swap(i, j);
        }
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
}

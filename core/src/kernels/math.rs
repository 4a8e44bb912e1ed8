//! Elementwise functions of the CPU forward pass written as straight-line arithmetic, so the
//! compiler vectorises the loops that call them (the C library's `expf` and `erff` are a call
//! per value, which dominated attention and the MLP activation).

/// `eˣ` for `x ≤ 0` (`-∞` gives 0) within 2 ulp. Results below `e⁻⁸⁷` are flushed to zero
/// instead of becoming subnormal. Range reduction `x = n·ln 2 + r` with `ln 2` split in two
/// parts, a degree-6 polynomial for `eʳ` on `|r| ≤ ln 2 / 2` (Cephes' `expf` coefficients), and
/// `2ⁿ` built from its exponent bits. Branch-free and without a float-to-integer conversion
/// (Rust's saturating `as i32` has no vector form: it kept every loop calling this scalar).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // `x·log₂e` plus 1.5·2²³ has no fraction bits left: `n` (as `round_to_integer`) is in its
    // low mantissa bits.
    let shifted = x * std::f32::consts::LOG2_E + ROUNDING_SHIFT;
    let n = shifted - ROUNDING_SHIFT;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2ⁿ for n in -126..=0: the shifted value's bits are 0x4B40_0000 + n, whose low nine bits
    // plus 127 are n + 127, the biased exponent.
    let two_n = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    if x < -87.0 { 0.0 } else { er * two_n }
}

/// 1.5·2²³: a float this large has no fraction bits, so adding it rounds (ties to even).
const ROUNDING_SHIFT: f32 = 12_582_912.0;

/// `x` rounded to the nearest integer (ties to even) for `|x| < 2²²`, without a call to the C
/// library's `roundf` (adding and removing 1.5·2²³ leaves no fraction bits).
#[inline(always)]
pub fn round_to_integer(x: f32) -> f32 {
    (x + ROUNDING_SHIFT) - ROUNDING_SHIFT
}

/// The standard normal CDF `Φ(x) = ½·(1 + erf(x/√2))`, with `1 + erf(z)` from Abramowitz &
/// Stegun 7.1.26 (absolute error of `erf` below 1.5·10⁻⁷): for `z < 0` it is `erfc(|z|)` itself,
/// so no cancellation for negative inputs.
#[inline(always)]
pub fn normal_cdf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erfc = poly * exp_nonpositive(-(a * a));
    let one_plus_erf = if z < 0.0 { erfc } else { 2.0 - erfc };
    0.5 * one_plus_erf
}

/// GELU with the error function, `x·Φ(x)` (`transformers`' `gelu`; see [`normal_cdf`]).
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// The derivative of [`gelu_erf`]: `Φ(x) + x·φ(x)` with `φ(x) = e^(−x²/2)/√(2π)`.
#[inline(always)]
pub fn gelu_erf_derivative(x: f32) -> f32 {
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    normal_cdf(x) + x * FRAC_1_SQRT_2PI * exp_nonpositive(-0.5 * x * x)
}

/// Lanes of the reductions below: independent accumulators the compiler keeps in one vector
/// (call them from a function compiled for wide vectors, see `with_widest_vectors!`).
pub(crate) const LANES: usize = 16;

/// Sum in [`LANES`] independent lanes.
#[inline(always)]
pub(crate) fn sum_lanes(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            lanes[l] += c[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Largest value (NaN ignored, `-∞` for an empty slice) in [`LANES`] independent lanes.
#[inline(always)]
pub(crate) fn max_lanes(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for l in 0..LANES {
            lanes[l] = lanes[l].max(c[l]);
        }
    }
    lanes.iter().fold(tail, |m, &v| m.max(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_within_two_ulp_and_flushes_tiny_values() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let exact = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            worst = worst.max((got - exact).abs() / exact);
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(-86.9).is_normal());
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    /// The exponent bits give exactly `2ⁿ` as an integer conversion would, for every `x` in
    /// the range (every float from -87 to 0 whose `n` differs, and their neighbours).
    #[test]
    fn exp_builds_two_to_the_n_as_an_integer_conversion_would() {
        let mut x = -87.0f32;
        while x <= 0.0 {
            let shifted = x * std::f32::consts::LOG2_E + ROUNDING_SHIFT;
            let n = round_to_integer(x * std::f32::consts::LOG2_E);
            let from_bits = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
            assert_eq!(from_bits, 2f32.powi(n as i32), "x = {x}");
            x += 0.173;
        }
    }

    #[test]
    fn gelu_matches_the_exact_erf_form() {
        // Error relative to the scale of the output (|x|/2 · 2ε of erf, plus f32 rounding).
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let exact = 0.5 * x as f64 * (1.0 + statrs::function::erf::erf(x as f64 / 2f64.sqrt()));
            let got = gelu_erf(x) as f64;
            worst = worst.max((got - exact).abs() / (x.abs() as f64).max(1e-3));
        }
        assert!(worst < 4e-7, "max error relative to |x|: {worst:e}");
        assert_eq!(gelu_erf(0.0), 0.0);
        assert!(gelu_erf(-30.0).abs() < 1e-30);
        assert_eq!(gelu_erf(30.0), 30.0);
        assert!(gelu_erf(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_derivative_matches_a_central_difference_of_the_exact_form() {
        let exact = |x: f64| 0.5 * x * (1.0 + statrs::function::erf::erf(x / 2f64.sqrt()));
        let mut worst = 0.0f64;
        for i in -8_000..=8_000 {
            let x = i as f64 * 1e-3;
            let h = 1e-5;
            let numeric = (exact(x + h) - exact(x - h)) / (2.0 * h);
            worst = worst.max((gelu_erf_derivative(x as f32) as f64 - numeric).abs());
        }
        assert!(worst < 1e-6, "max error {worst:e}");
        assert_eq!(gelu_erf_derivative(-30.0), 0.0);
        assert_eq!(gelu_erf_derivative(30.0), 1.0);
    }
}

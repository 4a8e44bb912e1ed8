//! Statistics for screens: Welch's t-test as scipy's `ttest_ind(equal_var=False)`,
//! Benjamini–Hochberg q-values as statsmodels' `multipletests(method='fdr_bh')`, and z-scores
//! as scipy's `zscore` (population standard deviation). Degenerate input (too few replicates,
//! no variance) gives NaN results, never a panic. Fixtures from `tools/genesets/` prove them.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Result of Welch's t-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchTest {
    /// t statistic of `mean(a) − mean(b)`; NaN when undefined.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom; 1 when undefined, as scipy reports it.
    pub df: f64,
    /// Two-sided p-value; NaN when undefined.
    pub p: f64,
}

/// Arithmetic mean; NaN for an empty slice.
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Variance with `ddof` degrees of freedom removed (two-pass); NaN when `len ≤ ddof`.
pub fn variance(x: &[f64], ddof: usize) -> f64 {
    if x.len() <= ddof {
        return f64::NAN;
    }
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - ddof) as f64
}

/// Welch's unequal-variance t-test of `a` against `b`, as scipy's
/// `ttest_ind(a, b, equal_var=False)`. A group with fewer than two values, or two groups
/// without variance and with equal means, gives NaN `t` and `p`; as in scipy, an undefined `df`
/// is reported as 1 (it cannot matter then), and constant groups with different means give an
/// infinite `t` and `p = 0`.
pub fn welch_t_test(a: &[f64], b: &[f64]) -> WelchTest {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (variance(a, 1) / na, variance(b, 1) / nb);
    let se2 = va + vb;
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let df = if df.is_nan() { 1.0 } else { df };
    let t = (mean(a) - mean(b)) / se2.sqrt();
    let p = match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) if !t.is_nan() => (2.0 * dist.cdf(-t.abs())).min(1.0),
        _ => f64::NAN,
    };
    WelchTest { t, df, p }
}

/// Benjamini–Hochberg adjusted p-values (q), as statsmodels'
/// `multipletests(p, method='fdr_bh')[1]`: `q_(i) = min_{j ≥ i} p_(j)·m / j`, capped at 1, in
/// the input order. A NaN p gets a NaN q and does not count in `m` (as R's `p.adjust`;
/// statsmodels has no NaN handling).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = order.len() as f64;
    let mut q = vec![f64::NAN; p.len()];
    let mut running = f64::INFINITY;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

/// z-scores `(x − mean) / sd` with the population standard deviation, as scipy's
/// `stats.zscore(x)`. Like scipy, a NaN anywhere or a constant input makes every z NaN.
pub fn zscore(x: &[f64]) -> Vec<f64> {
    let m = mean(x);
    let sd = variance(x, 0).sqrt();
    if sd.is_nan() || sd == 0.0 || !m.is_finite() {
        return vec![f64::NAN; x.len()];
    }
    x.iter().map(|v| (v - m) / sd).collect()
}

/// The value whose [`zscore`] among `x` is `z`: mean + z × the population standard deviation;
/// `None` where the z-scores are undefined (no spread, or a non-finite mean).
pub fn value_at_zscore(x: &[f64], z: f64) -> Option<f64> {
    let m = mean(x);
    let sd = variance(x, 0).sqrt();
    (sd.is_finite() && sd > 0.0 && m.is_finite()).then_some(m + z * sd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn fixture() -> Value {
        // Written by tools/genesets/make_fixtures.py (scipy 1.17.1, statsmodels 0.15.0).
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/genesets/stats.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs().max(1e-300)
    }

    #[test]
    fn welch_matches_scipy_including_degenerate_groups() {
        let f = fixture();
        let cases = f["welch"].as_array().unwrap();
        assert_eq!(cases.len(), 9);
        for (k, case) in cases.iter().enumerate() {
            let r = welch_t_test(&floats(&case["a"]), &floats(&case["b"]));
            for (name, got) in [("t", r.t), ("df", r.df), ("p", r.p)] {
                match case[name].as_f64() {
                    Some(want) => {
                        assert!(close(got, want, 1e-10), "case {k} {name}: {got} vs {want}")
                    }
                    None => assert!(got.is_nan(), "case {k} {name}: {got}, scipy gives NaN"),
                }
            }
        }
    }

    #[test]
    fn bh_and_zscore_match_statsmodels_and_scipy() {
        let f = fixture();
        let q = benjamini_hochberg(&floats(&f["bh"]["p"]));
        for (got, want) in q.iter().zip(floats(&f["bh"]["q"])) {
            assert!(close(*got, want, 1e-12), "{got} vs {want}");
        }
        let z = zscore(&floats(&f["zscore"]["x"]));
        for (got, want) in z.iter().zip(floats(&f["zscore"]["z"])) {
            assert!(close(*got, want, 1e-12), "{got} vs {want}");
        }
    }

    #[test]
    fn nan_inputs_give_nan_results() {
        let q = benjamini_hochberg(&[0.01, f64::NAN, 0.04]);
        assert!(q[1].is_nan());
        assert_eq!((q[0], q[2]), (0.02, 0.04));
        assert!(zscore(&[1.0, 1.0]).iter().all(|z| z.is_nan()));
        assert!(zscore(&[1.0, f64::NAN, 2.0]).iter().all(|z| z.is_nan()));
        assert!(welch_t_test(&[], &[1.0, 2.0]).p.is_nan());
        let apart = welch_t_test(&[1.0, 1.0], &[2.0, 2.0]);
        assert_eq!((apart.t, apart.df, apart.p), (f64::NEG_INFINITY, 1.0, 0.0));
        assert!(welch_t_test(&[1.0, f64::NAN], &[1.0, 2.0]).p.is_nan());
    }
    #[test]
    fn value_at_zscore_inverts_zscore() {
        let x = [1.0, 2.0, 4.0, 9.0];
        let z = zscore(&x);
        for (v, z) in x.iter().zip(&z) {
            assert!((value_at_zscore(&x, *z).unwrap() - v).abs() < 1e-12);
        }
        assert_eq!(value_at_zscore(&[3.0, 3.0], 1.0), None);
    }
}

//! Statistics of a finished screen, per perturbation, context and gene set: the mean score, the
//! effect against the control, the z-score of the effect across the library, Welch's t-test of
//! the units' scores against the control's with Benjamini–Hochberg q across the library, hit
//! calls; and context selectivity (effect in A minus effect in B) with its own test.
//!
//! The control is each context's unperturbed sample profiles scored the same way (the default),
//! or a named library perturbation's units in that context.

use super::spec::ControlSpec;
use super::store::{Store, UnitResult};
use crate::error::{Error, Result};
use crate::statistics::{benjamini_hochberg, mean, welch_t_test, zscore};
use std::collections::BTreeMap;

/// Thresholds of a hit: `z ≥ min_z` and `p < max_p` (the paper called hits at a score above
/// 0.75 with p < 0.05; here the score is the effect's z across the library).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HitThresholds {
    /// Smallest z of the effect across the library.
    pub min_z: f64,
    /// p must be below this.
    pub max_p: f64,
}

impl Default for HitThresholds {
    fn default() -> Self {
        Self {
            min_z: 0.75,
            max_p: 0.05,
        }
    }
}

/// One perturbation in one context for one gene set.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectRow {
    /// Perturbation name.
    pub perturbation: String,
    /// Context name.
    pub context: String,
    /// Gene set name.
    pub set: String,
    /// Units (samples × replicates).
    pub n: usize,
    /// Mean score of the units.
    pub mean: f64,
    /// Mean score of the control.
    pub control_mean: f64,
    /// `mean − control_mean`.
    pub effect: f64,
    /// z of the effect across the library (same context and set; population sd).
    pub z: f64,
    /// Welch's t of the units against the control.
    pub t: f64,
    /// Its two-sided p.
    pub p: f64,
    /// BH q across the library (same context and set).
    pub q: f64,
    /// Whether the thresholds call it a hit.
    pub hit: bool,
}

/// Context selectivity of one perturbation for one set: effect in `context_a` minus effect in
/// `context_b`, tested by Welch's t on the control-centred unit scores of the two contexts.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectivityRow {
    /// Perturbation name.
    pub perturbation: String,
    /// Gene set name.
    pub set: String,
    /// First context.
    pub context_a: String,
    /// Second context.
    pub context_b: String,
    /// `effect_a − effect_b`.
    pub selectivity: f64,
    /// Welch's t.
    pub t: f64,
    /// Its two-sided p.
    pub p: f64,
    /// BH q across the library (same pair and set).
    pub q: f64,
}

/// The report of a screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// One row per perturbation × context × set (library, context, set order).
    pub effects: Vec<EffectRow>,
    /// One row per perturbation × set × pair of contexts (spec order, `a` before `b`).
    pub selectivity: Vec<SelectivityRow>,
}

/// Computes the report of a store whose units are all finished.
pub fn report(store: &Store, thresholds: HitThresholds) -> Result<Report> {
    let manifest = store.manifest();
    let results = store.results()?;
    let controls = match &manifest.spec.control {
        ControlSpec::Unperturbed => Some(store.controls()?.ok_or_else(|| {
            Error::InvalidData(format!(
                "{} has no controls.parquet (the unperturbed controls' scores); run or merge \
                 the screen into it again",
                store.dir().display()
            ))
        })?),
        ControlSpec::Perturbation { .. } => None,
    };
    let contexts: Vec<String> = manifest
        .spec
        .contexts
        .iter()
        .map(|c| c.name.clone())
        .collect();
    // scores[(perturbation, context)] = per set, the units' scores.
    let mut scores: BTreeMap<(&str, &str), Vec<Vec<f64>>> = BTreeMap::new();
    for r in &results {
        let entry = scores
            .entry((r.unit.perturbation.as_str(), r.unit.context.as_str()))
            .or_insert_with(|| vec![Vec::new(); manifest.sets.len()]);
        push_scores(entry, r);
    }
    let missing: Vec<String> = manifest
        .perturbations
        .iter()
        .flat_map(|p| contexts.iter().map(move |c| (p, c)))
        .filter(|(p, c)| !scores.contains_key(&(p.as_str(), c.as_str())))
        .map(|(p, c)| format!("{p} × {c}"))
        .take(5)
        .collect();
    if !missing.is_empty() {
        return Err(Error::InvalidData(format!(
            "{} is not finished: no results yet for {}…; finish the run (or merge every shard) \
             first",
            store.dir().display(),
            missing.join(", ")
        )));
    }
    let control_scores = |context: &str, set: usize| -> Vec<f64> {
        match (&controls, &manifest.spec.control) {
            (Some(c), _) => c
                .iter()
                .filter(|r| r.context == context)
                .map(|r| r.scores[set])
                .collect(),
            (None, ControlSpec::Perturbation { name }) => {
                scores[&(name.as_str(), context)][set].clone()
            }
            (None, ControlSpec::Unperturbed) => unreachable!("controls were read above"),
        }
    };
    let lib = &manifest.perturbations;
    let mut effects = Vec::new();
    for (ci, context) in contexts.iter().enumerate() {
        for (si, set) in manifest.sets.iter().enumerate() {
            let ctrl = control_scores(context, si);
            let ctrl_mean = mean(&ctrl);
            let mut rows: Vec<EffectRow> = lib
                .iter()
                .map(|p| {
                    let x = &scores[&(p.as_str(), context.as_str())][si];
                    let test = welch_t_test(x, &ctrl);
                    let m = mean(x);
                    EffectRow {
                        perturbation: p.clone(),
                        context: context.clone(),
                        set: set.clone(),
                        n: x.len(),
                        mean: m,
                        control_mean: ctrl_mean,
                        effect: m - ctrl_mean,
                        z: f64::NAN,
                        t: test.t,
                        p: test.p,
                        q: f64::NAN,
                        hit: false,
                    }
                })
                .collect();
            let z = zscore(&rows.iter().map(|r| r.effect).collect::<Vec<_>>());
            let q = benjamini_hochberg(&rows.iter().map(|r| r.p).collect::<Vec<_>>());
            for (k, r) in rows.iter_mut().enumerate() {
                r.z = z[k];
                r.q = q[k];
                r.hit = r.z >= thresholds.min_z && r.p < thresholds.max_p;
            }
            effects.push((ci, si, rows));
        }
    }
    // Library order, then context, then set.
    let mut ordered = Vec::with_capacity(lib.len() * effects.len());
    for k in 0..lib.len() {
        for (_, _, rows) in &effects {
            ordered.push(rows[k].clone());
        }
    }
    let mut selectivity = Vec::new();
    for a in 0..contexts.len() {
        for b in a + 1..contexts.len() {
            for (si, set) in manifest.sets.iter().enumerate() {
                let (ca, cb) = (
                    control_scores(&contexts[a], si),
                    control_scores(&contexts[b], si),
                );
                let (ma, mb) = (mean(&ca), mean(&cb));
                let mut rows: Vec<SelectivityRow> = lib
                    .iter()
                    .map(|p| {
                        let xa: Vec<f64> = scores[&(p.as_str(), contexts[a].as_str())][si]
                            .iter()
                            .map(|v| v - ma)
                            .collect();
                        let xb: Vec<f64> = scores[&(p.as_str(), contexts[b].as_str())][si]
                            .iter()
                            .map(|v| v - mb)
                            .collect();
                        let test = welch_t_test(&xa, &xb);
                        SelectivityRow {
                            perturbation: p.clone(),
                            set: set.clone(),
                            context_a: contexts[a].clone(),
                            context_b: contexts[b].clone(),
                            selectivity: mean(&xa) - mean(&xb),
                            t: test.t,
                            p: test.p,
                            q: f64::NAN,
                        }
                    })
                    .collect();
                let q = benjamini_hochberg(&rows.iter().map(|r| r.p).collect::<Vec<_>>());
                rows.iter_mut().zip(q).for_each(|(r, q)| r.q = q);
                selectivity.extend(rows);
            }
        }
    }
    Ok(Report {
        effects: ordered,
        selectivity,
    })
}

fn push_scores(entry: &mut [Vec<f64>], r: &UnitResult) {
    for (col, &v) in entry.iter_mut().zip(&r.scores) {
        col.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screen::spec::ScreenSpec;
    use crate::screen::store::ControlResult;
    use crate::screen::units::Unit;

    /// Two contexts, three drugs, one set, 2 samples × 2 replicates; the unperturbed controls
    /// score 1 and 3 in context A and 0 and 0 in context B.
    fn store(dir: &std::path::Path) -> Store {
        std::fs::write(dir.join("lib.txt"), "up\nflat\ndown\n").unwrap();
        let text = "[[context]]\nname = \"A\"\nh5ad = \"a.h5ad\"\nsamples = 2\nreplicates = 2\n\
                    [[context]]\nname = \"B\"\nh5ad = \"b.h5ad\"\nsamples = 2\nreplicates = 2\n\
                    [library]\npath = \"lib.txt\"\n[model]\ndir = \"m\"\n\
                    [genesets]\ngmt = \"g.gmt\"\nsets = [\"S\"]\n";
        let spec = ScreenSpec::parse(text, dir).unwrap();
        let store = Store::create_or_open(&dir.join("out"), &spec).unwrap();
        let mut rows = Vec::new();
        // up: A scores 10, 11, 12, 13 (selective for A); B scores 1, 2, 1, 2.
        // flat: both contexts score around their control; down: below it in A.
        let values = [
            ("up", "A", [10.0, 11.0, 12.0, 13.0]),
            ("up", "B", [1.0, 2.0, 1.0, 2.0]),
            ("flat", "A", [1.0, 3.0, 2.0, 2.0]),
            ("flat", "B", [0.5, -0.5, 0.0, 0.0]),
            ("down", "A", [-5.0, -4.0, -6.0, -5.0]),
            ("down", "B", [0.0, 1.0, -1.0, 0.0]),
        ];
        for (p, c, v) in values {
            for (k, x) in v.iter().enumerate() {
                rows.push(UnitResult {
                    unit: Unit {
                        perturbation: p.into(),
                        context: c.into(),
                        sample: (k / 2) as u32,
                        replicate: (k % 2) as u32,
                    },
                    generated: String::new(),
                    sentence: String::new(),
                    scores: vec![*x],
                });
            }
        }
        store.append(&rows).unwrap();
        let ctl = |c: &str, s: u32, x: f64| ControlResult {
            context: c.into(),
            sample: s,
            sentence: String::new(),
            scores: vec![x],
        };
        store
            .write_controls(&[
                ctl("A", 0, 1.0),
                ctl("A", 1, 3.0),
                ctl("B", 0, 0.0),
                ctl("B", 1, 0.0),
            ])
            .unwrap();
        store
    }

    #[test]
    fn effects_tests_and_hits() {
        let tmp = tempfile::tempdir().unwrap();
        let r = report(&store(tmp.path()), HitThresholds::default()).unwrap();
        assert_eq!(r.effects.len(), 3 * 2);
        let row = |p: &str, c: &str| {
            r.effects
                .iter()
                .find(|e| e.perturbation == p && e.context == c)
                .unwrap()
        };
        let up_a = row("up", "A");
        assert_eq!(
            (up_a.n, up_a.mean, up_a.control_mean, up_a.effect),
            (4, 11.5, 2.0, 9.5)
        );
        let w = welch_t_test(&[10.0, 11.0, 12.0, 13.0], &[1.0, 3.0]);
        assert_eq!((up_a.t, up_a.p), (w.t, w.p));
        assert_eq!(row("down", "A").effect, -7.0);
        // z across the library in context A: effects 9.5, 0, -7.
        let z = zscore(&[9.5, 0.0, -7.0]);
        assert_eq!(
            [row("up", "A").z, row("flat", "A").z, row("down", "A").z],
            [z[0], z[1], z[2]]
        );
        let q = benjamini_hochberg(&[row("up", "A").p, row("flat", "A").p, row("down", "A").p]);
        assert_eq!(row("flat", "A").q, q[1]);
        // Control B has no variance; the units' variance still defines the test.
        assert_eq!(row("up", "B").effect, 1.5);
        assert!(row("up", "A").hit, "{:?}", row("up", "A"));
        assert!(!row("flat", "A").hit && !row("down", "A").hit);
        // Library order, then contexts.
        let order: Vec<(&str, &str)> = r
            .effects
            .iter()
            .map(|e| (e.perturbation.as_str(), e.context.as_str()))
            .collect();
        assert_eq!(order[..3], [("up", "A"), ("up", "B"), ("flat", "A")]);
        let strict = report(
            &Store::open(&tmp.path().join("out")).unwrap(),
            HitThresholds {
                min_z: 2.0,
                max_p: 0.05,
            },
        )
        .unwrap();
        assert!(strict.effects.iter().all(|e| !e.hit));
    }

    #[test]
    fn selectivity_compares_control_centred_scores() {
        let tmp = tempfile::tempdir().unwrap();
        let r = report(&store(tmp.path()), HitThresholds::default()).unwrap();
        assert_eq!(r.selectivity.len(), 3);
        let up = &r.selectivity[0];
        assert_eq!((up.context_a.as_str(), up.context_b.as_str()), ("A", "B"));
        assert_eq!(up.selectivity, 9.5 - 1.5);
        let w = welch_t_test(&[8.0, 9.0, 10.0, 11.0], &[1.0, 2.0, 1.0, 2.0]);
        assert!((up.t - w.t).abs() < 1e-12 && (up.p - w.p).abs() < 1e-12);
        let q = benjamini_hochberg(&r.selectivity.iter().map(|s| s.p).collect::<Vec<_>>());
        assert_eq!(r.selectivity.iter().map(|s| s.q).collect::<Vec<_>>(), q);
    }

    #[test]
    fn unfinished_screens_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("lib.txt"), "x\ny\n").unwrap();
        let text = "[[context]]\nname = \"A\"\nh5ad = \"a.h5ad\"\nsamples = 1\n\
                    [library]\npath = \"lib.txt\"\n[model]\ndir = \"m\"\n\
                    [genesets]\ngmt = \"g.gmt\"\nsets = [\"S\"]\n";
        let spec = ScreenSpec::parse(text, tmp.path()).unwrap();
        let store = Store::create_or_open(&tmp.path().join("o"), &spec).unwrap();
        let e = report(&store, HitThresholds::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no controls.parquet"), "{e}");
        store
            .write_controls(&[ControlResult {
                context: "A".into(),
                sample: 0,
                sentence: String::new(),
                scores: vec![1.0],
            }])
            .unwrap();
        let e = report(&store, HitThresholds::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not finished: no results yet for x × A, y × A"),
            "{e}"
        );
    }
}

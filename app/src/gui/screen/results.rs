//! A screen's results as the panel holds them: the report (effects and selectivity), the units'
//! scores per perturbation and context (for the per-drug detail), and the view state shared by
//! the volcano, the scatter, the detail and the table: thresholds, the shown context and set,
//! and the selected perturbation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use c2s_core::screen::genes::{TopGenes, top_genes_of};
use c2s_core::screen::report::{EffectRow, HitThresholds, Report, report};
use c2s_core::screen::store::Store;
use c2s_core::statistics::value_at_zscore;

/// One unit's scores: its sample, replicate and one score per set.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitScores {
    /// Sample number in its context.
    pub sample: u32,
    /// Replicate number.
    pub replicate: u32,
    /// One score per set (the report's set order).
    pub scores: Vec<f64>,
}

/// A finished screen, read from its folder.
#[derive(Debug, Clone)]
pub struct ScreenResults {
    /// The folder.
    pub dir: PathBuf,
    /// Context names, in spec order.
    pub contexts: Vec<String>,
    /// Scored set names.
    pub sets: Vec<String>,
    /// The report; hit flags follow [`ResultsView::thresholds`].
    pub report: Report,
    /// Units' scores by (perturbation, context).
    pub units: BTreeMap<(String, String), Vec<UnitScores>>,
    /// The top predicted up and down genes by (perturbation, context), against the control.
    pub genes: BTreeMap<(String, String), TopGenes>,
}

/// Genes per direction in the detail's top-gene lists.
pub const TOP_GENES: usize = 10;

impl ScreenResults {
    /// Reads the report and the units of a complete store.
    pub fn load(store: &Store) -> c2s_core::Result<Self> {
        let report = report(store, HitThresholds::default())?;
        let results = store.results()?;
        let controls = store.controls()?.unwrap_or_default();
        let manifest = store.manifest();
        let genes = top_genes_of(&results, &controls, &manifest.spec.control, TOP_GENES);
        let mut units: BTreeMap<(String, String), Vec<UnitScores>> = BTreeMap::new();
        for r in results {
            units
                .entry((r.unit.perturbation, r.unit.context))
                .or_default()
                .push(UnitScores {
                    sample: r.unit.sample,
                    replicate: r.unit.replicate,
                    scores: r.scores,
                });
        }
        Ok(Self {
            dir: store.dir().to_path_buf(),
            contexts: manifest
                .spec
                .contexts
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            sets: manifest.sets.clone(),
            report,
            units,
            genes,
        })
    }

    /// Calls hits again with `t` (`z ≥ min_z` and `p < max_p`, as the report does).
    pub fn apply_thresholds(&mut self, t: HitThresholds) {
        for r in &mut self.report.effects {
            r.hit = r.z >= t.min_z && r.p < t.max_p;
        }
    }

    /// The effect rows of one context and set, in library order.
    pub fn effects(&self, context: &str, set: &str) -> Vec<&EffectRow> {
        self.report
            .effects
            .iter()
            .filter(|r| r.context == context && r.set == set)
            .collect()
    }

    /// The effect whose z is `z` in one context and set: `mean + z · sd` of the library's
    /// effects (population sd, as the report's z). `None` when z is undefined there.
    pub fn effect_at_z(&self, context: &str, set: &str, z: f64) -> Option<f64> {
        let effects: Vec<f64> = self
            .effects(context, set)
            .iter()
            .map(|r| r.effect)
            .collect();
        value_at_zscore(&effects, z)
    }
}

/// What the results view shows and which perturbation is selected.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsView {
    /// Hit thresholds (sliders; drawn on the volcano).
    pub thresholds: HitThresholds,
    /// Shown context (index into [`ScreenResults::contexts`]).
    pub context: usize,
    /// Second context of the scatter.
    pub other: usize,
    /// Shown set (index into [`ScreenResults::sets`]).
    pub set: usize,
    /// The selected perturbation.
    pub selected: Option<String>,
}

impl Default for ResultsView {
    fn default() -> Self {
        Self {
            thresholds: HitThresholds::default(),
            context: 0,
            other: 1,
            set: 0,
            selected: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p: &str, effect: f64, z: f64, pv: f64) -> EffectRow {
        EffectRow {
            perturbation: p.into(),
            context: "A".into(),
            set: "S".into(),
            n: 2,
            mean: effect,
            control_mean: 0.0,
            effect,
            z,
            t: 0.0,
            p: pv,
            q: pv,
            hit: false,
        }
    }

    fn results(rows: Vec<EffectRow>) -> ScreenResults {
        ScreenResults {
            dir: PathBuf::new(),
            contexts: vec!["A".into()],
            sets: vec!["S".into()],
            report: Report {
                effects: rows,
                selectivity: Vec::new(),
            },
            units: BTreeMap::new(),
            genes: BTreeMap::new(),
        }
    }

    #[test]
    fn thresholds_call_hits_and_map_z_to_an_effect() {
        let mut r = results(vec![
            row("a", 3.0, 1.2, 0.01),
            row("b", 1.0, -1.2, 0.01),
            row("c", 2.0, 0.0, 0.2),
        ]);
        r.apply_thresholds(HitThresholds {
            min_z: 0.75,
            max_p: 0.05,
        });
        let hits: Vec<bool> = r.report.effects.iter().map(|e| e.hit).collect();
        assert_eq!(hits, [true, false, false]);
        r.apply_thresholds(HitThresholds {
            min_z: -2.0,
            max_p: 0.5,
        });
        assert!(r.report.effects.iter().all(|e| e.hit));
        // Effects 3, 1, 2: mean 2, population sd sqrt(2/3).
        let at = r.effect_at_z("A", "S", 1.0).unwrap();
        assert!((at - (2.0 + (2.0f64 / 3.0).sqrt())).abs() < 1e-12);
        assert_eq!(r.effect_at_z("B", "S", 1.0), None);
    }
}

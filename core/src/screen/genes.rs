//! The genes a perturbation is predicted to move in a context: each gene's mean *rank score* in
//! the perturbation's predicted sentences minus its mean rank score in the control sentences
//! (the context's unperturbed samples, or the control perturbation's predictions).
//!
//! A gene at 0-based position `i` of an `n`-gene sentence has rank score `(n − i) / n` (1 for
//! the first gene, `1/n` for the last); a gene the sentence does not name scores 0. Scores are
//! relative to each sentence's length, so a predicted sentence and a control sentence of
//! different lengths compare. A positive shift means the model ranks the gene higher after the
//! perturbation ("up"), a negative one lower ("down").

use super::spec::ControlSpec;
use super::store::{ControlResult, Store, UnitResult};
use crate::error::Result;
use std::collections::{BTreeMap, HashMap};

/// One gene and its shift in mean rank score (perturbed − control).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneShift {
    /// Gene name, as the sentences spell it.
    pub gene: String,
    /// Mean rank score in the predictions minus in the controls, in [−1, 1].
    pub shift: f64,
}

/// The genes moved most, each list strongest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopGenes {
    /// Largest positive shifts.
    pub up: Vec<GeneShift>,
    /// Largest negative shifts.
    pub down: Vec<GeneShift>,
}

/// Mean rank score of every gene named by any of `sentences` (space-separated gene names).
fn mean_rank_scores<'a>(sentences: &[&'a str]) -> HashMap<&'a str, f64> {
    let mut sums: HashMap<&str, f64> = HashMap::new();
    for s in sentences {
        let genes: Vec<&str> = s.split_whitespace().collect();
        let n = genes.len() as f64;
        for (i, g) in genes.into_iter().enumerate() {
            *sums.entry(g).or_default() += (n - i as f64) / n;
        }
    }
    let count = sentences.len().max(1) as f64;
    sums.values_mut().for_each(|v| *v /= count);
    sums
}

/// The `n` genes moved most up and down by `predicted` relative to `control`. Ties are broken
/// by gene name, so the lists are deterministic; genes with no shift are in neither list.
pub fn top_genes(predicted: &[&str], control: &[&str], n: usize) -> TopGenes {
    let pred = mean_rank_scores(predicted);
    let ctrl = mean_rank_scores(control);
    let mut shifts: Vec<GeneShift> = pred
        .keys()
        .chain(ctrl.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|g| GeneShift {
            gene: g.to_string(),
            shift: pred.get(g).copied().unwrap_or(0.0) - ctrl.get(g).copied().unwrap_or(0.0),
        })
        .filter(|s| s.shift != 0.0)
        .collect();
    shifts.sort_by(|a, b| {
        b.shift
            .total_cmp(&a.shift)
            .then_with(|| a.gene.cmp(&b.gene))
    });
    let up = shifts
        .iter()
        .take_while(|s| s.shift > 0.0)
        .take(n)
        .cloned()
        .collect();
    let down = shifts
        .iter()
        .rev()
        .take_while(|s| s.shift < 0.0)
        .take(n)
        .cloned()
        .collect();
    TopGenes { up, down }
}

/// The top `n` up and down genes of every (perturbation, context) of a finished store, against
/// the spec's control (see [`top_genes_of`]).
pub fn store_top_genes(store: &Store, n: usize) -> Result<BTreeMap<(String, String), TopGenes>> {
    let controls = store.controls()?.unwrap_or_default();
    Ok(top_genes_of(
        &store.results()?,
        &controls,
        &store.manifest().spec.control,
        n,
    ))
}

/// The top `n` up and down genes of every (perturbation, context) among `results`, against
/// `control`: the context's unperturbed `controls`, or the control perturbation's own
/// predictions (whose entry then compares it with itself and is empty).
pub fn top_genes_of(
    results: &[UnitResult],
    controls: &[ControlResult],
    control: &ControlSpec,
    n: usize,
) -> BTreeMap<(String, String), TopGenes> {
    let mut predicted: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for r in results {
        predicted
            .entry((r.unit.perturbation.as_str(), r.unit.context.as_str()))
            .or_default()
            .push(r.sentence.as_str());
    }
    let mut reference: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    match control {
        ControlSpec::Unperturbed => {
            for c in controls {
                reference
                    .entry(c.context.as_str())
                    .or_default()
                    .push(c.sentence.as_str());
            }
        }
        ControlSpec::Perturbation { name } => {
            for ((p, c), sentences) in &predicted {
                if p == name {
                    reference.insert(c, sentences.clone());
                }
            }
        }
    }
    predicted
        .iter()
        .map(|(&(p, c), sentences)| {
            let ctrl = reference.get(c).map(Vec::as_slice).unwrap_or_default();
            (
                (p.to_string(), c.to_string()),
                top_genes(sentences, ctrl, n),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_scores_are_relative_to_sentence_length() {
        let m = mean_rank_scores(&["A B", "B C D E"]);
        // A: (1 + 0) / 2; B: (1/2 + 1) / 2; E: (0 + 1/4) / 2.
        assert_eq!(m["A"], 0.5);
        assert_eq!(m["B"], 0.75);
        assert_eq!(m["E"], 0.125);
    }

    #[test]
    fn genes_moved_up_and_down_are_ranked_by_shift() {
        // Control: A first, then B, C, D. Prediction: D first, A dropped.
        let t = top_genes(&["D B C"], &["A B C D"], 2);
        let names = |v: &[GeneShift]| v.iter().map(|s| s.gene.clone()).collect::<Vec<_>>();
        // D: 1 − 1/4 = 0.75 up; B: 2/3 − 3/4 = −1/12; C: 1/3 − 1/2 = −1/6; A: −1.
        assert_eq!(names(&t.up), ["D"]);
        assert!((t.up[0].shift - 0.75).abs() < 1e-12);
        assert_eq!(names(&t.down), ["A", "C"]);
        assert!((t.down[1].shift + 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn identical_sentences_move_nothing() {
        let t = top_genes(&["A B C", "A B C"], &["A B C"], 5);
        assert_eq!(t, TopGenes::default());
    }

    #[test]
    fn no_controls_makes_every_named_gene_up() {
        let t = top_genes(&["A B"], &[], 5);
        assert_eq!(t.up.len(), 2);
        assert!(t.down.is_empty());
    }
}

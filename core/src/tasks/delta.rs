//! Delta sentences: a perturbation's effect written as two gene lists, the genes that rise most
//! and the genes that fall most against the control (`Up: A B C. Down: D E F.`), the output
//! mode of the C2S-Scale screen (paper §4.9). A model trained on them writes short outputs; a
//! log-linear model fitted on the training pairs, `ln |Δ| = intercept + slope · ln rank` for
//! each direction, turns a predicted list back into expression changes, which are added to the
//! control profile (clipped at 0) to give the predicted perturbed profile.
//!
//! Changes are differences of the expression as the sentences were built from (the C2S
//! preprocessing's log10 scale by default), so a fit applies to data preprocessed the same
//! way.

use crate::error::{Error, Result};
use crate::io::atomic::write_atomically;
use crate::tasks::postprocess::GeneVocab;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// The file a delta fine-tuning run writes its fit to, beside the adapter.
pub const FIT_FILE: &str = "delta_fit.json";

const FORMAT: &str = "c2s-studio-delta-fit";

/// A delta sentence: the genes that rise, largest rise first, and those that fall, largest
/// fall first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaSentence {
    /// Rising genes, largest rise first.
    pub up: Vec<String>,
    /// Falling genes, largest fall first.
    pub down: Vec<String>,
}

impl DeltaSentence {
    /// The text a model learns: `Up: A B C. Down: D E F.` (an empty list is written as
    /// nothing after its marker).
    pub fn text(&self) -> String {
        format!("Up: {}. Down: {}.", self.up.join(" "), self.down.join(" "))
    }

    /// Reads a generated delta sentence leniently: the words after `up:` (up to `down:`) and
    /// after `down:`, in any case, separated by spaces, commas or semicolons, with periods
    /// dropped; only genes of `vocab` count (upper-cased), each once, in the first list that
    /// names it. A list whose marker is missing is empty.
    pub fn parse(text: &str, vocab: &GeneVocab) -> Self {
        let upper = text.to_uppercase();
        let up_at = upper.find("UP:");
        let down_at = upper.find("DOWN:");
        let up_text = segment(&upper, up_at.map(|s| s + 3), down_at);
        let down_text = segment(&upper, down_at.map(|s| s + 5), up_at);
        let mut seen = HashSet::new();
        let mut words = |text: &str| -> Vec<String> {
            text.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .map(|w| w.trim_matches('.'))
                .filter(|w| vocab.column(w).is_some() && seen.insert(w.to_string()))
                .map(String::from)
                .collect()
        };
        let up = words(up_text);
        let down = words(down_text);
        Self { up, down }
    }
}

/// `text[from..]` up to `end` when `end` lies after `from`, else to the end; empty without
/// `from`.
fn segment(text: &str, from: Option<usize>, end: Option<usize>) -> &str {
    match from {
        Some(from) => {
            let to = end.filter(|&e| e >= from).unwrap_or(text.len());
            &text[from..to]
        }
        None => "",
    }
}

/// The changes from a control profile to a perturbed one: the `n` largest rises and the `n`
/// largest falls, as (column, change) pairs, largest first (ties by column).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Rises: positive changes, largest first.
    pub up: Vec<(usize, f32)>,
    /// Falls: negative changes, most negative first.
    pub down: Vec<(usize, f32)>,
}

impl Changes {
    /// The `n` largest rises and falls from `control` to `perturbed` (dense, same columns).
    pub fn between(control: &[f32], perturbed: &[f32], n: usize) -> Self {
        let diff: Vec<(usize, f32)> = control
            .iter()
            .zip(perturbed)
            .map(|(c, p)| p - c)
            .enumerate()
            .filter(|(_, d)| d.is_finite() && *d != 0.0)
            .collect();
        let mut up: Vec<(usize, f32)> = diff.iter().copied().filter(|(_, d)| *d > 0.0).collect();
        let mut down: Vec<(usize, f32)> = diff.into_iter().filter(|(_, d)| *d < 0.0).collect();
        up.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        down.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        up.truncate(n);
        down.truncate(n);
        Self { up, down }
    }

    /// The delta sentence of these changes, with `genes` naming the columns.
    pub fn sentence(&self, genes: &[String]) -> DeltaSentence {
        let names = |list: &[(usize, f32)]| list.iter().map(|&(c, _)| genes[c].clone()).collect();
        DeltaSentence {
            up: names(&self.up),
            down: names(&self.down),
        }
    }
}

/// `|Δ| = exp(intercept + slope · ln rank)` for rank 1, 2, ...
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogLinear {
    /// `ln |Δ|` at rank 1.
    pub intercept: f64,
    /// Change of `ln |Δ|` per unit of `ln rank` (negative: later ranks change less).
    pub slope: f64,
}

impl LogLinear {
    /// The size of the change at `rank` (1-based).
    pub fn at(&self, rank: usize) -> f64 {
        (self.intercept + self.slope * (rank.max(1) as f64).ln()).exp()
    }

    /// Least squares of `ln |Δ|` on `ln rank` over `points` (rank, |Δ| > 0); one distinct rank
    /// gives a flat line at the mean. None without points.
    fn fit(points: &[(usize, f64)]) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        let n = points.len() as f64;
        let xy: Vec<(f64, f64)> = points
            .iter()
            .map(|&(r, d)| ((r as f64).ln(), d.ln()))
            .collect();
        let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
        let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Some(Self {
            intercept: my - slope * mx,
            slope,
        })
    }
}

/// The fitted rank → change model of a delta run, saved as [`FIT_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaFit {
    /// Always `c2s-studio-delta-fit`.
    pub format: String,
    /// Layout version (1).
    pub version: u32,
    /// Genes per list in the training responses.
    pub genes_per_list: usize,
    /// Training pairs the fit saw.
    pub pairs: usize,
    /// Rises by rank.
    pub up: LogLinear,
    /// Falls (sizes) by rank.
    pub down: LogLinear,
}

/// Collects the ranked changes of training pairs for a [`DeltaFit`].
#[derive(Debug, Clone, Default)]
pub struct DeltaFitter {
    up: Vec<(usize, f64)>,
    down: Vec<(usize, f64)>,
    pairs: usize,
}

impl DeltaFitter {
    /// Adds one pair's changes.
    pub fn add(&mut self, changes: &Changes) {
        self.pairs += 1;
        let sizes = |list: &[(usize, f32)]| {
            list.iter()
                .enumerate()
                .map(|(i, &(_, d))| (i + 1, f64::from(d.abs())))
                .collect::<Vec<_>>()
        };
        self.up.extend(sizes(&changes.up));
        self.down.extend(sizes(&changes.down));
    }

    /// The fit; an error when no pair rose or no pair fell (nothing to fit a direction on).
    pub fn finish(&self, genes_per_list: usize) -> Result<DeltaFit> {
        let fit = |points: &[(usize, f64)], what: &str| {
            LogLinear::fit(points).ok_or_else(|| {
                Error::InvalidData(format!(
                    "no gene {what} between a perturbed cell and its control in {} pairs, so \
                     there is nothing to fit delta sentences on; check the perturbation and \
                     control values",
                    self.pairs
                ))
            })
        };
        Ok(DeltaFit {
            format: FORMAT.into(),
            version: 1,
            genes_per_list,
            pairs: self.pairs,
            up: fit(&self.up, "rose")?,
            down: fit(&self.down, "fell")?,
        })
    }
}

impl DeltaFit {
    /// Adds the changes of `delta` to `profile` (dense over the columns `vocab` names) by
    /// rank, then clips at 0.
    pub fn apply(&self, profile: &mut [f32], delta: &DeltaSentence, vocab: &GeneVocab) {
        let mut shift = |genes: &[String], line: &LogLinear, sign: f64| {
            for (i, g) in genes.iter().enumerate() {
                if let Some(c) = vocab.column(&g.to_uppercase()) {
                    profile[c] = (f64::from(profile[c]) + sign * line.at(i + 1)) as f32;
                }
            }
        };
        shift(&delta.up, &self.up, 1.0);
        shift(&delta.down, &self.down, -1.0);
        for v in profile.iter_mut() {
            *v = v.max(0.0);
        }
    }

    /// Writes the fit to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("a fit serialises");
        write_atomically(path, |tmp| {
            std::fs::write(tmp, &json).map_err(|e| Error::Write {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
        })
    }

    /// Reads a fit a delta run wrote; a foreign file is refused with what to give instead.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let fit: DeltaFit = serde_json::from_str(&text)
            .ok()
            .filter(|f: &DeltaFit| f.format == FORMAT)
            .ok_or_else(|| Error::Malformed {
                path: path.to_path_buf(),
                detail: format!(
                    "not a delta fit; give the {FIT_FILE} that a delta fine-tuning run \
                     (`finetune --task perturbation-delta`) wrote"
                ),
            })?;
        let finite = [fit.up, fit.down]
            .iter()
            .all(|l| l.intercept.is_finite() && l.slope.is_finite());
        if !finite || fit.genes_per_list == 0 {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                detail: "the fit holds a non-finite coefficient or no genes per list".into(),
            });
        }
        Ok(fit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn changes_rank_rises_and_falls_and_name_their_genes() {
        let control = [1.0, 2.0, 0.0, 3.0, 1.0];
        let perturbed = [2.5, 2.0, 0.5, 1.0, 0.0];
        let c = Changes::between(&control, &perturbed, 2);
        assert_eq!(c.up, vec![(0, 1.5), (2, 0.5)]);
        assert_eq!(c.down, vec![(3, -2.0), (4, -1.0)]);
        let s = c.sentence(&genes(&["A", "B", "C", "D", "E"]));
        assert_eq!(s.text(), "Up: A C. Down: D E.");
    }

    #[test]
    fn parsing_is_lenient_about_case_and_separators_and_keeps_known_genes_once() {
        let vocab = GeneVocab::new(&genes(&["CD3E", "IL7R", "MS4A1", "NKG7"]));
        let s = DeltaSentence::parse("up: cd3e, IL7R; FOO IL7R.  Down: nkg7 CD3E.", &vocab);
        assert_eq!(s.up, genes(&["CD3E", "IL7R"]));
        assert_eq!(s.down, genes(&["NKG7"]), "CD3E is already up");
        let only_down = DeltaSentence::parse("Down: MS4A1", &vocab);
        assert_eq!((only_down.up.len(), only_down.down.len()), (0, 1));
        let reversed = DeltaSentence::parse("Down: MS4A1. Up: NKG7.", &vocab);
        assert_eq!(reversed.up, genes(&["NKG7"]));
        assert_eq!(reversed.down, genes(&["MS4A1"]));
        assert_eq!(
            DeltaSentence::parse("CD3E IL7R", &vocab),
            DeltaSentence::default()
        );
        let round = Changes {
            up: vec![(0, 1.0)],
            down: vec![(3, -1.0)],
        }
        .sentence(&genes(&["CD3E", "IL7R", "MS4A1", "NKG7"]));
        assert_eq!(DeltaSentence::parse(&round.text(), &vocab), round);
    }

    #[test]
    fn the_fit_recovers_a_power_law_and_applies_it_by_rank() {
        // |Δ| = 2 · rank^-0.5 for rises, 1 · rank^-1 for falls, over three pairs.
        let mut fitter = DeltaFitter::default();
        for _ in 0..3 {
            fitter.add(&Changes {
                up: (1..=4)
                    .map(|r| (r, (2.0 * (r as f64).powf(-0.5)) as f32))
                    .collect(),
                down: (1..=4).map(|r| (r, -(1.0 / r as f64) as f32)).collect(),
            });
        }
        let fit = fitter.finish(4).unwrap();
        assert_eq!(fit.pairs, 3);
        assert!((fit.up.intercept - 2f64.ln()).abs() < 1e-6, "{fit:?}");
        assert!((fit.up.slope + 0.5).abs() < 1e-6, "{fit:?}");
        assert!(fit.down.intercept.abs() < 1e-6 && (fit.down.slope + 1.0).abs() < 1e-6);

        let vocab = GeneVocab::new(&genes(&["A", "B", "C"]));
        let mut profile = vec![1.0f32, 1.0, 0.2];
        let delta = DeltaSentence {
            up: genes(&["B"]),
            down: genes(&["A", "C"]),
        };
        fit.apply(&mut profile, &delta, &vocab);
        assert!(
            (profile[1] - 3.0).abs() < 1e-5,
            "B rises by 2 at rank 1: {profile:?}"
        );
        assert!(
            profile[0].abs() < 1e-5,
            "A falls by 1 at rank 1: {profile:?}"
        );
        assert_eq!(profile[2], 0.0, "C falls by 0.5 at rank 2, clipped at 0");
    }

    #[test]
    fn a_fit_needs_both_directions_and_files_round_trip() {
        let mut fitter = DeltaFitter::default();
        fitter.add(&Changes {
            up: vec![(0, 1.0)],
            down: vec![],
        });
        let e = fitter.finish(5).unwrap_err().to_string();
        assert!(e.contains("no gene fell") && e.contains("1 pairs"), "{e}");

        fitter.add(&Changes {
            up: vec![],
            down: vec![(1, -0.5)],
        });
        let fit = fitter.finish(5).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FIT_FILE);
        fit.write(&path).unwrap();
        assert_eq!(DeltaFit::read(&path).unwrap(), fit);
        std::fs::write(&path, "{\"format\": \"other\"}").unwrap();
        let e = DeltaFit::read(&path).unwrap_err().to_string();
        assert!(e.contains("not a delta fit"), "{e}");
    }
}

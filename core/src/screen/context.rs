//! A screen context read for running: its drawn samples' cell sentences, the gene vocabulary
//! predicted sentences are read against, and the gene sets matched to its genes; for delta
//! output also the samples' expression profiles, to which predicted changes are added.

use super::spec::{ContextSpec, GeneSetSpec, OutputMode, Preprocess, ScoringMethod};
use crate::convert::{ConvertOptions, prepare_h5ad};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::genesets::gmt::{GeneIndex, GeneSetLibrary};
use crate::genesets::ssgsea::{Ssgsea, SsgseaOptions};
use crate::inverse::{DEFAULT_SAMPLE, InverseFit, fit_inverse, reconstruct};
use crate::matrix::CsrMatrix;
use crate::preprocess::PreprocessOptions;
use crate::progress::Progress;
use crate::sentence::{SentenceOptions, TieBreak, cell_sentences};
use crate::tasks::delta::{DeltaFit, DeltaSentence};
use crate::tasks::perturb::column_means;
use crate::tasks::postprocess::{GeneList, GeneVocab, PostProcess, post_process};
use crate::tasks::sample::sample_rows;
use std::collections::BTreeMap;

/// A context ready for prompting and scoring.
pub struct LoadedContext {
    /// Context name.
    pub name: String,
    /// Ids of the drawn samples (cell ids, or pseudo-bulk group names), in sample order.
    pub sample_ids: Vec<String>,
    /// The drawn samples' sentences (top `k` genes), in sample order.
    pub sentences: Vec<String>,
    vocab: GeneVocab,
    scorer: Ssgsea,
    /// Reconstructed-expression scoring: the context's genes and its fitted transform.
    reconstruct: Option<(Vec<String>, InverseFit)>,
    /// Delta output: the samples' profiles and the fit that reads predictions.
    delta: Option<DeltaProfiles>,
}

/// What delta output needs: each drawn sample's expression (one row per sample, in sample
/// order), the context's genes, the sentence length, and the rank → change fit.
struct DeltaProfiles {
    profiles: CsrMatrix,
    genes: Vec<String>,
    top_k: usize,
    fit: DeltaFit,
}

impl LoadedContext {
    /// Reads `spec`'s `.h5ad`, keeps the cells its filter names that express a gene, draws the
    /// samples with its seed, and matches the sets of `genesets` (names, in order) of `gmt` to
    /// its genes; for reconstructed scoring it fits the rank → expression transform on the
    /// chosen cells; with a `delta` fit it keeps the samples' profiles for delta output. A
    /// context left with no cell, or a gene set sharing no gene with it, is an error.
    pub fn load(
        spec: &ContextSpec,
        top_k: usize,
        gmt: &GeneSetLibrary,
        genesets: &GeneSetSpec,
        delta: Option<&DeltaFit>,
        progress: &Progress,
    ) -> Result<Self> {
        let context_err = |e: Error| Error::InvalidData(format!("context {}: {e}", spec.name));
        let options = ConvertOptions {
            preprocess: match spec.preprocess {
                Preprocess::C2s => PreprocessOptions::c2s(),
                Preprocess::None => PreprocessOptions::none(),
            },
            sentences: SentenceOptions {
                top_k: Some(top_k),
                ties: TieBreak::Seeded(0),
            },
            obs_columns: spec
                .filter_parts()
                .map(|(c, _)| c.to_string())
                .into_iter()
                .chain(spec.pseudobulk.clone())
                .collect(),
            ..Default::default()
        };
        let prepared = prepare_h5ad(&spec.h5ad, &options, progress).map_err(context_err)?;
        let ds = &prepared.dataset;
        let chosen = match spec.filter_parts() {
            Some((col, value)) => ds.rows_where(col, value).map_err(context_err)?,
            None => (0..ds.n_cells()).collect(),
        };
        let (ids, profiles) = match &spec.pseudobulk {
            Some(column) => pseudobulk(ds, &chosen, column).map_err(context_err)?,
            None => (
                chosen.iter().map(|&r| ds.obs_names[r].clone()).collect(),
                ds.expression.select_rows(&chosen),
            ),
        };
        let sentences =
            cell_sentences(&profiles, &ids, &ds.var_names, &options.sentences, progress)?;
        let usable: Vec<usize> = (0..sentences.len())
            .filter(|&i| !sentences[i].is_empty())
            .collect();
        if usable.is_empty() {
            let filter = spec
                .filter
                .as_deref()
                .map(|f| format!(" with {f}"))
                .unwrap_or_default();
            let what = match &spec.pseudobulk {
                Some(c) => format!("{} pseudo-bulk groups of {c}", sentences.len()),
                None => format!("{} cells", sentences.len()),
            };
            return Err(Error::InvalidData(format!(
                "context {}: no sample to draw ({what}{filter} after preprocessing, none of \
                 them expressing a gene); check the filter and the file {}",
                spec.name,
                spec.h5ad.display()
            )));
        }
        let drawn = sample_rows(&usable, spec.samples, spec.seed);
        let reconstruct = match genesets.method {
            _ if delta.is_some() => None,
            ScoringMethod::SentenceRank => None,
            ScoringMethod::Reconstructed => {
                progress.set_stage(format!(
                    "fitting rank → expression on context {}",
                    spec.name
                ));
                let matrix = ds.expression.select_rows(&chosen);
                let fit = fit_inverse(&matrix, DEFAULT_SAMPLE, 0, None).map_err(context_err)?;
                Some((ds.var_names.clone(), fit))
            }
        };
        let selected = gmt.select(&genesets.sets)?;
        let index = GeneIndex::new(&ds.var_names)?;
        let matched = selected
            .iter()
            .map(|s| index.match_set(s))
            .collect::<Result<Vec<_>>>()
            .map_err(context_err)?;
        let options = SsgseaOptions {
            weight: genesets.ssgsea_weight(if delta.is_some() {
                OutputMode::Delta
            } else {
                OutputMode::Sentence
            }),
            min_size: 1,
            max_size: usize::MAX,
        };
        let (scorer, skipped) = Ssgsea::new(&matched, ds.var_names.len(), options)?;
        if let Some(s) = skipped.first() {
            return Err(Error::InvalidData(format!(
                "context {}: gene set {} holds all {} genes of the data, so no order can \
                 enrich it; choose a smaller set",
                spec.name, s.name, s.n_present
            )));
        }
        let delta = delta.map(|fit| DeltaProfiles {
            profiles: profiles.select_rows(&drawn),
            genes: ds.var_names.clone(),
            top_k,
            fit: fit.clone(),
        });
        Ok(Self {
            name: spec.name.clone(),
            sample_ids: drawn.iter().map(|&r| ids[r].clone()).collect(),
            sentences: drawn.iter().map(|&r| sentences[r].clone()).collect(),
            vocab: GeneVocab::new(&ds.var_names),
            scorer,
            reconstruct,
            delta,
        })
    }

    /// Genes per list of the delta fit, for delta output.
    pub fn delta_genes(&self) -> Option<usize> {
        self.delta.as_ref().map(|d| d.fit.genes_per_list)
    }

    /// Scores generated texts, the output of unit `i` being `texts[i]` for sample
    /// `samples[i]`: a sentence as [`LoadedContext::score_texts`] does, or with delta output
    /// the delta sentence's changes added to the sample's profile. Returns each unit's
    /// predicted sentence (for delta output, the sentence of the rebuilt profile) and scores.
    pub fn score_outputs(
        &self,
        texts: &[&str],
        samples: &[usize],
        progress: &Progress,
    ) -> Result<Vec<(String, Vec<f64>)>> {
        match &self.delta {
            None => self.score_texts(texts, progress),
            Some(d) => {
                let deltas: Vec<DeltaSentence> = texts
                    .iter()
                    .map(|t| DeltaSentence::parse(t, &self.vocab))
                    .collect();
                self.score_profiles(d, &deltas, samples, progress)
            }
        }
    }

    /// The drawn samples' own sentences and scores, as the predictions are scored: from the
    /// sentences, or with delta output from the unchanged profiles.
    pub fn score_samples(&self, progress: &Progress) -> Result<Vec<(String, Vec<f64>)>> {
        match &self.delta {
            None => {
                let texts: Vec<&str> = self.sentences.iter().map(String::as_str).collect();
                self.score_texts(&texts, progress)
            }
            Some(d) => {
                let samples: Vec<usize> = (0..self.sentences.len()).collect();
                let none = vec![DeltaSentence::default(); samples.len()];
                self.score_profiles(d, &none, &samples, progress)
            }
        }
    }

    /// Adds each delta to its sample's profile, then scores the rebuilt profiles by ssGSEA on
    /// expression and writes their sentences.
    fn score_profiles(
        &self,
        d: &DeltaProfiles,
        deltas: &[DeltaSentence],
        samples: &[usize],
        progress: &Progress,
    ) -> Result<Vec<(String, Vec<f64>)>> {
        let mut rebuilt = CsrMatrix {
            n_rows: deltas.len(),
            n_cols: d.genes.len(),
            indptr: vec![0],
            ..Default::default()
        };
        for (delta, &s) in deltas.iter().zip(samples) {
            let mut profile = vec![0.0f32; d.genes.len()];
            let (cols, values) = d.profiles.row(s);
            for (&c, &v) in cols.iter().zip(values) {
                profile[c as usize] = v;
            }
            d.fit.apply(&mut profile, delta, &self.vocab);
            for (j, v) in profile.into_iter().enumerate() {
                if v != 0.0 {
                    rebuilt.indices.push(j as u32);
                    rebuilt.data.push(v);
                }
            }
            rebuilt.indptr.push(rebuilt.indices.len() as u64);
        }
        let scores = self.scorer.score_matrix(&rebuilt, true, progress)?;
        let ids: Vec<String> = samples
            .iter()
            .map(|&s| self.sample_ids[s].clone())
            .collect();
        let options = SentenceOptions {
            top_k: Some(d.top_k),
            ties: TieBreak::Seeded(0),
        };
        let sentences = cell_sentences(&rebuilt, &ids, &d.genes, &options, progress)?;
        let n_sets = scores.sets.len();
        Ok(sentences
            .into_iter()
            .enumerate()
            .map(|(i, s)| (s, scores.es[i * n_sets..(i + 1) * n_sets].to_vec()))
            .collect())
    }

    /// Post-processes generated texts into sentences (genes of this context only, each once)
    /// and scores each per set (ES, in the spec's set order): by rank-only ssGSEA on the
    /// sentence's order, or by ssGSEA on its reconstructed expression clipped at 0.
    pub fn score_texts(
        &self,
        texts: &[&str],
        progress: &Progress,
    ) -> Result<Vec<(String, Vec<f64>)>> {
        let lists: Vec<_> = texts
            .iter()
            .map(|t| post_process(t, &self.vocab, PostProcess::Clean))
            .collect();
        let columns: Vec<Vec<u32>> = lists
            .iter()
            .map(|l| {
                l.genes
                    .iter()
                    .filter_map(|g| self.vocab.column(&g.to_uppercase()))
                    .map(|c| c as u32)
                    .collect()
            })
            .collect();
        let scores = match &self.reconstruct {
            None => self.scorer.score_sentences(&columns, progress)?,
            Some((genes, fit)) => {
                let matrix = reconstructed(&lists, genes, fit);
                self.scorer.score_matrix(&matrix, true, progress)?
            }
        };
        let n_sets = scores.sets.len();
        Ok(lists
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    l.sentence(),
                    scores.es[i * n_sets..(i + 1) * n_sets].to_vec(),
                )
            })
            .collect())
    }
}

/// The expression rebuilt from each post-processed sentence by `fit`, one row per sentence
/// over `genes` (negative values clipped at 0 by [`reconstruct`]).
fn reconstructed(lists: &[GeneList], genes: &[String], fit: &InverseFit) -> CsrMatrix {
    let mut m = CsrMatrix {
        n_rows: lists.len(),
        n_cols: genes.len(),
        indptr: vec![0],
        ..Default::default()
    };
    for l in lists {
        for (j, v) in reconstruct(&l.sentence(), genes, fit)
            .into_iter()
            .enumerate()
        {
            if v != 0.0 {
                m.indices.push(j as u32);
                m.data.push(v);
            }
        }
        m.indptr.push(m.indices.len() as u64);
    }
    m
}

/// The pseudo-bulk profiles of `rows` grouped by obs `column`: the group names (sorted) and a
/// matrix with one row per group, the mean of its cells' expression. Cells without a value are
/// left out; a missing column is an error naming the columns there are.
fn pseudobulk(ds: &Dataset, rows: &[usize], column: &str) -> Result<(Vec<String>, CsrMatrix)> {
    let obs = ds.require_obs_column(column)?;
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &r in rows {
        if let Some(value) = obs.data.text_at(r) {
            groups.entry(value).or_default().push(r);
        }
    }
    let mut means = CsrMatrix {
        n_rows: groups.len(),
        n_cols: ds.expression.n_cols,
        indptr: vec![0],
        ..Default::default()
    };
    for members in groups.values() {
        for (gene, mean) in column_means(&ds.expression, members)
            .into_iter()
            .enumerate()
        {
            if mean != 0.0 {
                means.indices.push(gene as u32);
                means.data.push(mean as f32);
            }
        }
        means.indptr.push(means.indices.len() as u64);
    }
    Ok((groups.into_keys().collect(), means))
}

//! A screen context read for running: its drawn samples' cell sentences, the gene vocabulary
//! predicted sentences are read against, and the gene sets matched to its genes.

use super::spec::{ContextSpec, Preprocess};
use crate::convert::{ConvertOptions, prepare_h5ad};
use crate::error::{Error, Result};
use crate::genesets::gmt::{GeneIndex, GeneSetLibrary};
use crate::genesets::ssgsea::{Ssgsea, SsgseaOptions};
use crate::preprocess::PreprocessOptions;
use crate::progress::Progress;
use crate::sentence::{SentenceOptions, TieBreak, cell_sentences};
use crate::tasks::postprocess::{GeneVocab, PostProcess, post_process};
use crate::tasks::sample::sample_rows;

/// A context ready for prompting and scoring.
pub struct LoadedContext {
    /// Context name.
    pub name: String,
    /// Cell ids of the drawn samples, in sample order.
    pub sample_ids: Vec<String>,
    /// The drawn samples' sentences (top `k` genes), in sample order.
    pub sentences: Vec<String>,
    vocab: GeneVocab,
    scorer: Ssgsea,
}

impl LoadedContext {
    /// Reads `spec`'s `.h5ad`, keeps the cells its filter names that express a gene, draws the
    /// samples with its seed, and matches `sets` (names, in order) of `gmt` to its genes.
    /// A context left with no cell, or a gene set sharing no gene with it, is an error.
    pub fn load(
        spec: &ContextSpec,
        top_k: usize,
        gmt: &GeneSetLibrary,
        sets: &[String],
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
                .map(|(c, _)| vec![c.to_string()])
                .unwrap_or_default(),
            ..Default::default()
        };
        let prepared = prepare_h5ad(&spec.h5ad, &options, progress).map_err(context_err)?;
        let ds = &prepared.dataset;
        let sentences = cell_sentences(
            &ds.expression,
            &ds.obs_names,
            &ds.var_names,
            &options.sentences,
            progress,
        )?;
        let chosen = match spec.filter_parts() {
            Some((col, value)) => ds.rows_where(col, value).map_err(context_err)?,
            None => (0..ds.n_cells()).collect(),
        };
        let rows: Vec<usize> = chosen
            .iter()
            .copied()
            .filter(|&r| !sentences[r].is_empty())
            .collect();
        if rows.is_empty() {
            let filter = spec
                .filter
                .as_deref()
                .map(|f| format!(" with {f}"))
                .unwrap_or_default();
            return Err(Error::InvalidData(format!(
                "context {}: no cell to sample ({} cells{filter} after preprocessing, {} of them \
                 expressing a gene); check the filter and the file {}",
                spec.name,
                chosen.len(),
                rows.len(),
                spec.h5ad.display()
            )));
        }
        let drawn = sample_rows(&rows, spec.samples, spec.seed);
        let selected = gmt.select(sets)?;
        let index = GeneIndex::new(&ds.var_names)?;
        let matched = selected
            .iter()
            .map(|s| index.match_set(s))
            .collect::<Result<Vec<_>>>()
            .map_err(context_err)?;
        let options = SsgseaOptions {
            weight: 0.0,
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
        Ok(Self {
            name: spec.name.clone(),
            sample_ids: drawn.iter().map(|&r| ds.obs_names[r].clone()).collect(),
            sentences: drawn.iter().map(|&r| sentences[r].clone()).collect(),
            vocab: GeneVocab::new(&ds.var_names),
            scorer,
        })
    }

    /// Post-processes generated texts into sentences (genes of this context only, each once)
    /// and scores each by rank-only ssGSEA per set (ES, in the spec's set order).
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
        let scores = self.scorer.score_sentences(&columns, progress)?;
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

//! The conversion pipeline up to the sentences, shared by the CLI and the GUI: read an `.h5ad`,
//! preprocess and fit the inverse transform, collecting warnings for the user; the sentences are
//! then streamed out by [`crate::io::export::write_sentence_table`].

use crate::dataset::{Dataset, MatrixKind};
use crate::error::Result;
use crate::inverse::{self, InverseFit};
use crate::io::h5ad::{self, ReadOptions};
use crate::preprocess::{self, PreprocessOptions, PreprocessReport};
use crate::progress::Progress;
use crate::sentence::{self, SentenceOptions, TieBreak};
use std::path::Path;

/// Everything that controls a conversion.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Which matrix and gene names to read.
    pub read: ReadOptions,
    /// Preprocessing steps.
    pub preprocess: PreprocessOptions,
    /// Sentence building.
    pub sentences: SentenceOptions,
    /// Fit the inverse transform (on up to [`inverse::DEFAULT_SAMPLE`] cells).
    pub fit: bool,
    /// Seed for the fit's cell sample.
    pub seed: u32,
    /// `obs` columns the caller will need; checked right after reading, before any heavy work.
    pub obs_columns: Vec<String>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            read: ReadOptions {
                load_matrix: true,
                ..Default::default()
            },
            preprocess: PreprocessOptions::c2s(),
            sentences: SentenceOptions {
                top_k: None,
                ties: TieBreak::Seeded(0),
            },
            fit: false,
            seed: 0,
            obs_columns: Vec::new(),
        }
    }
}

/// A dataset read and preprocessed, ready to become sentences.
#[derive(Debug)]
pub struct Prepared {
    /// The dataset after preprocessing (cells and genes filtered).
    pub dataset: Dataset,
    /// What preprocessing did.
    pub report: PreprocessReport,
    /// The inverse transform, if requested.
    pub fit: Option<InverseFit>,
    /// Things the user should know (duplicate names, Ensembl ids, empty cells ...).
    pub warnings: Vec<String>,
}

/// Reads and preprocesses one file, fits the inverse transform and collects warnings: every
/// step before the sentences themselves (which callers may build at once or stream out).
pub fn prepare_h5ad(
    path: &Path,
    options: &ConvertOptions,
    progress: &Progress,
) -> Result<Prepared> {
    let mut read = options.read.clone();
    read.load_matrix = true;
    let mut dataset = h5ad::read_h5ad(path, &read, progress)?;
    dataset.require_obs_columns(&options.obs_columns)?;
    let report = preprocess::preprocess_dataset(&mut dataset, &options.preprocess, progress)?;
    let warnings = warnings(&dataset);
    let fit = if options.fit {
        progress.set_stage("fitting rank → expression transform");
        let log_base = report.log_base.map(|b| b.to_string());
        Some(inverse::fit_inverse(
            &dataset.expression,
            inverse::DEFAULT_SAMPLE,
            options.seed,
            log_base,
        )?)
    } else {
        None
    };
    Ok(Prepared {
        dataset,
        report,
        fit,
        warnings,
    })
}

fn warnings(ds: &Dataset) -> Vec<String> {
    let mut out = Vec::new();
    let dups = sentence::duplicate_gene_names(&ds.var_names);
    if !dups.is_empty() {
        let shown: Vec<&str> = dups.iter().take(5).map(String::as_str).collect();
        out.push(format!(
            "{} gene names occur more than once after upper-casing ({}{}); each copy keeps its own values, so the name can appear twice in a sentence",
            dups.len(),
            shown.join(", "),
            if dups.len() > 5 { ", ..." } else { "" }
        ));
    }
    let ensembl = ds
        .var_names
        .iter()
        .take(100)
        .filter(|n| n.starts_with("ENS"))
        .count();
    if ensembl > 0 && ensembl * 2 >= ds.var_names.len().min(100) {
        out.push("gene names look like Ensembl ids; C2S models read gene symbols — pass --gene-column with a symbol column".into());
    }
    let m = &ds.expression;
    let empty = (0..m.n_rows)
        .filter(|&i| m.row(i).1.iter().all(|v| *v <= 0.0))
        .count();
    if empty > 0 {
        out.push(format!("{empty} cells express no gene; their sentences are empty (use --min-genes to drop them)"));
    }
    if let Some(info) = ds
        .loaded
        .as_ref()
        .and_then(|c| ds.matrices.iter().find(|m| &m.choice == c))
        && info.kind == MatrixKind::Normalized
    {
        out.push(format!(
            "matrix {} looks normalized but not log-transformed",
            info.choice
        ));
    }
    out
}

//! Scoring a loaded dataset's cells by gene sets of a library: choosing the sets, optional
//! normalisation, and one column of scores per set. The CLI's `score-sets` and the app both
//! run this.

use super::gmt::{GeneIndex, GeneSetLibrary, SetMatch, gseapy_uppercases};
use super::score_genes::{MeanMode, ScoreGenes, ScoreGenesOptions};
use super::ssgsea::{Ssgsea, SsgseaOptions};
use crate::dataset::{Dataset, MatrixKind};
use crate::error::{Error, Result};
use crate::preprocess::{LogBase, log1p, normalize_total};
use crate::progress::Progress;

/// The scoring method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// ssGSEA as gseapy 1.3.1 (`sample_norm_method='rank'`).
    Ssgsea(SsgseaOptions),
    /// scanpy's `score_genes`.
    ScoreGenes(ScoreGenesOptions),
}

/// Normalisation applied to the loaded matrix before scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalization {
    /// Score the matrix as it is.
    None,
    /// Scale each cell to `target_sum`, then log1p (counts only).
    Log1p {
        /// Total each cell is scaled to (scanpy's `normalize_total(target_sum=...)`).
        target_sum: f64,
        /// Base of the logarithm.
        base: LogBase,
    },
}

/// Scores of one set for every cell.
#[derive(Debug, Clone, PartialEq)]
pub struct SetColumn {
    /// The set's name.
    pub name: String,
    /// Distinct genes the set lists.
    pub n_listed: usize,
    /// Its genes present in the data.
    pub n_present: usize,
    /// ssGSEA ES or score_genes score, per cell.
    pub values: Vec<f64>,
    /// ssGSEA NES per cell (batch-dependent; see [`DatasetScores::nes_scale`]).
    pub nes: Option<Vec<f64>>,
}

/// Scores of a dataset's cells.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetScores {
    /// One column per scored set, in request (or file) order.
    pub columns: Vec<SetColumn>,
    /// ssGSEA: `max ES − min ES` over every (cell, set) of this call, the NES denominator.
    pub nes_scale: Option<f64>,
    /// What the user should know: sets left out, the NES batch, the gene-name rule.
    pub notes: Vec<String>,
}

/// Normalises the dataset's loaded matrix in place. Refuses matrices that already hold
/// logged or scaled values, since normalising them again would be wrong.
pub fn normalize(ds: &mut Dataset, normalization: Normalization) -> Result<()> {
    let Normalization::Log1p { target_sum, base } = normalization else {
        return Ok(());
    };
    if !(target_sum.is_finite() && target_sum > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "the target sum must be a positive number, not {target_sum}"
        )));
    }
    let info = ds
        .loaded
        .as_ref()
        .and_then(|c| ds.matrices.iter().find(|m| &m.choice == c));
    if let Some(info) = info
        && matches!(info.kind, MatrixKind::LogNormalized | MatrixKind::Scaled)
    {
        return Err(Error::InvalidData(format!(
            "matrix {} already holds {} values; normalising and logging it again would distort the scores. Use --normalize none, or choose a matrix of counts with --matrix",
            info.choice,
            if info.kind == MatrixKind::Scaled {
                "scaled"
            } else {
                "log-normalised"
            }
        )));
    }
    normalize_total(&mut ds.expression, target_sum);
    log1p(&mut ds.expression, base);
    Ok(())
}

/// How scanpy would average genes of the dataset's loaded matrix: a dense `float32` matrix in
/// `f32`, anything else (sparse, or values we normalised) in `f64`.
pub fn mean_mode(ds: &Dataset, normalized: bool) -> MeanMode {
    let info = ds
        .loaded
        .as_ref()
        .and_then(|c| ds.matrices.iter().find(|m| &m.choice == c));
    match info {
        Some(m) if !normalized && m.storage == "dense" && m.dtype == "f32" => MeanMode::DenseF32,
        _ => MeanMode::Sparse,
    }
}

/// Scores every cell of `ds` (its loaded matrix, genes from `ds.var_names`) by the sets called
/// `names` in `library`, or by every set when `names` is empty. A named set that shares no
/// gene with the data, or that ssGSEA's size limits leave out, is an error; when scoring the
/// whole library such sets are left out and listed in the notes.
pub fn score_dataset(
    ds: &Dataset,
    mean_mode: MeanMode,
    library: &GeneSetLibrary,
    names: &[String],
    method: Method,
    progress: &Progress,
) -> Result<DatasetScores> {
    let mut notes = Vec::new();
    let uppercase =
        matches!(method, Method::Ssgsea(_)) && gseapy_uppercases(&ds.var_names, library);
    let index = if uppercase {
        notes.push(
            "gene names were upper-cased to match the GMT, as gseapy does when the data's names are mostly not upper case".into(),
        );
        GeneIndex::uppercased(&ds.var_names)?
    } else {
        GeneIndex::new(&ds.var_names)?
    };
    let explicit = !names.is_empty();
    let matched: Vec<SetMatch> = if explicit {
        library
            .select(names)?
            .into_iter()
            .map(|s| index.match_set(s))
            .collect::<Result<_>>()?
    } else {
        index.match_library(&library.sets.iter().collect::<Vec<_>>())?
    };
    match method {
        Method::Ssgsea(options) => ssgsea_columns(ds, matched, options, explicit, notes, progress),
        Method::ScoreGenes(options) => {
            score_genes_columns(ds, matched, options, mean_mode, notes, progress)
        }
    }
}

fn ssgsea_columns(
    ds: &Dataset,
    matched: Vec<SetMatch>,
    options: SsgseaOptions,
    explicit: bool,
    mut notes: Vec<String>,
    progress: &Progress,
) -> Result<DatasetScores> {
    let (scorer, skipped) = Ssgsea::new(&matched, ds.var_names.len(), options)?;
    let limits = format!(
        "ssGSEA keeps sets with {} to {} genes in the data, fewer than all {} (--min-size, --max-size)",
        options.min_size,
        options.max_size,
        ds.var_names.len()
    );
    if explicit && let Some(s) = skipped.first() {
        return Err(Error::InvalidArgument(format!(
            "gene set '{}' has {} genes in the data; {limits}",
            s.name, s.n_present
        )));
    }
    if scorer.set_names().is_empty() {
        return Err(Error::InvalidData(format!(
            "no gene set of the GMT is left to score: {limits}"
        )));
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "{} of {} sets left out by size ({limits})",
            skipped.len(),
            matched.len()
        ));
    }
    progress.set_stage("ssGSEA");
    let scores = scorer.score_matrix(&ds.expression, false, progress)?;
    let scale = scores.nes_scale();
    notes.push(format!(
        "NES = ES / {scale} (max − min ES over all {} cells × {} sets of this call; it changes with the cells and sets scored)",
        scores.n_samples,
        scores.sets.len()
    ));
    let nes = scores.nes();
    let k = scores.sets.len();
    let columns = matched
        .iter()
        .filter_map(|m| {
            let j = scores.sets.iter().position(|n| n == &m.name)?;
            Some(SetColumn {
                name: m.name.clone(),
                n_listed: m.n_listed,
                n_present: m.n_present(),
                values: scores.es_column(j),
                nes: Some((0..scores.n_samples).map(|i| nes[i * k + j]).collect()),
            })
        })
        .collect();
    Ok(DatasetScores {
        columns,
        nes_scale: Some(scale),
        notes,
    })
}

fn score_genes_columns(
    ds: &Dataset,
    matched: Vec<SetMatch>,
    options: ScoreGenesOptions,
    mean_mode: MeanMode,
    mut notes: Vec<String>,
    progress: &Progress,
) -> Result<DatasetScores> {
    progress.set_stage(format!("score_genes ({})", options.version));
    let scorer = ScoreGenes::new(&ds.expression, mean_mode, options)?;
    let mut columns = Vec::new();
    let mut absent = Vec::new();
    for (k, m) in matched.iter().enumerate() {
        progress.check()?;
        if m.columns.is_empty() {
            absent.push(m.name.as_str());
            continue;
        }
        let score = scorer.score(&ds.expression, &m.columns, &ds.var_names)?;
        columns.push(SetColumn {
            name: m.name.clone(),
            n_listed: m.n_listed,
            n_present: m.n_present(),
            values: score.scores,
            nes: None,
        });
        progress.set_fraction((k + 1) as f32 / matched.len() as f32);
    }
    if !absent.is_empty() {
        notes.push(format!(
            "{} sets share no gene with the data and were left out",
            absent.len()
        ));
    }
    Ok(DatasetScores {
        columns,
        nes_scale: None,
        notes,
    })
}

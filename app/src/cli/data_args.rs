//! The flags every command that reads an `.h5ad` shares: which matrix and gene names,
//! preprocessing, and the sentence tie-break.

use super::parse_matrix;
use c2s_core::convert::ConvertOptions;
use c2s_core::dataset::MatrixChoice;
use c2s_core::io::h5ad::ReadOptions;
use c2s_core::preprocess::{LogBase, PreprocessOptions};
use c2s_core::sentence::{SentenceOptions, TieBreak};
use clap::ValueEnum;

/// Preprocessing presets.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Preset {
    /// The C2S tutorial's steps (filter cells, filter genes, normalize total, log1p).
    C2s,
    /// Use the matrix as it is.
    None,
}

/// Tie-break rules.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Ties {
    /// Identical to the cell2sentence 1.2.0 package (depends on the whole file).
    Reference,
    /// Per-cell order from --seed; stable when the dataset is subset.
    Seeded,
}

/// Log bases for log1p.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Base {
    /// log10 (C2S tutorials).
    #[value(name = "10")]
    Ten,
    /// Natural log (scanpy).
    E,
}

/// Matrix, gene names, preprocessing and tie-break flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Matrix to use: x, raw or layer:NAME (default: raw counts when the file has them).
    #[arg(long, value_parser = parse_matrix)]
    pub matrix: Option<MatrixChoice>,
    /// Preprocessing preset.
    #[arg(long, value_enum, default_value = "c2s")]
    pub preprocess: Preset,
    /// Minimum expressed genes per cell (with --preprocess c2s).
    #[arg(long, default_value_t = 200)]
    pub min_genes: usize,
    /// Minimum expressing cells per gene (with --preprocess c2s).
    #[arg(long, default_value_t = 3)]
    pub min_cells: usize,
    /// Total each cell is normalized to (with --preprocess c2s).
    #[arg(long, default_value_t = 1e4)]
    pub target_sum: f64,
    /// Base of log1p (with --preprocess c2s).
    #[arg(long, value_enum, default_value = "10")]
    pub log_base: Base,
    /// Tie-break rule for equal expression values.
    #[arg(long, value_enum, default_value = "seeded")]
    pub ties: Ties,
    /// Seed for --ties seeded and for the fit's cell sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// `var` column holding gene names (default: symbols when the index holds Ensembl ids).
    #[arg(long)]
    pub gene_column: Option<String>,
}

impl DataArgs {
    /// The preprocessing these flags ask for.
    pub fn preprocess_options(&self) -> PreprocessOptions {
        match self.preprocess {
            Preset::None => PreprocessOptions::none(),
            Preset::C2s => PreprocessOptions {
                min_genes: Some(self.min_genes),
                min_cells: Some(self.min_cells),
                target_sum: Some(self.target_sum),
                log_base: Some(match self.log_base {
                    Base::Ten => LogBase::Ten,
                    Base::E => LogBase::E,
                }),
            },
        }
    }

    /// The conversion these flags ask for, keeping `top_k` genes per sentence, fitting the
    /// inverse transform when `fit`, and checking that the `obs` columns exist.
    pub fn convert_options(
        &self,
        top_k: Option<usize>,
        fit: bool,
        obs: Vec<String>,
    ) -> ConvertOptions {
        ConvertOptions {
            read: ReadOptions {
                matrix: self.matrix.clone(),
                gene_column: self.gene_column.clone(),
                load_matrix: true,
            },
            preprocess: self.preprocess_options(),
            sentences: SentenceOptions {
                top_k,
                ties: match self.ties {
                    Ties::Reference => TieBreak::Reference,
                    Ties::Seeded => TieBreak::Seeded(u64::from(self.seed)),
                },
            },
            fit,
            seed: self.seed,
            obs_columns: obs,
        }
    }
}

//! `c2s-studio score-sets`: score each cell of an `.h5ad` file by gene sets of a GMT file
//! (ssGSEA as gseapy 1.3.1, or scanpy's `score_genes`) into a Parquet or CSV table.

use super::parse_matrix;
use c2s_core::Progress;
use c2s_core::dataset::MatrixChoice;
use c2s_core::genesets::dataset_scores::{
    Method, Normalization, mean_mode, normalize, score_dataset,
};
use c2s_core::genesets::{GeneSetLibrary, ScanpyVersion, ScoreGenesOptions, SsgseaOptions};
use c2s_core::io::atomic::ensure_not_input;
use c2s_core::io::export::{TableFormat, write_table};
use c2s_core::io::h5ad::{ReadOptions, describe_kind, read_h5ad};
use c2s_core::preprocess::LogBase;
use clap::ValueEnum;
use polars::prelude::{Column, DataFrame};
use std::path::PathBuf;

/// Scoring methods.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// ssGSEA as gseapy 1.3.1 (sample_norm_method='rank'): ES and NES columns.
    Ssgsea,
    /// scanpy's score_genes (control genes binned by mean expression).
    ScoreGenes,
}

/// Normalisations before scoring.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NormalizeArg {
    /// Score the matrix as it is.
    None,
    /// Scale each cell to --target-sum, then log1p (counts only).
    Log1p,
}

/// Log bases.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BaseArg {
    /// Natural log (scanpy).
    E,
    /// log10 (C2S tutorials).
    #[value(name = "10")]
    Ten,
}

/// scanpy releases for score_genes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScanpyArg {
    /// scanpy 1.11.5.
    #[value(name = "1.11.5")]
    V1_11_5,
    /// scanpy 1.9.8, the release the C2S-Scale paper used.
    #[value(name = "1.9.8")]
    V1_9_8,
}

/// Arguments of `score-sets`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input `.h5ad` file.
    pub input: PathBuf,
    /// Gene-set library in GMT format, or a bundled one: `builtin:hallmark` (MSigDB Hallmark
    /// v7.5.1) or `builtin:antigen-presentation` (the C2S-Scale screen's 5 sets).
    #[arg(long)]
    pub gmt: PathBuf,
    /// Sets to score, comma-separated (default: every set of the GMT).
    #[arg(long, value_delimiter = ',')]
    pub sets: Vec<String>,
    /// Scoring method.
    #[arg(long, value_enum, default_value = "ssgsea")]
    pub method: MethodArg,
    /// ssGSEA weight on the scaled ranks (0 = gene order only; gseapy's default 0.25).
    #[arg(long, default_value_t = 0.25)]
    pub weight: f64,
    /// ssGSEA: fewest genes of a set that must be in the data.
    #[arg(long, default_value_t = 15)]
    pub min_size: usize,
    /// ssGSEA: most genes of a set allowed in the data.
    #[arg(long, default_value_t = 500)]
    pub max_size: usize,
    /// score_genes: control genes drawn per expression bin.
    #[arg(long, default_value_t = 50)]
    pub ctrl_size: usize,
    /// score_genes: number of expression bins.
    #[arg(long, default_value_t = 25)]
    pub n_bins: usize,
    /// score_genes: numpy seed (scanpy's random_state).
    #[arg(long, default_value_t = 0)]
    pub random_state: u32,
    /// score_genes: the scanpy release to reproduce.
    #[arg(long, value_enum, default_value = "1.11.5")]
    pub scanpy: ScanpyArg,
    /// Matrix to score: x, raw or layer:NAME (default: raw counts when the file has them, else
    /// a log-normalised matrix).
    #[arg(long, value_parser = parse_matrix)]
    pub matrix: Option<MatrixChoice>,
    /// `var` column holding gene names (default: symbols when the index holds Ensembl ids).
    #[arg(long)]
    pub gene_column: Option<String>,
    /// Normalisation before scoring (log1p needs a matrix of counts).
    #[arg(long, value_enum, default_value = "none")]
    pub normalize: NormalizeArg,
    /// Total each cell is scaled to (with --normalize log1p).
    #[arg(long, default_value_t = 1e4)]
    pub target_sum: f64,
    /// Base of log1p (with --normalize log1p).
    #[arg(long, value_enum, default_value = "e")]
    pub log_base: BaseArg,
    /// Output table (`.parquet` or `.csv`): `cell_id`, one column per set, and for ssGSEA
    /// `nes:<set>` columns.
    #[arg(long)]
    pub out: PathBuf,
}

impl Args {
    fn method(&self) -> Method {
        match self.method {
            MethodArg::Ssgsea => Method::Ssgsea(SsgseaOptions {
                weight: self.weight,
                min_size: self.min_size,
                max_size: self.max_size,
            }),
            MethodArg::ScoreGenes => Method::ScoreGenes(ScoreGenesOptions {
                ctrl_size: self.ctrl_size,
                n_bins: self.n_bins,
                random_state: self.random_state,
                version: match self.scanpy {
                    ScanpyArg::V1_11_5 => ScanpyVersion::V1_11_5,
                    ScanpyArg::V1_9_8 => ScanpyVersion::V1_9_8,
                },
            }),
        }
    }

    fn normalization(&self) -> Normalization {
        match self.normalize {
            NormalizeArg::None => Normalization::None,
            NormalizeArg::Log1p => Normalization::Log1p {
                target_sum: self.target_sum,
                base: match self.log_base {
                    BaseArg::E => LogBase::E,
                    BaseArg::Ten => LogBase::Ten,
                },
            },
        }
    }
}

/// Runs `score-sets`.
pub fn run(args: Args) -> Result<(), String> {
    ensure_not_input(&args.out, &[&args.input, &args.gmt]).map_err(|e| e.to_string())?;
    TableFormat::from_path(&args.out).map_err(|e| e.to_string())?;
    let library = GeneSetLibrary::read(&args.gmt).map_err(|e| e.to_string())?;
    let progress = Progress::new();
    let options = ReadOptions {
        matrix: args.matrix.clone(),
        gene_column: args.gene_column.clone(),
        load_matrix: true,
    };
    let mut ds = read_h5ad(&args.input, &options, &progress).map_err(|e| e.to_string())?;
    if let Some(info) = ds
        .loaded
        .as_ref()
        .and_then(|c| ds.matrices.iter().find(|m| &m.choice == c))
    {
        eprintln!(
            "matrix: {} ({}, {} {}); genes from: {}",
            info.choice,
            describe_kind(info.kind),
            info.storage,
            info.dtype,
            ds.gene_column
        );
    }
    let normalization = args.normalization();
    normalize(&mut ds, normalization).map_err(|e| e.to_string())?;
    let mode = mean_mode(&ds, normalization != Normalization::None);
    let scores = score_dataset(&ds, mode, &library, &args.sets, args.method(), &progress)
        .map_err(|e| e.to_string())?;
    for note in &scores.notes {
        eprintln!("note: {note}");
    }
    let mut columns = vec![Column::new("cell_id".into(), &ds.obs_names)];
    for c in &scores.columns {
        eprintln!(
            "{}: {} of {} genes in the data",
            c.name, c.n_present, c.n_listed
        );
        columns.push(Column::new(c.name.as_str().into(), &c.values));
    }
    for c in &scores.columns {
        if let Some(nes) = &c.nes {
            columns.push(Column::new(format!("nes:{}", c.name).into(), nes));
        }
    }
    let mut df = DataFrame::new(ds.n_cells(), columns).map_err(|e| e.to_string())?;
    write_table(&args.out, &mut df).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} cells x {} sets to {}",
        ds.n_cells(),
        scores.columns.len(),
        args.out.display()
    );
    Ok(())
}

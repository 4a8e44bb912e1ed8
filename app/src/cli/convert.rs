//! `c2s-studio convert`: an `.h5ad` file to a table of cell sentences (Parquet or CSV).

use super::parse_matrix;
use c2s_core::Progress;
use c2s_core::convert::{ConvertOptions, Prepared, prepare_h5ad};
use c2s_core::dataset::{ColumnData, ObsColumn};
use c2s_core::io::atomic::{ensure_not_input, write_atomically};
use c2s_core::io::export::write_sentence_table;
use c2s_core::io::h5ad::ReadOptions;
use c2s_core::io::h5ad::{Additions, describe_kind, write_annotated_h5ad};
use c2s_core::preprocess::{LogBase, PreprocessOptions};
use c2s_core::sentence::{SentenceOptions, TieBreak};
use clap::ValueEnum;
use std::path::PathBuf;

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

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input `.h5ad` file.
    pub input: PathBuf,
    /// Output table (`.parquet` or `.csv`); must not exist as the input.
    #[arg(long)]
    pub out: PathBuf,
    /// Matrix to use: x, raw or layer:NAME (default: raw counts when the file has them).
    #[arg(long, value_parser = parse_matrix)]
    pub matrix: Option<c2s_core::dataset::MatrixChoice>,
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
    /// Keep only the top K genes of each sentence.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Tie-break rule for equal expression values.
    #[arg(long, value_enum, default_value = "seeded")]
    pub ties: Ties,
    /// Seed for --ties seeded and for the fit's cell sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// `var` column holding gene names (default: symbols when the index holds Ensembl ids).
    #[arg(long)]
    pub gene_column: Option<String>,
    /// obs columns to copy into the output, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub obs: Vec<String>,
    /// Write the rank → expression fit as JSON here.
    #[arg(long)]
    pub fit_out: Option<PathBuf>,
    /// Also write a copy of the input `.h5ad` with the sentences in obs `c2s_cell_sentence`
    /// (and the fit in uns `c2s_inverse_fit`).
    #[arg(long)]
    pub h5ad_out: Option<PathBuf>,
}

/// Runs `convert`.
pub fn run(args: Args) -> Result<(), String> {
    ensure_not_input(&args.out, &[&args.input]).map_err(|e| e.to_string())?;
    for extra in args.fit_out.iter().chain(&args.h5ad_out) {
        ensure_not_input(extra, &[&args.input]).map_err(|e| e.to_string())?;
    }
    c2s_core::io::export::TableFormat::from_path(&args.out).map_err(|e| e.to_string())?;
    let preprocess = match args.preprocess {
        Preset::None => PreprocessOptions::none(),
        Preset::C2s => PreprocessOptions {
            min_genes: Some(args.min_genes),
            min_cells: Some(args.min_cells),
            target_sum: Some(args.target_sum),
            log_base: Some(match args.log_base {
                Base::Ten => LogBase::Ten,
                Base::E => LogBase::E,
            }),
        },
    };
    let options = ConvertOptions {
        read: ReadOptions {
            matrix: args.matrix.clone(),
            gene_column: args.gene_column.clone(),
            load_matrix: true,
        },
        preprocess,
        sentences: SentenceOptions {
            top_k: args.top_k,
            ties: match args.ties {
                Ties::Reference => TieBreak::Reference,
                Ties::Seeded => TieBreak::Seeded(u64::from(args.seed)),
            },
        },
        fit: args.fit_out.is_some() || args.h5ad_out.is_some(),
        seed: args.seed,
        obs_columns: args.obs.clone(),
    };
    let progress = Progress::new();
    let prepared = prepare_h5ad(&args.input, &options, &progress).map_err(|e| e.to_string())?;
    for w in &prepared.warnings {
        eprintln!("warning: {w}");
    }
    let ds = &prepared.dataset;
    if let Some(info) = ds
        .loaded
        .as_ref()
        .and_then(|c| ds.matrices.iter().find(|m| &m.choice == c))
    {
        eprintln!(
            "matrix: {} ({}); genes from: {}",
            info.choice,
            describe_kind(info.kind),
            ds.gene_column
        );
    }
    for step in &prepared.report.steps {
        eprintln!("preprocess: {step}");
    }
    let mut kept = args
        .h5ad_out
        .as_ref()
        .map(|_| Vec::with_capacity(ds.n_cells()));
    let rows = write_sentence_table(
        &args.out,
        ds,
        &options.sentences,
        &args.obs,
        &progress,
        kept.as_mut(),
    )
    .map_err(|e| e.to_string())?;
    eprintln!("wrote {rows} cell sentences to {}", args.out.display());
    if let (Some(path), Some(sentences)) = (&args.h5ad_out, &kept) {
        write_h5ad(&args.input, path, &prepared, sentences)?;
        eprintln!("wrote {} with obs 'c2s_cell_sentence'", path.display());
    }
    if let (Some(path), Some(fit)) = (&args.fit_out, &prepared.fit) {
        let json = serde_json::to_string_pretty(fit).map_err(|e| e.to_string())?;
        write_atomically(path, |tmp| {
            std::fs::write(tmp, json.as_bytes()).map_err(|e| c2s_core::Error::Write {
                path: path.clone(),
                detail: e.to_string(),
            })
        })
        .map_err(|e| e.to_string())?;
        eprintln!(
            "fit: slope {:.6}, intercept {:.6}, R² {:.4}, Pearson {:.4}, Spearman {:.4} -> {}",
            fit.slope,
            fit.intercept,
            fit.r2,
            fit.pearson,
            fit.spearman,
            path.display()
        );
    }
    Ok(())
}

/// Writes a copy of the input with the sentences (empty for filtered-out cells) and the fit.
fn write_h5ad(
    input: &std::path::Path,
    output: &std::path::Path,
    prepared: &Prepared,
    kept: &[String],
) -> Result<(), String> {
    let mut sentences = vec![String::new(); prepared.report.input_cells];
    for (s, &cell) in kept.iter().zip(&prepared.report.kept_cells) {
        sentences[cell] = s.clone();
    }
    let mut additions = Additions {
        obs: vec![ObsColumn {
            name: "c2s_cell_sentence".into(),
            data: ColumnData::Text(sentences),
        }],
        ..Default::default()
    };
    if let Some(fit) = &prepared.fit {
        additions.uns.push((
            "c2s_inverse_fit".into(),
            serde_json::to_value(fit).map_err(|e| e.to_string())?,
        ));
    }
    write_annotated_h5ad(input, output, &additions).map_err(|e| e.to_string())
}

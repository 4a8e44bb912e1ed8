//! `c2s-studio convert`: an `.h5ad` file to a table of cell sentences (Parquet or CSV).

use super::data_args::DataArgs;
use c2s_core::Progress;
use c2s_core::convert::{Prepared, prepare_h5ad};
use c2s_core::dataset::{ColumnData, ObsColumn};
use c2s_core::io::atomic::{ensure_not_input, write_atomically};
use c2s_core::io::export::write_sentence_table;
use c2s_core::io::h5ad::{Additions, describe_kind, write_annotated_h5ad};
use std::path::PathBuf;

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input `.h5ad` file.
    pub input: PathBuf,
    /// Output table (`.parquet` or `.csv`); must not exist as the input.
    #[arg(long)]
    pub out: PathBuf,
    /// Matrix, gene names, preprocessing and tie-break.
    #[command(flatten)]
    pub data: DataArgs,
    /// Keep only the top K genes of each sentence.
    #[arg(long)]
    pub top_k: Option<usize>,
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
    let options = args.data.convert_options(
        args.top_k,
        args.fit_out.is_some() || args.h5ad_out.is_some(),
        args.obs.clone(),
    );
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

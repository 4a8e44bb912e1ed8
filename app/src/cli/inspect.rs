//! `c2s-studio inspect`: a readable summary of an `.h5ad` file.

use c2s_core::dataset::{ColumnData, Dataset};
use c2s_core::io::h5ad::{default_matrix, describe_kind, inspect_h5ad};
use std::fmt::Write;
use std::path::PathBuf;

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `.h5ad` file to describe.
    pub input: PathBuf,
}

/// Runs `inspect`.
pub fn run(args: Args) -> Result<(), String> {
    let ds = inspect_h5ad(&args.input).map_err(|e| e.to_string())?;
    print!("{}", summary(&ds));
    Ok(())
}

/// The text `inspect` prints.
pub fn summary(ds: &Dataset) -> String {
    let mut s = String::new();
    let n_genes = ds.matrices.first().map_or(0, |m| m.shape.1);
    let name = ds
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = writeln!(s, "{name}: {} cells × {n_genes} genes", ds.n_cells());
    let default = default_matrix(&ds.matrices);
    let _ = writeln!(s, "matrices:");
    for m in &ds.matrices {
        let mark = if m.choice == default {
            "  (default for sentences)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {:<14} {} × {}, {} {}: {}{mark}",
            m.choice.to_string(),
            m.shape.0,
            m.shape.1,
            m.storage,
            m.dtype,
            describe_kind(m.kind)
        );
    }
    let example: Vec<&str> = ds.var_names.iter().take(5).map(String::as_str).collect();
    let _ = writeln!(
        s,
        "gene names: from {} (e.g. {})",
        ds.gene_column,
        example.join(", ")
    );
    let _ = writeln!(s, "obs columns ({}):", ds.obs.len());
    for c in &ds.obs {
        let what = match &c.data {
            ColumnData::Categorical { categories, codes } => {
                let mut counts = vec![0usize; categories.len()];
                codes
                    .iter()
                    .filter(|&&k| k >= 0)
                    .for_each(|&k| counts[k as usize] += 1);
                let mut order: Vec<usize> = (0..categories.len()).collect();
                order.sort_by_key(|&k| std::cmp::Reverse(counts[k]));
                let top: Vec<String> = order
                    .iter()
                    .take(4)
                    .map(|&k| format!("{} ({})", categories[k], counts[k]))
                    .collect();
                let more = if categories.len() > 4 { ", ..." } else { "" };
                format!(
                    "categorical, {} categories: {}{more}",
                    categories.len(),
                    top.join(", ")
                )
            }
            ColumnData::Numeric(v) => {
                let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
                let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("numeric, range {min:.4} – {max:.4}")
            }
            ColumnData::Bool(v) => format!("boolean, {} true", v.iter().filter(|b| **b).count()),
            ColumnData::Text(v) => format!(
                "text, e.g. {:?}",
                v.first().map(String::as_str).unwrap_or("")
            ),
        };
        let _ = writeln!(s, "  {:<20} {what}", c.name);
    }
    let _ = writeln!(s, "embeddings (obsm):");
    if ds.obsm.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for e in &ds.obsm {
        let _ = writeln!(s, "  {:<14} {} components", e.name, e.n_cols);
    }
    if !ds.palettes.is_empty() {
        let names: Vec<&str> = ds.palettes.keys().map(String::as_str).collect();
        let _ = writeln!(s, "colour palettes: {}", names.join(", "));
    }
    s
}

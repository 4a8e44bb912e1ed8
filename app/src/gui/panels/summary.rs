//! The dataset summary: shape, matrices and what they hold, embeddings, obs columns, palettes.

use c2s_core::dataset::{ColumnData, Dataset};
use c2s_core::io::h5ad::describe_kind;
use egui::Ui;

/// Shows the summary of `d`.
pub fn show(ui: &mut Ui, d: &Dataset) {
    if let Some(src) = &d.source {
        ui.label(format!("File: {}", src.display()));
    }
    ui.label(format!(
        "{} cells × {} genes (gene names from {})",
        d.n_cells(),
        d.var_names.len(),
        if d.gene_column.is_empty() {
            "index"
        } else {
            &d.gene_column
        }
    ));
    ui.add_space(4.0);
    ui.strong("Matrices");
    egui::Grid::new("summary matrices")
        .striped(true)
        .show(ui, |ui| {
            for m in &d.matrices {
                let loaded = d.loaded.as_ref() == Some(&m.choice);
                ui.label(format!(
                    "{}{}",
                    m.choice,
                    if loaded { " (loaded)" } else { "" }
                ));
                ui.label(format!("{} × {}", m.shape.0, m.shape.1));
                ui.label(format!("{} {}", m.storage, m.dtype));
                ui.label(describe_kind(m.kind));
                ui.end_row();
            }
        });
    if d.loaded.is_some() {
        let nnz = d.expression.nnz();
        let total = (d.expression.n_rows * d.expression.n_cols).max(1);
        ui.weak(format!(
            "loaded matrix: {nnz} stored values ({:.1} % dense)",
            100.0 * nnz as f64 / total as f64
        ));
    }
    ui.add_space(4.0);
    ui.strong("Embeddings (obsm)");
    for e in &d.obsm {
        ui.label(format!("{} — {} components", e.name, e.n_cols));
    }
    if d.obsm.is_empty() {
        ui.weak("none");
    }
    ui.add_space(4.0);
    ui.strong("Cell annotations (obs)");
    egui::Grid::new("summary obs").striped(true).show(ui, |ui| {
        for c in &d.obs {
            ui.label(&c.name);
            ui.label(match &c.data {
                ColumnData::Categorical { categories, .. } => {
                    let palette = if d.palettes.contains_key(&c.name) {
                        ", palette in uns"
                    } else {
                        ""
                    };
                    format!("categorical, {} categories{palette}", categories.len())
                }
                ColumnData::Numeric(v) => {
                    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                    let (lo, hi) = finite
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                            (a.min(x), b.max(x))
                        });
                    if finite.is_empty() {
                        "numeric (all missing)".into()
                    } else {
                        format!("numeric, {lo:.3} – {hi:.3}")
                    }
                }
                ColumnData::Bool(v) => format!("bool, {} true", v.iter().filter(|&&b| b).count()),
                ColumnData::Text(_) => "text".into(),
            });
            ui.end_row();
        }
    });
}

//! The Summary tab: the active dataset's shape, matrices and what they hold, embeddings, obs
//! columns and palettes. Describing the columns scans every value, so it runs as a job once per
//! change of the obs columns, never per frame.

use c2s_core::dataset::{ColumnData, Dataset};
use c2s_core::io::h5ad::describe_kind;
use egui::Ui;

use super::{Panel, PanelContext};
use crate::gui::jobs::{JobContext, JobHandle, Lane};

/// Which view and obs generation a description belongs to.
type Key = (u64, u64);

/// The Summary tab.
#[derive(Debug, Default)]
pub struct SummaryPanel {
    /// Column descriptions of the latest key.
    described: Option<(Key, Vec<String>)>,
    /// The job describing the active view's columns, when they changed.
    job: Option<(Key, JobHandle<Vec<String>>)>,
}

impl Panel for SummaryPanel {
    fn id(&self) -> &'static str {
        "summary"
    }

    fn title(&self) -> &'static str {
        "Summary"
    }

    fn update(&mut self, _cx: &mut PanelContext<'_>) {
        if let Some((key, job)) = &mut self.job
            && let Some(result) = job.poll().result
        {
            if let Ok(lines) = result {
                self.described = Some((*key, lines));
            }
            self.job = None;
        }
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        let Some(view) = cx.views.iter().find(|v| Some(v.id) == cx.active) else {
            ui.weak("Open a dataset to see its summary.");
            return;
        };
        let key = (view.id, view.obs_generation);
        let described = self.described.as_ref().filter(|(k, _)| *k == key);
        if described.is_none() && self.job.as_ref().is_none_or(|(k, _)| *k != key) {
            let dataset = view.dataset.clone();
            let job = cx.jobs.spawn(
                format!("Describing {}", view.title),
                Lane::Cpu,
                move |_: &JobContext<()>| Ok(describe_columns(&dataset)),
            );
            self.job = Some((key, job));
        }
        let columns = described.map(|(_, lines)| lines.as_slice());
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| show(ui, &view.dataset, columns));
    }
}

/// One line per obs column: its kind and range or categories.
pub fn describe_columns(d: &Dataset) -> Vec<String> {
    d.obs
        .iter()
        .map(|c| match &c.data {
            ColumnData::Categorical { categories, .. } => {
                let palette = if d.palettes.contains_key(&c.name) {
                    ", palette in uns"
                } else {
                    ""
                };
                format!("categorical, {} categories{palette}", categories.len())
            }
            ColumnData::Numeric(v) => {
                let (lo, hi) = v
                    .iter()
                    .filter(|x| x.is_finite())
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                        (a.min(x), b.max(x))
                    });
                if lo > hi {
                    "numeric (all missing)".into()
                } else {
                    format!("numeric, {lo:.3} – {hi:.3}")
                }
            }
            ColumnData::Bool(v) => format!("bool, {} true", v.iter().filter(|&&b| b).count()),
            ColumnData::Text(_) => "text".into(),
        })
        .collect()
}

/// Shows the summary of `d`; `columns` describes its obs columns once computed.
pub fn show(ui: &mut Ui, d: &Dataset, columns: Option<&[String]>) {
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
    let Some(columns) = columns.filter(|c| c.len() == d.obs.len()) else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.weak("describing the columns…");
        });
        return;
    };
    egui::Grid::new("summary obs").striped(true).show(ui, |ui| {
        for (c, text) in d.obs.iter().zip(columns) {
            ui.label(&c.name);
            ui.label(text);
            ui.end_row();
        }
    });
}

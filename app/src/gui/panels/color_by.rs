//! "Colour by": the obs columns (categorical and continuous), the gene search, and which
//! expression matrix genes are read from.

use c2s_core::dataset::ColumnData;
use egui::Ui;

use crate::gui::coloring::ColorSource;
use crate::gui::panels::gene_search::{self, GeneSearchState};
use crate::gui::view::DatasetView;

/// Shows the colour-by choices for `view`.
pub fn show(ui: &mut Ui, view: &mut DatasetView, genes: &mut GeneSearchState) {
    ui.heading("Colour by");
    let mut pick: Option<ColorSource> = None;
    if ui
        .selectable_label(view.color_source == ColorSource::None, "nothing")
        .clicked()
    {
        pick = Some(ColorSource::None);
    }
    egui::ScrollArea::vertical()
        .id_salt("obs columns")
        .max_height(220.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            for column in &view.dataset.obs {
                let kind = match &column.data {
                    ColumnData::Categorical { categories, .. } => {
                        format!("{} categories", categories.len())
                    }
                    ColumnData::Numeric(_) => "numeric".into(),
                    ColumnData::Bool(_) => "bool".into(),
                    ColumnData::Text(_) => "text".into(),
                };
                let source = ColorSource::Obs(column.name.clone());
                let selected = view.color_source == source;
                ui.horizontal(|ui| {
                    if ui.selectable_label(selected, &column.name).clicked() {
                        pick = Some(source);
                    }
                    ui.weak(kind);
                });
            }
        });
    if let Some(source) = pick {
        genes.error = view.set_color_source(source).err();
    }
    ui.separator();
    gene_search::show(ui, view, genes);
    let d = &view.dataset;
    if let Some(loaded) = &d.loaded {
        let info = d.matrices.iter().find(|m| &m.choice == loaded);
        let kind = info.map(|m| format!("{:?}", m.kind)).unwrap_or_default();
        ui.weak(format!("genes read from {loaded} ({kind})"));
    }
}

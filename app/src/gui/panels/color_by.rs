//! "Colour by": the obs columns (categorical and continuous), the gene search, and which
//! expression matrix genes are read from.

use c2s_core::dataset::ColumnData;
use egui::Ui;

use crate::gui::actions::Action;
use crate::gui::coloring::ColorSource;
use crate::gui::panels::gene_search::{self, GeneSearchState};
use crate::gui::view::DatasetView;

/// Shows the colour-by choices for `view`.
pub fn show(
    ui: &mut Ui,
    view: &mut DatasetView,
    genes: &mut GeneSearchState,
    actions: &mut Vec<Action>,
) {
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
        genes.error = None;
        actions.push(Action::ColorBy(view.id, source));
    }
    ui.separator();
    gene_search::show(ui, view, genes, actions);
    matrix_choice(ui, view, actions);
}

/// Which matrix genes are read from; another one is loaded from the file in a job.
fn matrix_choice(ui: &mut Ui, view: &DatasetView, actions: &mut Vec<Action>) {
    let d = &view.dataset;
    let Some(loaded) = &d.loaded else {
        return;
    };
    let kind =
        |m: &c2s_core::dataset::MatrixInfo| c2s_core::io::h5ad::describe_kind(m.kind).to_string();
    let loaded_kind = d
        .matrices
        .iter()
        .find(|m| &m.choice == loaded)
        .map(kind)
        .unwrap_or_default();
    ui.horizontal(|ui| {
        ui.label("Matrix");
        let combo = egui::ComboBox::from_id_salt("matrix choice")
            .selected_text(loaded.to_string())
            .show_ui(ui, |ui| {
                for m in &d.matrices {
                    let label = format!("{} — {}", m.choice, kind(m));
                    let enabled = d.source.is_some() && &m.choice != loaded;
                    if ui
                        .add_enabled(
                            enabled,
                            egui::Button::selectable(&m.choice == loaded, label),
                        )
                        .clicked()
                    {
                        actions.push(Action::ReloadMatrix(view.id, m.choice.clone()));
                    }
                }
            });
        combo.response.on_hover_text(
            "Which expression matrix gene colours and cell sentences use; switching reloads it",
        );
    });
    ui.weak(loaded_kind);
}

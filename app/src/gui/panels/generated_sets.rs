//! The list of model-made cell sets of a view, shared by the Generate and Perturb tabs: show or
//! hide each on the plot, inspect its cells (prompt, raw output, sentence), export it as a new
//! `.h5ad`, remove it.

use egui::{Color32, Sense, Ui, Vec2};

use crate::gui::actions::Action;
use crate::gui::view::DatasetView;

/// Which cell of which set the inspector shows.
pub type Inspected = Option<(u64, usize)>;

/// Lists `view`'s sets whose label is `label_name`.
pub fn sets_ui(
    ui: &mut Ui,
    view: &mut DatasetView,
    label_name: &str,
    inspect: &mut Inspected,
    actions: &mut Vec<Action>,
) {
    let mut remove = None;
    let shown = view.embedding.clone().unwrap_or_default();
    let view_id = view.id;
    for set in view
        .generated
        .iter_mut()
        .filter(|s| s.label_name == label_name)
    {
        ui.horizontal(|ui| {
            swatch(ui, set.color());
            ui.checkbox(&mut set.visible, &set.title);
            let mut facts = format!(
                "{} cells, {:.1} unknown words per cell",
                set.cells.len(),
                set.unknown_per_cell()
            );
            if set.cancelled {
                facts.push_str(", cancelled");
            }
            if let Some(e) = &set.placement_error {
                facts.push_str(&format!(", {e}"));
            } else if !set.positions.contains_key(&shown) {
                facts.push_str(", not placed on this embedding");
            }
            ui.weak(facts);
            if ui.button("Export .h5ad…").clicked() {
                actions.push(Action::ExportGenerated(view_id, set.id));
            }
            if ui.button("Remove").clicked() {
                remove = Some(set.id);
            }
        });
        egui::CollapsingHeader::new("cells")
            .id_salt(("generated-cells", set.id))
            .show(ui, |ui| {
                egui::Grid::new(("generated-grid", set.id))
                    .striped(true)
                    .num_columns(2)
                    .show(ui, |ui| {
                        for (i, cell) in set.cells.iter().enumerate().take(100) {
                            let chosen = *inspect == Some((set.id, i));
                            if ui
                                .selectable_label(chosen, format!("{} #{i}", set.labels[i]))
                                .clicked()
                            {
                                *inspect = Some((set.id, i));
                            }
                            let sentence = cell.genes.sentence();
                            let short: String = sentence.chars().take(80).collect();
                            ui.label(egui::RichText::new(short).monospace());
                            ui.end_row();
                        }
                    });
            });
    }
    if let Some(id) = remove {
        view.generated.retain(|s| s.id != id);
        if inspect.is_some_and(|(s, _)| s == id) {
            *inspect = None;
        }
    }
    inspector(ui, view, *inspect);
}

/// A small square of the set's colour.
fn swatch(ui: &mut Ui, color: Color32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
    ui.painter().rect_filled(rect, 2.0, color);
}

/// The inspected cell's prompt, raw output and sentence.
fn inspector(ui: &mut Ui, view: &DatasetView, inspect: Inspected) {
    let Some((set, i)) = inspect else {
        return;
    };
    let Some(set) = view.generated.iter().find(|s| s.id == set) else {
        return;
    };
    let (Some(cell), Some(prompt)) = (set.cells.get(i), set.prompts.get(i)) else {
        return;
    };
    ui.separator();
    ui.strong(format!("{} #{i}", set.labels[i]));
    if let Some(control) = set.controls.get(i) {
        ui.label(format!("control cell: {control}"));
    }
    ui.strong("Prompt");
    ui.label(egui::RichText::new(prompt).monospace());
    ui.strong("Raw output");
    ui.label(egui::RichText::new(&cell.text).monospace());
    ui.strong(format!(
        "Sentence ({} genes, {} unknown words dropped)",
        cell.genes.genes.len(),
        cell.genes.unknown
    ));
    ui.label(egui::RichText::new(cell.genes.sentence()).monospace());
}

//! The selection panel: count, clear / invert, save as a categorical label, export.

use egui::Ui;

use crate::gui::actions::Action;
use crate::gui::selection::SelectMode;
use crate::gui::view::DatasetView;

/// UI state of the "save as label" form.
#[derive(Debug)]
pub struct SelectionPanelState {
    /// Column to write into.
    pub column: String,
    /// Label for the selected cells.
    pub label: String,
    /// Result of the last save.
    pub message: Option<Result<String, String>>,
}

impl Default for SelectionPanelState {
    fn default() -> Self {
        Self {
            column: "annotation".into(),
            label: "selection 1".into(),
            message: None,
        }
    }
}

/// Shows the selection panel.
pub fn show(
    ui: &mut Ui,
    view: &mut DatasetView,
    state: &mut SelectionPanelState,
    actions: &mut Vec<Action>,
) {
    ui.heading("Selection");
    let count = view.selection.count();
    ui.label(format!("{count} of {} cells selected", view.n_cells()));
    ui.horizontal(|ui| {
        if ui
            .add_enabled(count > 0, egui::Button::new("Clear"))
            .clicked()
        {
            view.selection.clear();
            view.refresh_flags();
        }
        if ui.button("Invert").clicked() {
            let hits: Vec<usize> = (0..view.n_cells())
                .filter(|&i| !view.selection.contains(i))
                .collect();
            view.select(hits, SelectMode::Replace);
        }
    });
    ui.add_space(4.0);
    ui.label("Save as label");
    egui::Grid::new("save label").num_columns(2).show(ui, |ui| {
        ui.label("column");
        ui.text_edit_singleline(&mut state.column);
        ui.end_row();
        ui.label("label");
        ui.text_edit_singleline(&mut state.label);
        ui.end_row();
    });
    if ui
        .add_enabled(count > 0, egui::Button::new("Save label"))
        .clicked()
    {
        let result = view.save_selection_as_label(&state.column, &state.label);
        state.message = Some(result.map(|()| {
            format!(
                "{count} cells labelled '{}' in '{}'",
                state.label, state.column
            )
        }));
        if state.message.as_ref().is_some_and(|m| m.is_ok()) {
            state.label = next_label(&state.label);
        }
    }
    match &state.message {
        Some(Ok(m)) => {
            ui.weak(m);
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
    ui.add_space(4.0);
    if ui
        .add_enabled(count > 0, egui::Button::new("Export selection CSV…"))
        .clicked()
    {
        actions.push(Action::ExportSelectionCsv);
    }
}

/// "selection 1" → "selection 2"; anything else gets " 2" appended.
fn next_label(label: &str) -> String {
    match label.rsplit_once(' ') {
        Some((stem, n)) if n.parse::<u32>().is_ok() => {
            format!("{stem} {}", n.parse::<u32>().unwrap_or(0) + 1)
        }
        _ => format!("{label} 2"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_label_counts_up() {
        assert_eq!(super::next_label("selection 1"), "selection 2");
        assert_eq!(super::next_label("T cells"), "T cells 2");
    }
}

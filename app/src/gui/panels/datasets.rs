//! The list of open datasets (several at once), with open / demo / close buttons.

use egui::Ui;

use crate::gui::actions::Action;
use crate::gui::demo;
use crate::gui::view::DatasetView;

/// Shows the open datasets; the active one is highlighted.
pub fn show(ui: &mut Ui, views: &[DatasetView], active: Option<u64>, actions: &mut Vec<Action>) {
    ui.heading("Datasets");
    for v in views {
        ui.horizontal(|ui| {
            let label = format!("{} · {} cells", v.title, v.n_cells());
            if ui.selectable_label(active == Some(v.id), label).clicked() {
                actions.push(Action::Activate(v.id));
            }
            if ui
                .small_button("✖")
                .on_hover_text("Close this dataset")
                .clicked()
            {
                actions.push(Action::Close(v.id));
            }
        });
    }
    ui.horizontal(|ui| {
        if ui.button("Open…").clicked() {
            actions.push(Action::OpenDialog);
        }
        if ui
            .button("Demo")
            .on_hover_text("Open the built-in demo dataset")
            .clicked()
        {
            actions.push(Action::OpenDemo(demo::DEFAULT_CELLS));
        }
    });
}

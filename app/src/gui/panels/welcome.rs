//! The start page shown when no dataset is open: open a file, the demo, or a recent file.

use std::path::PathBuf;

use egui::{RichText, Ui};

use crate::gui::actions::Action;
use crate::gui::demo;

/// Shows the start page.
pub fn show(ui: &mut Ui, recent: &[PathBuf], busy: bool, actions: &mut Vec<Action>) {
    ui.vertical_centered(|ui| {
        ui.add_space(ui.available_height() * 0.2);
        ui.heading(RichText::new("C2S Studio").size(28.0));
        ui.label("Explore single-cell data and Cell2Sentence models, fully offline.");
        ui.add_space(16.0);
        if ui.button(RichText::new("Open .h5ad…").size(16.0)).clicked() {
            actions.push(Action::OpenDialog);
        }
        ui.add_space(4.0);
        if ui
            .button(RichText::new("Open demo dataset").size(16.0))
            .on_hover_text("A generated PBMC-like dataset: 5,000 cells, 8 cell types")
            .clicked()
        {
            actions.push(Action::OpenDemo(demo::DEFAULT_CELLS));
        }
        ui.add_space(8.0);
        ui.weak("…or drop .h5ad files anywhere on this window.");
        if busy {
            ui.add_space(8.0);
            ui.spinner();
        }
        if !recent.is_empty() {
            ui.add_space(16.0);
            ui.strong("Recent files");
            for path in recent {
                if ui.link(path.display().to_string()).clicked() {
                    actions.push(Action::OpenPaths(vec![path.clone()]));
                }
            }
        }
    });
}

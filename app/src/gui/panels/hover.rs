//! The hover tooltip of a cell: its id, its value in the current colouring, and its top genes
//! (the start of its cell sentence).

use egui::{RichText, Ui};

use crate::gui::view::DatasetView;

/// How many genes of the cell sentence the tooltip shows.
pub const TOP_GENES: usize = 10;

/// Fills a tooltip for cell `i`.
pub fn cell_tooltip(ui: &mut Ui, view: &DatasetView, i: usize) {
    let d = &view.dataset;
    ui.label(RichText::new(&d.obs_names[i]).strong().monospace());
    if let Some(value) = view.color_value_text(i) {
        ui.label(format!("{}: {value}", view.color_source.label()));
    }
    let sentence = view.sentence(i, TOP_GENES);
    if sentence.is_empty() {
        ui.weak("no expressed genes in the loaded matrix");
    } else {
        let matrix = d.loaded.as_ref().map(|m| m.to_string()).unwrap_or_default();
        ui.weak(format!("cell sentence (top {TOP_GENES} genes, {matrix}):"));
        ui.label(RichText::new(sentence).monospace());
    }
}

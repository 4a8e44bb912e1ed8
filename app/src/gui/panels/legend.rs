//! The categorical legend: colour, name and cell count per category. Click hides a category,
//! double-click shows it alone, right-click selects its cells. Long lists (thousands of
//! categories) are filtered and drawn virtually, only the visible rows.

use egui::{Color32, RichText, Sense, Ui, Vec2};

use crate::gui::coloring::Legend;
use crate::gui::selection::SelectMode;
use crate::gui::view::DatasetView;

/// UI state of the legend.
#[derive(Debug, Default)]
pub struct LegendState {
    /// Substring filter on category names.
    pub filter: String,
    /// Sort by count (descending) instead of stored order.
    pub by_count: bool,
}

/// Above this many categories the legend offers a filter box.
const FILTER_FROM: usize = 12;

/// Shows the legend of a categorical colouring (nothing for other colourings).
pub fn show(ui: &mut Ui, view: &mut DatasetView, state: &mut LegendState) {
    let Legend::Categorical(legend) = &mut view.legend else {
        return;
    };
    let n = legend.categories.len();
    ui.horizontal(|ui| {
        ui.strong(format!("{n} categories"));
        if ui.small_button("Show all").clicked() {
            legend.hidden.iter_mut().for_each(|h| *h = false);
        }
        if ui.small_button("Hide all").clicked() {
            legend.hidden.iter_mut().for_each(|h| *h = true);
        }
        ui.toggle_value(&mut state.by_count, "by count");
    });
    if n > FILTER_FROM {
        ui.add(
            egui::TextEdit::singleline(&mut state.filter)
                .hint_text("filter categories")
                .desired_width(f32::INFINITY),
        );
    }
    let filter = state.filter.to_lowercase();
    let mut rows: Vec<usize> = (0..n)
        .filter(|&c| filter.is_empty() || legend.categories[c].to_lowercase().contains(&filter))
        .collect();
    if state.by_count {
        rows.sort_by(|&a, &b| legend.counts[b].cmp(&legend.counts[a]));
    }
    let mut changed = false;
    let mut select: Option<(usize, SelectMode)> = None;
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    egui::ScrollArea::vertical()
        .id_salt("legend rows")
        .max_height(ui.available_height() * 0.6)
        .auto_shrink([false, true])
        .show_rows(ui, row_height, rows.len(), |ui, range| {
            for &c in &rows[range] {
                ui.horizontal(|ui| {
                    let hidden = legend.hidden[c];
                    let (swatch, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
                    let color = if hidden {
                        Color32::TRANSPARENT
                    } else {
                        legend.colors[c]
                    };
                    ui.painter().rect_filled(swatch, 2.0, color);
                    ui.painter().rect_stroke(
                        swatch,
                        2.0,
                        egui::Stroke::new(1.0, legend.colors[c]),
                        egui::StrokeKind::Inside,
                    );
                    let mut text = RichText::new(&legend.categories[c]);
                    if hidden {
                        text = text.weak().strikethrough();
                    }
                    let response = ui
                        .add(egui::Label::new(text).sense(Sense::click()).truncate())
                        .on_hover_text(
                            "click: hide/show · double-click: show only this · right-click: select",
                        );
                    if response.double_clicked() {
                        legend.solo(c);
                        changed = true;
                    } else if response.clicked() {
                        legend.hidden[c] = !legend.hidden[c];
                        changed = true;
                    }
                    response.context_menu(|ui| {
                        if ui.button("Select these cells").clicked() {
                            select = Some((c, SelectMode::Replace));
                        }
                        if ui.button("Add to selection").clicked() {
                            select = Some((c, SelectMode::Add));
                        }
                        if ui.button("Remove from selection").clicked() {
                            select = Some((c, SelectMode::Subtract));
                        }
                    });
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        ui.weak(legend.counts[c].to_string());
                    });
                });
            }
        });
    if legend.missing > 0 {
        ui.weak(format!("{} cells with no value (grey)", legend.missing));
    }
    if let Some((c, mode)) = select {
        view.select_category(c, mode);
    } else if changed {
        view.refresh_flags();
    }
}

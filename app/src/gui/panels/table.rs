//! The obs table: one row per cell, sortable by any column (click a header), filterable (see
//! [`table_model`](crate::gui::table_model) for the filter syntax), optionally limited to the
//! selection; clicking a row selects that cell, and selected cells are highlighted.
//!
//! Sorting and filtering run on the table thread ([`TableWorker`]); the panel keeps showing the
//! previous rows until the new order arrives. Only visible rows are drawn, so it scales to
//! millions of cells.

use std::sync::Arc;

use egui::{Sense, Ui, Vec2};

use super::{Panel, PanelContext};
use crate::gui::selection::SelectMode;
use crate::gui::table_model::{Query, Sort};
use crate::gui::table_worker::{Request, Rows, TableWorker};
use crate::gui::view::DatasetView;

/// Width of a data column in points.
const COLUMN_WIDTH: f32 = 120.0;

/// UI state of the table.
#[derive(Debug, Default)]
pub struct TableState {
    /// Sort order; `None` keeps the dataset's order.
    pub sort: Option<Sort>,
    /// Filter text.
    pub filter: String,
    /// Show only selected cells.
    pub only_selected: bool,
    worker: TableWorker,
    /// What the latest request asked for.
    requested: Option<Asked>,
    /// Generation of the latest answer taken from the worker.
    answered: u64,
    /// The rows shown and the dataset key they belong to.
    shown: Option<((u64, u64), Rows)>,
    /// Why the latest request has no rows (a bad filter).
    error: Option<String>,
}

/// The inputs of a request, to tell when a new one is needed.
#[derive(Debug, Clone, PartialEq)]
struct Asked {
    key: (u64, u64),
    filter: String,
    sort: Option<Sort>,
    /// The selection's generation when only selected cells are shown.
    only: Option<u64>,
}

impl TableState {
    /// Whether a sort or filter is still running.
    pub fn is_busy(&self) -> bool {
        self.answered < self.worker.latest()
    }

    /// Number of rows shown for `view`, once its table is ready.
    pub fn row_count(&self, view: &DatasetView) -> Option<usize> {
        self.shown
            .as_ref()
            .filter(|(key, _)| *key == table_key(view))
            .map(|(_, rows)| rows.order.len())
    }

    /// Takes a finished answer from the worker.
    fn poll(&mut self) {
        if let Some(outcome) = self.worker.poll() {
            self.answered = outcome.generation;
            match outcome.rows {
                Ok(rows) => {
                    self.shown = Some((outcome.key, rows));
                    self.error = None;
                }
                Err(message) => self.error = Some(message),
            }
        }
    }

    /// Sends a request when the dataset, the query or (when it matters) the selection changed.
    fn sync(&mut self, view: &DatasetView, ctx: &egui::Context) {
        let asked = Asked {
            key: table_key(view),
            filter: self.filter.clone(),
            sort: self.sort,
            only: self.only_selected.then_some(view.points.flags.0),
        };
        if self.requested.as_ref() == Some(&asked) {
            return;
        }
        self.worker.set_repaint_context(ctx.clone());
        self.worker.request(Request {
            dataset: view.dataset.clone(),
            key: asked.key,
            query: Query {
                filter: self.filter.clone(),
                sort: self.sort,
                only: self
                    .only_selected
                    .then(|| Arc::new(view.selection.flags().to_vec())),
            },
        });
        self.requested = Some(asked);
    }
}

/// Identifies a view's obs contents: its id and obs generation.
fn table_key(view: &DatasetView) -> (u64, u64) {
    (view.id, view.obs_generation)
}

/// The Table tab: the active dataset's obs table. Its sort, filter and scroll belong to that
/// dataset ([`DatasetView::panels`]), so switching files never carries a sort column over.
#[derive(Debug, Default)]
pub struct TablePanel;

impl Panel for TablePanel {
    fn id(&self) -> &'static str {
        "table"
    }

    fn title(&self) -> &'static str {
        "Table"
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        let Some(view) = cx.active_view() else {
            ui.weak("Open a dataset to see its cells.");
            return;
        };
        let mut state = std::mem::take(&mut view.panels.table);
        show(ui, view, &mut state);
        view.panels.table = state;
    }
}

/// Shows the table for `view`.
pub fn show(ui: &mut Ui, view: &mut DatasetView, state: &mut TableState) {
    state.poll();
    ui.horizontal(|ui| {
        ui.strong("Cells");
        let label = ui.label("Filter");
        ui.add(
            egui::TextEdit::singleline(&mut state.filter)
                .hint_text("text, column=value, column>number, column:text")
                .desired_width(320.0),
        )
        .labelled_by(label.id)
        .on_hover_text(
            "Terms separated by spaces must all hold; quote values with spaces:\n\
             cell_type=\"CD4 T\" n_counts>=2000 donor",
        );
        ui.checkbox(&mut state.only_selected, "Only selected");
        match state.row_count(view) {
            Some(n) => ui.label(format!("{n} of {} cells", view.n_cells())),
            None => ui.weak("preparing the table…"),
        };
        if state.is_busy() {
            ui.spinner();
        }
    });
    if let Some(error) = &state.error {
        ui.colored_label(ui.visuals().error_fg_color, error);
    }
    let key = table_key(view);
    let clicked = match &state.shown {
        Some((shown, rows)) if *shown == key => rows_ui(ui, view, &mut state.sort, rows),
        _ => None,
    };
    if let Some((i, mode)) = clicked {
        view.select(vec![i], mode);
    }
    state.sync(view, ui.ctx());
}

/// The header (click to sort) and the visible rows; returns a clicked row's cell.
fn rows_ui(
    ui: &mut Ui,
    view: &DatasetView,
    sort: &mut Option<Sort>,
    rows: &Rows,
) -> Option<(usize, SelectMode)> {
    let names = rows.frame.names();
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    let mut clicked = None;
    egui::ScrollArea::horizontal()
        .id_salt("table h")
        .show(ui, |ui| {
            // Headers share the rows' column geometry, so titles sit above their values.
            let (header, _) = ui.allocate_exact_size(
                Vec2::new(COLUMN_WIDTH * names.len() as f32, row_height),
                Sense::hover(),
            );
            let strong = egui::TextStyle::Button.resolve(ui.style());
            for (c, name) in names.iter().enumerate() {
                let arrow = match sort {
                    Some(s) if s.column == c && !s.descending => " ⏶",
                    Some(s) if s.column == c => " ⏷",
                    _ => " ↕",
                };
                let title = format!("{name}{arrow}");
                let cell = column_rect(header, c);
                let response = ui.interact(cell, ui.id().with(("table header", c)), Sense::click());
                response.widget_info(|| {
                    egui::WidgetInfo::labeled(egui::WidgetType::Button, true, &title)
                });
                let color = if response.hovered() {
                    ui.visuals().strong_text_color()
                } else {
                    ui.visuals().text_color()
                };
                ui.painter().with_clip_rect(cell).text(
                    cell.left_center(),
                    egui::Align2::LEFT_CENTER,
                    &title,
                    strong.clone(),
                    color,
                );
                if response
                    .on_hover_text(format!("{name}: click to sort"))
                    .clicked()
                {
                    *sort = next_sort(*sort, c);
                }
            }
            ui.separator();
            let font = egui::TextStyle::Body.resolve(ui.style());
            egui::ScrollArea::vertical()
                .id_salt("table v")
                .auto_shrink([false, false])
                .show_rows(ui, row_height, rows.order.len(), |ui, range| {
                    for &i in &rows.order[range] {
                        let (rect, response) = ui.allocate_exact_size(
                            Vec2::new(COLUMN_WIDTH * names.len() as f32, row_height),
                            Sense::click(),
                        );
                        let id = rows.frame.text(0, i);
                        response.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::WidgetType::Button, true, &id)
                        });
                        if view.selection.contains(i) {
                            ui.painter()
                                .rect_filled(rect, 0.0, ui.visuals().selection.bg_fill);
                        } else if response.hovered() {
                            ui.painter()
                                .rect_filled(rect, 0.0, ui.visuals().faint_bg_color);
                        }
                        for c in 0..names.len() {
                            let cell = column_rect(rect, c);
                            ui.painter().with_clip_rect(cell).text(
                                cell.left_center(),
                                egui::Align2::LEFT_CENTER,
                                rows.frame.text(c, i),
                                font.clone(),
                                ui.visuals().text_color(),
                            );
                        }
                        if response.clicked() {
                            let m = ui.input(|inp| inp.modifiers);
                            clicked = Some((i, SelectMode::from_modifiers(m)));
                        }
                    }
                });
        });
    clicked
}

/// The text area of column `c` in a row (or header) spanning `row`.
fn column_rect(row: egui::Rect, c: usize) -> egui::Rect {
    egui::Rect::from_min_size(
        row.min + Vec2::new(c as f32 * COLUMN_WIDTH + 4.0, 0.0),
        Vec2::new(COLUMN_WIDTH - 8.0, row.height()),
    )
}

/// A header click cycles ascending → descending → dataset order.
fn next_sort(sort: Option<Sort>, column: usize) -> Option<Sort> {
    match sort {
        Some(s) if s.column == column && !s.descending => Some(Sort {
            column,
            descending: true,
        }),
        Some(s) if s.column == column => None,
        _ => Some(Sort {
            column,
            descending: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_clicks_cycle_the_sort() {
        let asc = next_sort(None, 2);
        assert_eq!(
            asc,
            Some(Sort {
                column: 2,
                descending: false
            })
        );
        let desc = next_sort(asc, 2);
        assert_eq!(
            desc,
            Some(Sort {
                column: 2,
                descending: true
            })
        );
        assert_eq!(next_sort(desc, 2), None);
        // Another column starts ascending.
        assert_eq!(next_sort(desc, 0).map(|s| s.descending), Some(false));
    }
}

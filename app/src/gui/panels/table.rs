//! The obs table: one row per cell, sortable by any column, filterable by text, optionally
//! limited to the selection; clicking a row selects that cell. Only visible rows are drawn, so it
//! scales to millions of cells.

use c2s_core::dataset::{ColumnData, Dataset};
use egui::{RichText, Sense, Ui, Vec2};

use crate::gui::selection::SelectMode;
use crate::gui::view::DatasetView;

/// Width of a data column in points.
const COLUMN_WIDTH: f32 = 120.0;

/// UI state of the table.
#[derive(Debug, Default)]
pub struct TableState {
    /// Sort column (0 = cell id, k = obs column k−1) and whether ascending.
    pub sort: Option<(usize, bool)>,
    /// Case-insensitive substring filter over all columns.
    pub filter: String,
    /// Show only selected cells.
    pub only_selected: bool,
    /// Row order cache and the inputs it was computed for.
    cache: Option<(CacheKey, Vec<usize>)>,
}

#[derive(Debug, Clone, PartialEq)]
struct CacheKey {
    dataset: usize,
    n_columns: usize,
    flags_generation: u64,
    sort: Option<(usize, bool)>,
    filter: String,
    only_selected: bool,
}

/// Text of column `col` (0 = cell id) for cell `i`.
pub fn cell_text(d: &Dataset, col: usize, i: usize) -> String {
    if col == 0 {
        return d.obs_names[i].clone();
    }
    match &d.obs[col - 1].data {
        ColumnData::Categorical { codes, categories } => usize::try_from(codes[i])
            .ok()
            .and_then(|c| categories.get(c).cloned())
            .unwrap_or_default(),
        ColumnData::Numeric(v) => {
            if v[i].is_nan() {
                String::new()
            } else if v[i].fract() == 0.0 && v[i].abs() < 1e15 {
                format!("{}", v[i] as i64)
            } else {
                format!("{:.4}", v[i])
            }
        }
        ColumnData::Bool(v) => v[i].to_string(),
        ColumnData::Text(v) => v[i].clone(),
    }
}

/// Row order: filtered by `filter` and the selection, then sorted.
pub fn row_order(
    d: &Dataset,
    selected: &dyn Fn(usize) -> bool,
    sort: Option<(usize, bool)>,
    filter: &str,
    only_selected: bool,
) -> Vec<usize> {
    let needle = filter.trim().to_lowercase();
    let n_columns = d.obs.len() + 1;
    let mut rows: Vec<usize> = (0..d.n_cells())
        .filter(|&i| !only_selected || selected(i))
        .filter(|&i| {
            needle.is_empty()
                || (0..n_columns).any(|c| cell_text(d, c, i).to_lowercase().contains(&needle))
        })
        .collect();
    if let Some((col, ascending)) = sort {
        if col > 0
            && let ColumnData::Numeric(v) = &d.obs[col - 1].data
        {
            rows.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        } else {
            let mut keyed: Vec<(String, usize)> =
                rows.iter().map(|&i| (cell_text(d, col, i), i)).collect();
            keyed.sort();
            rows = keyed.into_iter().map(|(_, i)| i).collect();
        }
        if !ascending {
            rows.reverse();
        }
    }
    rows
}

/// Shows the table for `view`.
pub fn show(ui: &mut Ui, view: &mut DatasetView, state: &mut TableState) {
    let d = view.dataset.clone();
    ui.horizontal(|ui| {
        ui.strong("Cells");
        let label = ui.label("Filter");
        ui.add(egui::TextEdit::singleline(&mut state.filter).hint_text("text in any column"))
            .labelled_by(label.id);
        ui.checkbox(&mut state.only_selected, "Only selected");
    });
    let key = CacheKey {
        dataset: std::sync::Arc::as_ptr(&d) as usize,
        n_columns: d.obs.len(),
        flags_generation: view.points.flags.0,
        sort: state.sort,
        filter: state.filter.clone(),
        only_selected: state.only_selected,
    };
    if state.cache.as_ref().is_none_or(|(k, _)| *k != key) {
        let selection = &view.selection;
        let rows = row_order(
            &d,
            &|i| selection.contains(i),
            state.sort,
            &state.filter,
            state.only_selected,
        );
        state.cache = Some((key, rows));
    }
    let rows = &state.cache.as_ref().expect("just filled").1;
    ui.weak(format!("{} rows", rows.len()));
    let n_columns = d.obs.len() + 1;
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    let mut clicked: Option<(usize, SelectMode)> = None;
    egui::ScrollArea::horizontal()
        .id_salt("table h")
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                for c in 0..n_columns {
                    let name = if c == 0 {
                        "cell"
                    } else {
                        d.obs[c - 1].name.as_str()
                    };
                    let arrow = match state.sort {
                        Some((s, true)) if s == c => " ▲",
                        Some((s, false)) if s == c => " ▼",
                        _ => " ↕",
                    };
                    let button =
                        egui::Button::new(RichText::new(format!("{name}{arrow}")).strong())
                            .frame(false)
                            .truncate();
                    if ui.add_sized([COLUMN_WIDTH, row_height], button).clicked() {
                        state.sort = match state.sort {
                            Some((s, true)) if s == c => Some((c, false)),
                            Some((s, false)) if s == c => None,
                            _ => Some((c, true)),
                        };
                    }
                }
            });
            ui.separator();
            egui::ScrollArea::vertical()
                .id_salt("table v")
                .auto_shrink([false, false])
                .show_rows(ui, row_height, rows.len(), |ui, range| {
                    for &i in &rows[range] {
                        let selected = view.selection.contains(i);
                        let (rect, response) = ui.allocate_exact_size(
                            Vec2::new(COLUMN_WIDTH * n_columns as f32, row_height),
                            Sense::click(),
                        );
                        if selected {
                            ui.painter()
                                .rect_filled(rect, 0.0, ui.visuals().selection.bg_fill);
                        } else if response.hovered() {
                            ui.painter()
                                .rect_filled(rect, 0.0, ui.visuals().faint_bg_color);
                        }
                        for c in 0..n_columns {
                            let cell = egui::Rect::from_min_size(
                                rect.min + Vec2::new(c as f32 * COLUMN_WIDTH + 4.0, 0.0),
                                Vec2::new(COLUMN_WIDTH - 8.0, row_height),
                            );
                            ui.painter().with_clip_rect(cell).text(
                                cell.left_center(),
                                egui::Align2::LEFT_CENTER,
                                cell_text(&d, c, i),
                                egui::TextStyle::Body.resolve(ui.style()),
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
    if let Some((i, mode)) = clicked {
        view.select(vec![i], mode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::demo;
    use crate::gui::jobs::Progress;

    #[test]
    fn sort_filter_and_selection() {
        let d = demo::generate(200, &Progress::default()).unwrap();
        let n_counts = 1 + d.obs.iter().position(|c| c.name == "n_counts").unwrap();
        let rows = row_order(&d, &|_| true, Some((n_counts, false)), "", false);
        assert_eq!(rows.len(), 200);
        let ColumnData::Numeric(v) = &d.obs[n_counts - 1].data else {
            panic!()
        };
        assert!(rows.windows(2).all(|w| v[w[0]] >= v[w[1]]));
        let b_cells = row_order(&d, &|_| true, None, "B", false);
        assert!(
            b_cells
                .iter()
                .all(|&i| (0..=d.obs.len())
                    .any(|c| cell_text(&d, c, i).to_lowercase().contains('b')))
        );
        let only = row_order(&d, &|i| i < 10, Some((0, true)), "", true);
        assert_eq!(only, (0..10).collect::<Vec<_>>());
    }
}

//! The results table of the shown context and set: one row per perturbation with its effect,
//! z, p, q, hit call and selectivity against the other context; sortable by any column,
//! filtered by name or to hits; a click selects the row's perturbation (as a plot click does).

use std::collections::HashMap;

use c2s_core::screen::report::EffectRow;
use egui::Ui;

use super::results::{ResultsView, ScreenResults};
use crate::gui::table_model::format_number;

/// Row height.
const ROW: f32 = 20.0;
/// Column widths: name, then the numbers.
const NAME_W: f32 = 150.0;
const NUM_W: f32 = 82.0;

/// A sortable column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Library order.
    Library,
    /// Perturbation name.
    Name,
    /// Effect.
    Effect,
    /// z across the library.
    Z,
    /// p.
    P,
    /// q.
    Q,
    /// Selectivity against the other context.
    Selectivity,
}

/// Sort, filter and scroll state.
#[derive(Debug, Clone, PartialEq)]
pub struct TableState {
    /// Sort column.
    pub sort: SortKey,
    /// Largest first.
    pub descending: bool,
    /// Name filter (case-insensitive substring).
    pub filter: String,
    /// Hits only.
    pub hits_only: bool,
    /// Scroll to the selected row on the next frame.
    pub reveal: bool,
}

impl Default for TableState {
    fn default() -> Self {
        Self {
            sort: SortKey::Library,
            descending: false,
            filter: String::new(),
            hits_only: false,
            reveal: false,
        }
    }
}

/// One row: the effect and its selectivity (effect here minus effect in the other context).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// The effect row.
    pub effect: &'a EffectRow,
    /// Selectivity against the other context (`None` with one context).
    pub selectivity: Option<f64>,
}

/// A p or q value: scientific below 0.001 (so small values do not read as 0), else as other
/// numbers.
pub fn format_p(v: f64) -> String {
    if v > 0.0 && v < 1e-3 {
        format!("{v:.2e}")
    } else {
        format_number(v)
    }
}

/// The shown rows, filtered and sorted.
pub fn rows<'a>(
    results: &'a ScreenResults,
    view: &ResultsView,
    state: &TableState,
) -> Vec<Row<'a>> {
    let context = &results.contexts[view.context];
    let other = results.contexts.get(view.other).filter(|o| *o != context);
    let set = &results.sets[view.set];
    let selectivity: HashMap<&str, f64> = match other {
        Some(other) => results
            .report
            .selectivity
            .iter()
            .filter(|s| s.set == *set)
            .filter_map(|s| {
                if s.context_a == *context && s.context_b == *other {
                    Some((s.perturbation.as_str(), s.selectivity))
                } else if s.context_a == *other && s.context_b == *context {
                    Some((s.perturbation.as_str(), -s.selectivity))
                } else {
                    None
                }
            })
            .collect(),
        None => HashMap::new(),
    };
    let needle = state.filter.trim().to_lowercase();
    let mut out: Vec<Row<'a>> = results
        .effects(context, set)
        .into_iter()
        .filter(|r| !state.hits_only || r.hit)
        .filter(|r| needle.is_empty() || r.perturbation.to_lowercase().contains(&needle))
        .map(|r| Row {
            effect: r,
            selectivity: selectivity.get(r.perturbation.as_str()).copied(),
        })
        .collect();
    let key = |r: &Row<'_>| match state.sort {
        SortKey::Library | SortKey::Name => 0.0,
        SortKey::Effect => r.effect.effect,
        SortKey::Z => r.effect.z,
        SortKey::P => r.effect.p,
        SortKey::Q => r.effect.q,
        SortKey::Selectivity => r.selectivity.unwrap_or(f64::NAN),
    };
    match state.sort {
        SortKey::Library => {}
        SortKey::Name => out.sort_by(|a, b| a.effect.perturbation.cmp(&b.effect.perturbation)),
        // NaN last either way.
        _ => out.sort_by(|a, b| {
            let (x, y) = (key(a), key(b));
            match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if state.descending => y.total_cmp(&x),
                _ => x.total_cmp(&y),
            }
        }),
    }
    if state.descending && matches!(state.sort, SortKey::Library | SortKey::Name) {
        out.reverse();
    }
    out
}

/// Draws the filter row, the header (click to sort) and the rows.
pub fn show(ui: &mut Ui, results: &ScreenResults, view: &mut ResultsView, state: &mut TableState) {
    ui.horizontal(|ui| {
        let label = ui.label("Filter drugs");
        ui.add(egui::TextEdit::singleline(&mut state.filter).desired_width(160.0))
            .labelled_by(label.id);
        ui.checkbox(&mut state.hits_only, "hits only");
    });
    let shown = rows(results, view, state);
    let other = results
        .contexts
        .get(view.other)
        .filter(|o| **o != results.contexts[view.context]);
    ui.horizontal(|ui| {
        let mut header = |ui: &mut Ui, key: SortKey, text: &str, width: f32| {
            let arrow = match (state.sort == key, state.descending) {
                (true, false) => " ⏶",
                (true, true) => " ⏷",
                _ => "",
            };
            let button = egui::Button::new(egui::RichText::new(format!("{text}{arrow}")).strong())
                .frame(false);
            if ui.add_sized([width, ROW], button).clicked() {
                if state.sort == key {
                    state.descending = !state.descending;
                } else {
                    state.sort = key;
                    state.descending = !matches!(key, SortKey::Name | SortKey::P | SortKey::Q);
                }
            }
        };
        header(ui, SortKey::Name, "perturbation", NAME_W);
        header(ui, SortKey::Effect, "effect", NUM_W);
        header(ui, SortKey::Z, "z", NUM_W);
        header(ui, SortKey::P, "p", NUM_W);
        header(ui, SortKey::Q, "q", NUM_W);
        ui.add_sized(
            [NUM_W * 0.6, ROW],
            egui::Label::new(egui::RichText::new("hit").strong()),
        );
        if let Some(other) = other {
            header(ui, SortKey::Selectivity, &format!("vs {other}"), NUM_W);
        }
    });
    let mut area = egui::ScrollArea::vertical()
        .id_salt("screen-table")
        .max_height(260.0)
        .auto_shrink([false, true]);
    if state.reveal {
        state.reveal = false;
        if let Some(k) = shown
            .iter()
            .position(|r| Some(&r.effect.perturbation) == view.selected.as_ref())
        {
            let spacing = ui.spacing().item_spacing.y;
            area = area.vertical_scroll_offset((k as f32 * (ROW + spacing) - 60.0).max(0.0));
        }
    }
    area.show_rows(ui, ROW, shown.len(), |ui, range| {
        for row in &shown[range] {
            let r = row.effect;
            ui.horizontal(|ui| {
                let selected = view.selected.as_ref() == Some(&r.perturbation);
                let name = egui::Button::selectable(selected, r.perturbation.as_str());
                if ui.add_sized([NAME_W, ROW], name).clicked() {
                    view.selected = Some(r.perturbation.clone());
                }
                for v in [
                    format_number(r.effect),
                    format_number(r.z),
                    format_p(r.p),
                    format_p(r.q),
                ] {
                    ui.add_sized([NUM_W, ROW], egui::Label::new(v));
                }
                ui.add_sized(
                    [NUM_W * 0.6, ROW],
                    egui::Label::new(if r.hit { "hit" } else { "" }),
                );
                if other.is_some() {
                    let s = row.selectivity.map_or_else(|| "–".into(), format_number);
                    ui.add_sized([NUM_W, ROW], egui::Label::new(s));
                }
            });
        }
    });
    ui.weak(format!(
        "{} of {} perturbations shown",
        shown.len(),
        results
            .effects(&results.contexts[view.context], &results.sets[view.set])
            .len()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2s_core::screen::report::{Report, SelectivityRow};

    fn results() -> ScreenResults {
        let row = |p: &str, c: &str, effect: f64, pv: f64| EffectRow {
            perturbation: p.into(),
            context: c.into(),
            set: "S".into(),
            n: 2,
            mean: effect,
            control_mean: 0.0,
            effect,
            z: effect,
            t: 0.0,
            p: pv,
            q: pv,
            hit: effect > 1.0,
        };
        let sel = |p: &str, s: f64| SelectivityRow {
            perturbation: p.into(),
            set: "S".into(),
            context_a: "A".into(),
            context_b: "B".into(),
            selectivity: s,
            t: 0.0,
            p: 0.5,
            q: 0.5,
        };
        ScreenResults {
            dir: Default::default(),
            contexts: vec!["A".into(), "B".into()],
            sets: vec!["S".into()],
            report: Report {
                effects: vec![
                    row("beta", "A", 2.0, 0.01),
                    row("beta", "B", 0.5, 0.2),
                    row("alpha", "A", -1.0, f64::NAN),
                    row("alpha", "B", 0.0, 0.9),
                    row("gamma", "A", 0.5, 0.04),
                    row("gamma", "B", 0.5, 0.04),
                ],
                selectivity: vec![sel("beta", 1.5), sel("alpha", -1.0), sel("gamma", 0.0)],
            },
            units: Default::default(),
            genes: Default::default(),
        }
    }

    fn names(rows: &[Row<'_>]) -> Vec<String> {
        rows.iter().map(|r| r.effect.perturbation.clone()).collect()
    }

    #[test]
    fn small_p_values_stay_readable() {
        assert_eq!(format_p(0.000123), "1.23e-4");
        assert_eq!(format_p(0.5), format_number(0.5));
        assert_eq!(format_p(0.0), format_number(0.0));
    }

    #[test]
    fn rows_sort_filter_and_carry_selectivity() {
        let r = results();
        let mut view = ResultsView::default();
        let mut state = TableState::default();
        assert_eq!(names(&rows(&r, &view, &state)), ["beta", "alpha", "gamma"]);
        state.sort = SortKey::P;
        assert_eq!(
            names(&rows(&r, &view, &state)),
            ["beta", "gamma", "alpha"],
            "NaN last"
        );
        state.descending = true;
        assert_eq!(
            names(&rows(&r, &view, &state)),
            ["gamma", "beta", "alpha"],
            "NaN last"
        );
        state.sort = SortKey::Name;
        state.descending = false;
        assert_eq!(names(&rows(&r, &view, &state)), ["alpha", "beta", "gamma"]);
        state.filter = "MM".into();
        assert_eq!(names(&rows(&r, &view, &state)), ["gamma"]);
        state.filter.clear();
        state.hits_only = true;
        assert_eq!(names(&rows(&r, &view, &state)), ["beta"]);
        assert_eq!(rows(&r, &view, &state)[0].selectivity, Some(1.5));
        // Seen from B, the selectivity changes sign.
        view.context = 1;
        view.other = 0;
        state.hits_only = false;
        state.sort = SortKey::Library;
        let from_b = rows(&r, &view, &state);
        assert_eq!(from_b[0].selectivity, Some(-1.5));
        assert_eq!(from_b[0].effect.context, "B");
    }
}

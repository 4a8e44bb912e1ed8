//! Fuzzy gene search with autocomplete: type part of a symbol, pick a match, and the points are
//! coloured by that gene's expression.

use egui::Ui;

use crate::gui::actions::Action;
use crate::gui::coloring::ColorSource;
use crate::gui::view::DatasetView;

/// Most suggestions shown.
pub const MAX_SUGGESTIONS: usize = 8;

/// UI state of the gene search box.
#[derive(Debug, Default)]
pub struct GeneSearchState {
    /// What the user typed.
    pub query: String,
    /// Error from the last pick, shown under the box.
    pub error: Option<String>,
    /// The suggestions for the query they were computed for (searched again only when the
    /// query changes, not every frame).
    suggestions: Option<(String, Vec<String>)>,
}

/// Match score of `gene` (lower-cased) for `query` (lower-cased, trimmed); lower is better:
/// exact, prefix, substring, then in-order subsequence ("ms41" finds "ms4a1"); `None` when it
/// does not match.
pub fn score(g: &str, q: &str) -> Option<u32> {
    if q.is_empty() {
        return None;
    }
    if g == q {
        return Some(0);
    }
    if g.starts_with(q) {
        return Some(1 + (g.len() - q.len()) as u32);
    }
    if let Some(pos) = g.find(q) {
        return Some(100 + pos as u32 + (g.len() - q.len()) as u32);
    }
    let mut chars = g.chars();
    let mut gaps = 0u32;
    for qc in q.chars() {
        loop {
            match chars.next() {
                Some(gc) if gc == qc => break,
                Some(_) => gaps += 1,
                None => return None,
            }
        }
    }
    Some(1_000 + gaps)
}

/// The best `limit` of `genes` for `query`, best first (ties by name); `lower` holds the
/// genes lower-cased, in the same order (see `DatasetView::gene_keys`).
pub fn search(genes: &[String], lower: &[String], query: &str, limit: usize) -> Vec<String> {
    let q = query.trim().to_lowercase();
    let mut hits: Vec<(u32, &str)> = genes
        .iter()
        .zip(lower)
        .filter_map(|(g, l)| score(l, &q).map(|s| (s, g.as_str())))
        .collect();
    hits.sort_unstable();
    hits.into_iter()
        .take(limit)
        .map(|(_, g)| g.to_string())
        .collect()
}

/// Shows the search box and suggestions; picking one colours `view` by the gene.
pub fn show(
    ui: &mut Ui,
    view: &mut DatasetView,
    state: &mut GeneSearchState,
    actions: &mut Vec<Action>,
) {
    let label = ui.label("Search gene");
    let edit = ui
        .add(
            egui::TextEdit::singleline(&mut state.query)
                .hint_text("e.g. MS4A1, CD3…")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
    if state
        .suggestions
        .as_ref()
        .is_none_or(|(q, _)| *q != state.query)
    {
        let found = search(
            &view.dataset.var_names,
            view.gene_keys(),
            &state.query,
            MAX_SUGGESTIONS,
        );
        state.suggestions = Some((state.query.clone(), found));
    }
    let suggestions = state
        .suggestions
        .as_ref()
        .map(|(_, s)| s.clone())
        .unwrap_or_default();
    let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    let mut pick: Option<String> = None;
    if enter && let Some(first) = suggestions.first() {
        pick = Some(first.to_string());
    }
    if !state.query.trim().is_empty() {
        if suggestions.is_empty() {
            ui.weak("no matching gene");
        }
        ui.horizontal_wrapped(|ui| {
            for gene in &suggestions {
                let current = view.color_source == ColorSource::Gene(gene.to_string());
                if ui.selectable_label(current, gene).clicked() {
                    pick = Some(gene.to_string());
                }
            }
        });
    }
    if let Some(gene) = pick {
        state.error = None;
        actions.push(Action::ColorByGene(view.id, gene.clone()));
        state.query = gene;
    }
    if let Some(e) = &state.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_ranking() {
        let genes: Vec<String> = ["MS4A1", "MS4A7", "CD3D", "CD3E", "CD14", "ACTB", "PTPRC"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let lower: Vec<String> = genes.iter().map(|g| g.to_lowercase()).collect();
        let search = |q: &str, n: usize| search(&genes, &lower, q, n);
        assert_eq!(search("cd3", 3), vec!["CD3D", "CD3E"]);
        assert_eq!(search("MS4a1", 3)[0], "MS4A1");
        // Subsequence match.
        assert_eq!(search("ptc", 3), vec!["PTPRC"]);
        assert!(search("zzz", 3).is_empty());
        assert!(search("  ", 3).is_empty());
        assert!(score("cd14", "cd14") < score("cd14", "cd1"));
    }
}

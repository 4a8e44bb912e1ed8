//! The selected perturbation in detail, for the shown set: per context its units' scores
//! (every sample and replicate, as a strip plot and as numbers) beside the control's mean,
//! with the effect, z, p and q, and per context the genes the model ranks higher and lower
//! than in the control sentences.

use c2s_core::screen::genes::GeneShift;
use egui::Ui;
use egui_plot::{Plot, Points};

use super::dots;
use super::results::{ResultsView, ScreenResults};
use super::table::format_p;
use crate::gui::table_model::format_number;

/// Draws the detail of `view.selected` (a hint when nothing is selected).
pub fn show(ui: &mut Ui, results: &ScreenResults, view: &ResultsView) {
    let Some(name) = &view.selected else {
        ui.weak("Click a point or a row to see a perturbation's scores per context.");
        return;
    };
    let set = &results.sets[view.set];
    ui.strong(format!("{name} — {set}"));
    egui::Grid::new("screen-detail")
        .num_columns(8)
        .striped(true)
        .show(ui, |ui| {
            for h in [
                "context", "units", "mean", "control", "effect", "z", "p", "q",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for r in results
                .report
                .effects
                .iter()
                .filter(|r| r.perturbation == *name && r.set == *set)
            {
                ui.label(&r.context);
                ui.label(r.n.to_string());
                for v in [r.mean, r.control_mean, r.effect, r.z] {
                    ui.label(format_number(v));
                }
                ui.label(format_p(r.p));
                ui.label(format_p(r.q));
                ui.end_row();
            }
        });
    let k = view.set;
    Plot::new("screen-detail-strip")
        .height(120.0)
        .show_x(false)
        .x_axis_label("context")
        .y_axis_label("score")
        .x_axis_formatter(|mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() < 1e-9 && i >= 0.0 {
                results
                    .contexts
                    .get(i as usize)
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .show(ui, |plot_ui| {
            for (c, context) in results.contexts.iter().enumerate() {
                let Some(units) = results.units.get(&(name.clone(), context.clone())) else {
                    continue;
                };
                let n = units.len().max(1) as f64;
                let points: Vec<[f64; 2]> = units
                    .iter()
                    .enumerate()
                    .map(|(j, u)| [c as f64 + 0.3 * (j as f64 / n - 0.5), u.scores[k]])
                    .collect();
                plot_ui.points(
                    Points::new(context.as_str(), points)
                        .color(dots::SELECTED)
                        .radius(2.5),
                );
            }
        });
    top_genes(ui, results, name);
    egui::CollapsingHeader::new("Scores of every unit")
        .id_salt("screen-detail-units")
        .show(ui, |ui| {
            for context in &results.contexts {
                let Some(units) = results.units.get(&(name.clone(), context.clone())) else {
                    continue;
                };
                let text: Vec<String> = units
                    .iter()
                    .map(|u| {
                        format!(
                            "s{} r{}: {}",
                            u.sample,
                            u.replicate,
                            format_number(u.scores[k])
                        )
                    })
                    .collect();
                ui.label(format!("{context}: {}", text.join(", ")));
            }
        });
}

/// Per context, the predicted sentences' top up and down genes against the control (shift in
/// mean rank score; see `c2s_core::screen::genes`), each list a wrapped line.
fn top_genes(ui: &mut Ui, results: &ScreenResults, name: &str) {
    ui.label(
        egui::RichText::new("Top predicted genes (shift in rank score against the control)")
            .strong(),
    );
    let list = |v: &[GeneShift]| {
        if v.is_empty() {
            "—".to_string()
        } else {
            v.iter()
                .map(|g| format!("{} ({:+.2})", g.gene, g.shift))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for context in &results.contexts {
        let Some(genes) = results.genes.get(&(name.to_string(), context.clone())) else {
            continue;
        };
        ui.horizontal_wrapped(|ui| {
            ui.strong(context);
            ui.label(format!("up: {}", list(&genes.up)));
        });
        ui.horizontal_wrapped(|ui| {
            ui.add_space(12.0);
            ui.label(format!("down: {}", list(&genes.down)));
        });
    }
}

//! Context against context: each perturbation's effect in one context (x) and another (y) for
//! the shown set, with the diagonal of equal effects; off-diagonal points are context-selective,
//! and a perturbation called a hit in only one of the two contexts is drawn in the hit colour.
//! Hover names a perturbation and a click selects it, as on the volcano.

use egui::{Color32, Ui};
use egui_plot::{Line, LineStyle, Plot};

use super::dots::{self, Dot};
use super::results::{ResultsView, ScreenResults};

/// Draws the scatter; returns the hovered perturbation.
pub fn show(
    ui: &mut Ui,
    results: &ScreenResults,
    view: &mut ResultsView,
    height: f32,
) -> Option<String> {
    let set = &results.sets[view.set];
    let (a, b) = (
        &results.contexts[view.context],
        &results.contexts[view.other],
    );
    let ys = results.effects(b, set);
    let dots: Vec<Dot<'_>> = results
        .effects(a, set)
        .iter()
        .zip(&ys)
        .filter(|(x, y)| x.effect.is_finite() && y.effect.is_finite())
        .map(|(x, y)| Dot {
            name: &x.perturbation,
            x: x.effect,
            y: y.effect,
            hit: x.hit != y.hit,
        })
        .collect();
    let (lo, hi) = dots
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), d| {
            (lo.min(d.x.min(d.y)), hi.max(d.x.max(d.y)))
        });
    let selected = view.selected.clone();
    let response = Plot::new("screen-scatter")
        .height(height)
        .x_axis_label(format!("effect in {a}"))
        .y_axis_label(format!("effect in {b}"))
        .show_x(false)
        .show_y(false)
        .show(ui, |plot_ui| {
            if lo.is_finite() && hi > lo {
                plot_ui.line(
                    Line::new("equal effect", vec![[lo, lo], [hi, hi]])
                        .color(Color32::from_gray(160))
                        .style(LineStyle::dashed_dense()),
                );
            }
            dots::draw(plot_ui, &dots, selected.as_deref())
        });
    let hovered = response.inner.map(|k| dots[k].name.to_string());
    if response.response.clicked()
        && let Some(name) = &hovered
    {
        view.selected = Some(name.clone());
    }
    hovered
}

//! The volcano plot of one context and set: x the effect against the control, y −log10 p;
//! the hit thresholds as lines (p as a horizontal line, z as the vertical line of the effect
//! with that z), the top hits named, hover names a perturbation and a click selects it.

use egui::{Color32, Id, Rect, Ui};
use egui_plot::{HLine, LineStyle, Plot, VLine};

use super::dots::{self, Dot};
use super::results::{ResultsView, ScreenResults};

/// Top hits named on the plot.
const TOP_LABELLED: usize = 5;

/// The volcano's plot id (its transform is kept in egui memory under it).
pub fn plot_id() -> Id {
    Id::new("screen-volcano")
}

/// −log10 p, the volcano's y.
pub fn neg_log10(p: f64) -> f64 {
    -p.log10()
}

/// What the user did on the plot this frame.
#[derive(Debug, Default)]
pub struct Interaction {
    /// The perturbation under the pointer.
    pub hovered: Option<String>,
    /// The plot's rectangle on screen (for a PNG).
    pub rect: Option<Rect>,
}

/// Draws the volcano of `view`'s context and set; a click on a point selects it.
pub fn show(
    ui: &mut Ui,
    results: &ScreenResults,
    view: &mut ResultsView,
    height: f32,
) -> Interaction {
    let (context, set) = (&results.contexts[view.context], &results.sets[view.set]);
    let rows = results.effects(context, set);
    let dots: Vec<Dot<'_>> = rows
        .iter()
        .filter(|r| r.effect.is_finite() && r.p.is_finite() && r.p > 0.0)
        .map(|r| Dot {
            name: &r.perturbation,
            x: r.effect,
            y: neg_log10(r.p),
            hit: r.hit,
        })
        .collect();
    let undrawn = rows.len() - dots.len();
    let mut top: Vec<&Dot<'_>> = dots.iter().filter(|d| d.hit).collect();
    top.sort_by(|a, b| b.y.total_cmp(&a.y));
    top.truncate(TOP_LABELLED);
    let p_line = neg_log10(view.thresholds.max_p);
    let z_line = results.effect_at_z(context, set, view.thresholds.min_z);
    let selected = view.selected.clone();
    let response = Plot::new("screen-volcano")
        .id(plot_id())
        .height(height)
        .x_axis_label(format!("effect on {set} in {context}"))
        .y_axis_label("−log10 p")
        .show_x(false)
        .show_y(false)
        .allow_boxed_zoom(true)
        .set_margin_fraction(egui::vec2(0.08, 0.1))
        .show(ui, |plot_ui| {
            let guide = Color32::from_rgb(200, 120, 40);
            plot_ui.hline(
                HLine::new(format!("p = {}", view.thresholds.max_p), p_line)
                    .color(guide)
                    .style(LineStyle::dashed_loose()),
            );
            if let Some(x) = z_line {
                plot_ui.vline(
                    VLine::new(format!("z = {}", view.thresholds.min_z), x)
                        .color(guide)
                        .style(LineStyle::dashed_loose()),
                );
            }
            dots::label(plot_ui, &top);
            dots::draw(plot_ui, &dots, selected.as_deref())
        });
    let hovered = response.inner.map(|k| dots[k].name.to_string());
    if response.response.clicked()
        && let Some(name) = &hovered
    {
        view.selected = Some(name.clone());
    }
    if undrawn > 0 {
        ui.weak(format!(
            "{undrawn} perturbation(s) not drawn: p is undefined (no variance in either group)"
        ));
    }
    Interaction {
        hovered,
        rect: Some(response.response.rect),
    }
}

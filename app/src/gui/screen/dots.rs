//! Points of the screen's plots (one per perturbation): drawn in three layers (others, hits,
//! the selected one) with the hovered one named beside it, and the hover hit test both plots
//! share.

use egui::{Align2, Color32, Pos2};
use egui_plot::{MarkerShape, PlotPoint, PlotTransform, PlotUi, Points, Text};

/// Screen distance within which the pointer names a point.
const PICK_RADIUS: f32 = 8.0;

/// One perturbation's point.
#[derive(Debug, Clone, PartialEq)]
pub struct Dot<'a> {
    /// The perturbation.
    pub name: &'a str,
    /// Plot x.
    pub x: f64,
    /// Plot y.
    pub y: f64,
    /// Whether it is a hit.
    pub hit: bool,
}

/// Colour of hits.
pub const HIT: Color32 = Color32::from_rgb(214, 39, 40);
/// Colour of the other points.
pub const OTHER: Color32 = Color32::from_rgb(140, 140, 140);
/// Colour of the selected point's ring.
pub const SELECTED: Color32 = Color32::from_rgb(31, 119, 180);

/// The point nearest `pointer` on screen, if within a few pixels.
pub fn nearest(transform: &PlotTransform, pointer: Pos2, dots: &[Dot<'_>]) -> Option<usize> {
    dots.iter()
        .enumerate()
        .map(|(k, d)| {
            let p = transform.position_from_point(&PlotPoint::new(d.x, d.y));
            (k, p.distance(pointer))
        })
        .filter(|(_, dist)| *dist <= PICK_RADIUS)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

/// Draws `dots`; the selected one ringed, the hovered one named. Returns the hovered index.
pub fn draw(plot_ui: &mut PlotUi<'_>, dots: &[Dot<'_>], selected: Option<&str>) -> Option<usize> {
    let layer = |hit: bool| -> Vec<[f64; 2]> {
        dots.iter()
            .filter(|d| d.hit == hit)
            .map(|d| [d.x, d.y])
            .collect()
    };
    plot_ui.points(Points::new("others", layer(false)).color(OTHER).radius(3.0));
    plot_ui.points(Points::new("hits", layer(true)).color(HIT).radius(3.5));
    if let Some(d) = selected.and_then(|s| dots.iter().find(|d| d.name == s)) {
        plot_ui.points(
            Points::new("selected", vec![[d.x, d.y]])
                .color(SELECTED)
                .shape(MarkerShape::Circle)
                .filled(false)
                .radius(7.0),
        );
    }
    let hovered = plot_ui
        .response()
        .hover_pos()
        .and_then(|p| nearest(plot_ui.transform(), p, dots));
    if let Some(k) = hovered {
        let d = &dots[k];
        plot_ui.text(
            Text::new("hovered", PlotPoint::new(d.x, d.y), format!("  {}", d.name))
                .anchor(Align2::LEFT_BOTTOM)
                .color(SELECTED),
        );
    }
    hovered
}

/// Names `labelled` points (e.g. the top hits) beside them: right of points in the left half
/// of the view, left of those in the right half, so names stay inside the plot.
pub fn label(plot_ui: &mut PlotUi<'_>, dots: &[&Dot<'_>]) {
    let bounds = plot_ui.plot_bounds();
    let middle = (bounds.min()[0] + bounds.max()[0]) / 2.0;
    for d in dots {
        let anchor = if d.x > middle {
            Align2::RIGHT_TOP
        } else {
            Align2::LEFT_TOP
        };
        plot_ui.text(
            Text::new(
                format!("label {}", d.name),
                PlotPoint::new(d.x, d.y),
                format!(" {} ", d.name),
            )
            .anchor(anchor)
            .color(HIT),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::{Rect, pos2};
    use egui_plot::PlotBounds;

    #[test]
    fn the_nearest_point_within_reach_is_picked() {
        let frame = Rect::from_min_max(pos2(0.0, 0.0), pos2(100.0, 100.0));
        let bounds = PlotBounds::from_min_max([0.0, 0.0], [10.0, 10.0]);
        let t = PlotTransform::new(frame, bounds, egui::Vec2b::FALSE);
        let dots = [
            Dot {
                name: "a",
                x: 1.0,
                y: 1.0,
                hit: false,
            },
            Dot {
                name: "b",
                x: 5.0,
                y: 5.0,
                hit: true,
            },
        ];
        // (5, 5) is at the centre of the frame; (1, 1) near the bottom left.
        assert_eq!(nearest(&t, pos2(52.0, 49.0), &dots), Some(1));
        assert_eq!(nearest(&t, pos2(10.0, 90.0), &dots), Some(0));
        assert_eq!(nearest(&t, pos2(30.0, 30.0), &dots), None);
    }
}

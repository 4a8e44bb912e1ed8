//! A CPU fallback for the scatter, used when no wgpu renderer is available (headless tests,
//! a software context without wgpu). Draws at most [`MAX_POINTS`] points, evenly subsampled,
//! plus at most as many selected points, which are painted last (on top).

use egui::{Color32, Painter, Rect};

use super::camera::Camera;
use super::order::paint_order;
use super::scatter::PointData;
use crate::gui::coloring::FLAG_SELECTED;

/// Most points the fallback draws.
pub const MAX_POINTS: usize = 20_000;

/// Paints `data` into `rect` with egui shapes.
pub fn paint(
    painter: &Painter,
    rect: Rect,
    camera: &Camera,
    data: &PointData,
    radius: f32,
    opacity: f32,
) {
    let positions = &data.positions.1;
    let colors = &data.colors.1;
    let flags = &data.flags.1;
    let n = positions.len();
    if n == 0 || colors.len() != n || flags.len() != n {
        return;
    }
    let selection_active = flags.iter().any(|f| f & FLAG_SELECTED != 0);
    for i in paint_order(flags, MAX_POINTS) {
        let f = flags[i];
        let pos = camera.to_screen(positions[i], rect);
        if !rect.contains(pos) {
            continue;
        }
        let [r, g, b, _] = colors[i].to_le_bytes();
        let mut color = Color32::from_rgb(r, g, b);
        let mut alpha = opacity;
        if selection_active && f & FLAG_SELECTED == 0 {
            color = color.lerp_to_gamma(Color32::from_gray(204), 0.7);
            alpha *= 0.4;
        }
        painter.circle_filled(pos, radius, color.gamma_multiply(alpha));
    }
}

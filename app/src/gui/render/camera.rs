//! The 2-D camera of an embedding view: data coordinates ↔ screen points.

use egui::{Pos2, Rect, Vec2};

/// Centre and zoom of a view; the y axis points up, as in scanpy plots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// Data coordinates at the centre of the view.
    pub center: [f32; 2],
    /// Screen points per data unit.
    pub zoom: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            center: [0.0, 0.0],
            zoom: 1.0,
        }
    }
}

impl Camera {
    /// A camera showing the box `(min, max)` in `rect` with a 5 % margin.
    pub fn fit((min, max): ([f32; 2], [f32; 2]), rect: Rect) -> Self {
        let w = (max[0] - min[0]).max(1e-6);
        let h = (max[1] - min[1]).max(1e-6);
        let zoom = (rect.width() / w).min(rect.height() / h) * 0.95;
        Self {
            center: [(min[0] + max[0]) / 2.0, (min[1] + max[1]) / 2.0],
            zoom: zoom.max(1e-6),
        }
    }

    /// Screen position of data point `p` in `rect`.
    pub fn to_screen(self, p: [f32; 2], rect: Rect) -> Pos2 {
        let c = rect.center();
        Pos2::new(
            c.x + (p[0] - self.center[0]) * self.zoom,
            c.y - (p[1] - self.center[1]) * self.zoom,
        )
    }

    /// Data coordinates of screen position `pos` in `rect`.
    pub fn to_data(self, pos: Pos2, rect: Rect) -> [f32; 2] {
        let c = rect.center();
        [
            self.center[0] + (pos.x - c.x) / self.zoom,
            self.center[1] - (pos.y - c.y) / self.zoom,
        ]
    }

    /// Moves the view by a screen-space drag.
    pub fn pan(&mut self, delta: Vec2) {
        self.center[0] -= delta.x / self.zoom;
        self.center[1] += delta.y / self.zoom;
    }

    /// Zooms by `factor` keeping the data point under `anchor` fixed on screen.
    pub fn zoom_at(&mut self, factor: f32, anchor: Pos2, rect: Rect) {
        let before = self.to_data(anchor, rect);
        self.zoom = (self.zoom * factor).clamp(1e-6, 1e9);
        let after = self.to_data(anchor, rect);
        self.center[0] += before[0] - after[0];
        self.center[1] += before[1] - after[1];
    }

    /// Data → clip-space scale for a viewport of `size` points (for the shader).
    pub fn clip_scale(&self, size: Vec2) -> [f32; 2] {
        [2.0 * self.zoom / size.x, 2.0 * self.zoom / size.y]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_pan_and_zoom() {
        let rect = Rect::from_min_size(Pos2::new(10.0, 20.0), Vec2::new(400.0, 300.0));
        let mut cam = Camera::fit(([-5.0, -2.0], [5.0, 8.0]), rect);
        let p = [1.5, 3.0];
        let s = cam.to_screen(p, rect);
        let back = cam.to_data(s, rect);
        assert!((back[0] - p[0]).abs() < 1e-4 && (back[1] - p[1]).abs() < 1e-4);
        // Zooming keeps the anchor fixed.
        cam.zoom_at(2.0, s, rect);
        let s2 = cam.to_screen(p, rect);
        assert!((s2 - s).length() < 1e-3);
        // y points up: larger y is higher on screen.
        assert!(cam.to_screen([0.0, 1.0], rect).y < cam.to_screen([0.0, 0.0], rect).y);
        cam.pan(Vec2::new(10.0, 0.0));
        assert!((cam.to_screen(p, rect).x - s2.x - 10.0).abs() < 1e-3);
    }
}

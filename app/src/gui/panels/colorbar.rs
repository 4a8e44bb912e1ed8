//! The colour bar of a continuous colouring, with colour-map choice and percentile clipping.

use egui::{Mesh, Pos2, Rect, Sense, Ui, Vec2};

use crate::gui::coloring::{ContinuousStyle, Legend};
use crate::gui::colormap::Colormap;
use crate::gui::view::DatasetView;

/// Shows the colour bar and its controls (nothing for non-continuous colourings).
pub fn show(ui: &mut Ui, view: &DatasetView, style: &mut ContinuousStyle) {
    let Legend::Continuous(legend) = &view.legend else {
        return;
    };
    egui::ComboBox::from_id_salt("colormap")
        .selected_text(format!("Colour map: {}", style.colormap.name()))
        .show_ui(ui, |ui| {
            for map in Colormap::ALL {
                ui.selectable_value(&mut style.colormap, map, map.name());
            }
        });
    let (rect, _) = ui.allocate_exact_size(
        Vec2::new(ui.available_width().min(260.0), 16.0),
        Sense::hover(),
    );
    paint_bar(ui, rect, style.colormap);
    let (lo, hi) = view.clip_range.unwrap_or(legend.data_range);
    ui.horizontal(|ui| {
        ui.monospace(format!("{lo:.3}"));
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.monospace(format!("{hi:.3}"));
        });
    });
    ui.weak(format!(
        "data range {:.3} – {:.3}",
        legend.data_range.0, legend.data_range.1
    ));
    ui.horizontal(|ui| {
        ui.label("Clip percentiles");
        ui.add(
            egui::DragValue::new(&mut style.clip_low)
                .range(0.0..=style.clip_high)
                .speed(0.5)
                .suffix(" %"),
        );
        ui.add(
            egui::DragValue::new(&mut style.clip_high)
                .range(style.clip_low..=100.0)
                .speed(0.5)
                .suffix(" %"),
        );
    });
}

/// Paints `map` left (low) to right (high) into `rect`.
pub fn paint_bar(ui: &Ui, rect: Rect, map: Colormap) {
    let mut mesh = Mesh::default();
    let steps = 64;
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        let x = rect.left() + t * rect.width();
        let c = map.at(t);
        mesh.colored_vertex(Pos2::new(x, rect.top()), c);
        mesh.colored_vertex(Pos2::new(x, rect.bottom()), c);
        if s > 0 {
            let i = 2 * s as u32;
            mesh.add_triangle(i - 2, i - 1, i);
            mesh.add_triangle(i - 1, i, i + 1);
        }
    }
    ui.painter().add(mesh);
}

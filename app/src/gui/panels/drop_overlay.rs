//! Drag-and-drop of files onto the window: a visible overlay while files hover, and the dropped
//! paths handed back to the app.

use std::path::PathBuf;

use egui::{Align2, Color32, Context, FontId, Id, LayerId, Order};

/// Draws the "drop to open" overlay while files hover over the window, and returns the paths of
/// files dropped this frame.
pub fn show(ctx: &Context) -> Vec<PathBuf> {
    let (hovered, dropped) = ctx.input(|i| {
        (
            i.raw.hovered_files.clone(),
            i.raw
                .dropped_files
                .iter()
                .filter_map(|f| f.path.clone())
                .collect::<Vec<_>>(),
        )
    });
    if !hovered.is_empty() {
        let names: Vec<String> = hovered
            .iter()
            .filter_map(|f| f.path.as_ref())
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        let painter = ctx.layer_painter(LayerId::new(Order::Foreground, Id::new("drop overlay")));
        let screen = ctx.content_rect();
        painter.rect_filled(screen, 0.0, Color32::from_black_alpha(170));
        painter.rect_stroke(
            screen.shrink(12.0),
            8.0,
            egui::Stroke::new(3.0, Color32::from_rgb(0x6e, 0xce, 0x58)),
            egui::StrokeKind::Inside,
        );
        let text = if names.is_empty() {
            "Drop .h5ad files to open them".to_string()
        } else {
            format!("Drop to open: {}", names.join(", "))
        };
        painter.text(
            screen.center(),
            Align2::CENTER_CENTER,
            text,
            FontId::proportional(24.0),
            Color32::WHITE,
        );
    }
    dropped
}

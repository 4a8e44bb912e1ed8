//! The central embedding view: toolbar, GPU scatter, pan/zoom, lasso and box selection, hover.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Ui, Vec2};

use crate::gui::actions::Action;
use crate::gui::panels::hover;
use crate::gui::render::camera::Camera;
use crate::gui::render::cpu;
use crate::gui::render::scatter::{CameraUniform, ScatterCallback};
use crate::gui::selection::{self, SelectMode};
use crate::gui::state::PersistedState;
use crate::gui::view::DatasetView;

/// What a primary-button drag on the canvas does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tool {
    /// Drag pans the view.
    #[default]
    Pan,
    /// Drag draws a lasso.
    Lasso,
    /// Drag draws a box.
    Box,
}

/// Interaction state of the explorer that is not part of the dataset view.
#[derive(Debug, Default)]
pub struct ExplorerState {
    /// The active tool.
    pub tool: Tool,
    /// Lasso being drawn, in screen points.
    lasso: Vec<Pos2>,
    /// Corner where a box drag started.
    box_start: Option<Pos2>,
    /// Where the scatter was drawn last frame (for PNG export).
    pub canvas_rect: Option<Rect>,
}

/// Density-aware default point diameter in points: about one point-width per cell on a side of
/// the canvas, clamped to 1–6 points (1 M cells on 500 px → 1 px, 1 k cells → 6 px).
pub fn default_diameter(n_cells: usize, canvas: Vec2) -> f32 {
    let side = canvas.x.min(canvas.y).max(1.0);
    (side / (n_cells.max(1) as f32).sqrt()).clamp(1.0, 6.0)
}

/// Draws the view's visible model-made cells on the shown embedding as diamonds in their set's
/// colour (outlined, above the real cells), with a key in the top-right corner.
fn generated_overlay(
    painter: &egui::Painter,
    rect: Rect,
    camera: &Camera,
    view: &DatasetView,
    radius: f32,
) {
    let Some(embedding) = &view.embedding else {
        return;
    };
    let r = (radius + 2.5).max(4.5);
    let mut key = rect.right_top() + Vec2::new(-8.0, 8.0);
    for set in view.generated.iter().filter(|s| s.visible) {
        let Some(positions) = set.positions.get(embedding) else {
            continue;
        };
        let color = set.color();
        let placed: Vec<[f32; 2]> = positions
            .iter()
            .copied()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
            .collect();
        for &p in &placed {
            let c = camera.to_screen(p, rect);
            if !rect.expand(r).contains(c) {
                continue;
            }
            let diamond = vec![
                c + Vec2::new(0.0, -r),
                c + Vec2::new(r, 0.0),
                c + Vec2::new(0.0, r),
                c + Vec2::new(-r, 0.0),
            ];
            painter.add(egui::Shape::convex_polygon(
                diamond,
                color,
                Stroke::new(1.0, Color32::BLACK),
            ));
        }
        let text = painter.text(
            key,
            Align2::RIGHT_TOP,
            format!("{} ({} cells)", set.title, placed.len()),
            FontId::proportional(13.0),
            color,
        );
        let c = Pos2::new(text.left() - 8.0, text.center().y);
        painter.add(egui::Shape::convex_polygon(
            vec![
                c + Vec2::new(0.0, -5.0),
                c + Vec2::new(5.0, 0.0),
                c + Vec2::new(0.0, 5.0),
                c + Vec2::new(-5.0, 0.0),
            ],
            color,
            Stroke::new(1.0, Color32::BLACK),
        ));
        key.y = text.bottom() + 2.0;
    }
}

/// Shows the explorer for `view`. `gpu` says whether the wgpu scatter renderer is installed.
pub fn show(
    ui: &mut Ui,
    view: &mut DatasetView,
    state: &mut ExplorerState,
    prefs: &mut PersistedState,
    gpu: bool,
    actions: &mut Vec<Action>,
) {
    toolbar(ui, view, state, prefs, actions);
    ui.separator();
    if view.embedding.is_none() {
        ui.vertical_centered(|ui| {
            ui.add_space(40.0);
            ui.heading("This dataset has no 2-D embedding in obsm");
            ui.label("Compute one from the expression matrix (PCA, then UMAP, in the background).");
            if ui.button("Compute embedding").clicked() {
                actions.push(Action::ComputeEmbedding);
            }
        });
        state.canvas_rect = None;
        return;
    }
    canvas(ui, view, state, prefs, gpu);
}

fn toolbar(
    ui: &mut Ui,
    view: &mut DatasetView,
    state: &mut ExplorerState,
    prefs: &mut PersistedState,
    actions: &mut Vec<Action>,
) {
    ui.horizontal_wrapped(|ui| {
        let names: Vec<String> = view
            .dataset
            .obsm
            .iter()
            .filter(|e| e.n_cols >= 2)
            .map(|e| e.name.clone())
            .collect();
        let current = view.embedding.clone().unwrap_or_else(|| "none".into());
        egui::ComboBox::from_id_salt("embedding")
            .selected_text(format!("Embedding: {current}"))
            .show_ui(ui, |ui| {
                for name in &names {
                    if ui
                        .selectable_label(Some(name) == view.embedding.as_ref(), name)
                        .clicked()
                    {
                        actions.push(Action::ShowEmbedding(view.id, name.clone()));
                    }
                }
            });
        ui.separator();
        ui.selectable_value(&mut state.tool, Tool::Pan, "Pan")
            .on_hover_text("Drag to pan, scroll to zoom (P)");
        ui.selectable_value(&mut state.tool, Tool::Lasso, "Lasso")
            .on_hover_text("Drag to lasso cells; Shift adds, Alt subtracts (L)");
        ui.selectable_value(&mut state.tool, Tool::Box, "Box")
            .on_hover_text("Drag a rectangle; Shift adds, Alt subtracts (B)");
        if ui
            .button("Reset view")
            .on_hover_text("Fit all cells (Space)")
            .clicked()
        {
            view.camera = None;
        }
        ui.separator();
        ui.label("Point size");
        ui.add(egui::Slider::new(&mut prefs.point_scale, 0.25..=6.0).logarithmic(true));
        ui.label("Opacity");
        ui.add(egui::Slider::new(&mut prefs.opacity, 0.05..=1.0));
        ui.separator();
        if ui.button("Export PNG…").clicked() {
            actions.push(Action::ExportPng);
        }
    });
}

fn canvas(
    ui: &mut Ui,
    view: &mut DatasetView,
    state: &mut ExplorerState,
    prefs: &PersistedState,
    gpu: bool,
) {
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    state.canvas_rect = Some(rect);
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);

    let positions = view.points.positions.1.clone();
    let camera = match view.camera {
        Some(c) => c,
        None => {
            let c = Camera::fit(
                selection::bounds(&positions).unwrap_or(([0.0, 0.0], [1.0, 1.0])),
                rect,
            );
            view.camera = Some(c);
            c
        }
    };
    let mut camera = camera;

    // Keyboard shortcuts, unless a text field has focus.
    if !ui.ctx().egui_wants_keyboard_input() {
        ui.input(|i| {
            if i.key_pressed(egui::Key::L) {
                state.tool = Tool::Lasso;
            }
            if i.key_pressed(egui::Key::B) {
                state.tool = Tool::Box;
            }
            if i.key_pressed(egui::Key::P) {
                state.tool = Tool::Pan;
            }
            if i.key_pressed(egui::Key::Space) {
                camera = Camera::fit(
                    selection::bounds(&positions).unwrap_or(([0.0, 0.0], [1.0, 1.0])),
                    rect,
                );
            }
        });
        if ui.input(|i| i.key_pressed(egui::Key::Escape)) && !view.selection.is_empty() {
            view.selection.clear();
            view.refresh_flags();
        }
    }

    // Zoom with the wheel / pinch around the pointer.
    if let Some(pointer) = response.hover_pos() {
        let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta().y, i.zoom_delta()));
        let factor = (scroll / 300.0).exp() * pinch;
        if (factor - 1.0).abs() > 1e-4 {
            camera.zoom_at(factor, pointer, rect);
        }
    }

    // Pan with the secondary/middle button always, and with the primary in pan mode.
    let pan_drag = response.dragged_by(egui::PointerButton::Secondary)
        || response.dragged_by(egui::PointerButton::Middle)
        || (state.tool == Tool::Pan && response.dragged_by(egui::PointerButton::Primary));
    if pan_drag {
        camera.pan(response.drag_delta());
    }
    if response.double_clicked() && state.tool == Tool::Pan {
        camera = Camera::fit(
            selection::bounds(&positions).unwrap_or(([0.0, 0.0], [1.0, 1.0])),
            rect,
        );
    }

    // Lasso / box selection with the primary button.
    let modifiers = ui.input(|i| i.modifiers);
    match state.tool {
        Tool::Pan => {}
        Tool::Lasso => {
            if response.drag_started_by(egui::PointerButton::Primary) {
                state.lasso.clear();
            }
            if response.dragged_by(egui::PointerButton::Primary)
                && let Some(p) = response.interact_pointer_pos()
                && state.lasso.last().is_none_or(|l| l.distance(p) > 2.0)
            {
                state.lasso.push(p);
            }
            if response.drag_stopped() && !state.lasso.is_empty() {
                let poly: Vec<[f32; 2]> = state
                    .lasso
                    .iter()
                    .map(|&p| camera.to_data(p, rect))
                    .collect();
                if let Some(index) = &view.index {
                    let hits = index.in_polygon(&poly);
                    view.select(hits, SelectMode::from_modifiers(modifiers));
                }
                state.lasso.clear();
            }
        }
        Tool::Box => {
            if response.drag_started_by(egui::PointerButton::Primary) {
                state.box_start = response.interact_pointer_pos();
            }
            if response.drag_stopped()
                && let (Some(a), Some(b)) =
                    (state.box_start.take(), response.interact_pointer_pos())
                && let Some(index) = &view.index
            {
                let hits = index.in_box(camera.to_data(a, rect), camera.to_data(b, rect));
                view.select(hits, SelectMode::from_modifiers(modifiers));
            }
        }
    }
    view.camera = Some(camera);

    // Draw the points.
    let n = view.n_cells();
    let diameter = default_diameter(n, rect.size()) * prefs.point_scale;
    let radius = (diameter / 2.0).max(0.5);
    view.update_colors(&prefs.continuous);
    if gpu {
        let size = rect.size();
        let uniform = CameraUniform {
            center: camera.center,
            scale: camera.clip_scale(size),
            radius: [2.0 * radius / size.x, 2.0 * radius / size.y],
            opacity: prefs.opacity,
            mode: u32::from(!view.selection.is_empty()),
        };
        painter.add(eframe::egui_wgpu::Callback::new_paint_callback(
            rect,
            ScatterCallback {
                view_id: view.id,
                data: view.points.clone(),
                camera: uniform,
            },
        ));
    } else {
        cpu::paint(&painter, rect, &camera, &view.points, radius, prefs.opacity);
    }

    generated_overlay(&painter, rect, &camera, view, radius);

    // Overlays: lasso, box, hovered cell.
    let accent = ui.visuals().selection.stroke.color;
    if state.lasso.len() > 1 {
        let mut line = state.lasso.clone();
        line.push(state.lasso[0]);
        painter.add(egui::Shape::line(line, Stroke::new(1.5, accent)));
    }
    if let (Some(a), true, Some(b)) = (
        state.box_start,
        response.dragged(),
        response.interact_pointer_pos(),
    ) {
        painter.rect_stroke(
            Rect::from_two_pos(a, b),
            0.0,
            Stroke::new(1.5, accent),
            egui::StrokeKind::Middle,
        );
    }
    painter.text(
        rect.left_bottom() + Vec2::new(8.0, -8.0),
        Align2::LEFT_BOTTOM,
        format!(
            "{} · {} cells{}",
            view.embedding.as_deref().unwrap_or(""),
            n,
            if view.selection.is_empty() {
                String::new()
            } else {
                format!(" · {} selected", view.selection.count())
            }
        ),
        FontId::proportional(12.0),
        ui.visuals().weak_text_color(),
    );

    // Hover: nearest visible cell within 8 points.
    view.hovered = None;
    if !response.dragged()
        && let (Some(pointer), Some(index)) = (response.hover_pos(), &view.index)
    {
        let p = camera.to_data(pointer, rect);
        let r = (radius + 6.0) / camera.zoom;
        view.hovered = index.nearest(p, r, |i| view.is_visible(i));
    }
    if let Some(i) = view.hovered {
        let pos = camera.to_screen(positions[i], rect);
        painter.circle_stroke(pos, radius + 4.0, Stroke::new(3.0, Color32::BLACK));
        painter.circle_stroke(pos, radius + 4.0, Stroke::new(1.5, Color32::WHITE));
        response.on_hover_ui_at_pointer(|ui| hover::cell_tooltip(ui, view, i));
    }
}

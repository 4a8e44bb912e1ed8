//! Exports: the current view as PNG or SVG, the selected cells as CSV. Each runs in a job.

use std::io::Write;
use std::path::Path;

use c2s_core::dataset::{ColumnData, Dataset};
use egui::{ColorImage, Rect};

use super::coloring::FLAG_SELECTED;
use super::jobs::{JobError, Progress};
use super::render::camera::Camera;
use super::render::order::paint_order;
use super::render::scatter::PointData;
use super::table_model::format_number;

fn io_error(path: &Path, e: impl std::fmt::Display) -> JobError {
    JobError::Failed(format!("cannot write '{}': {e}", path.display()))
}

/// Writes `image` as a PNG.
pub fn write_png(image: &ColorImage, path: &Path) -> Result<(), JobError> {
    let [w, h] = image.size;
    let bytes: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    image::save_buffer(path, &bytes, w as u32, h as u32, image::ColorType::Rgba8)
        .map_err(|e| io_error(path, e))
}

/// Quotes a CSV field when needed (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Text of column `col` (0 = cell id, k = obs column k − 1) for cell `i`, as the table shows it.
fn cell_text(d: &Dataset, col: usize, i: usize) -> String {
    if col == 0 {
        return d.obs_names[i].clone();
    }
    match &d.obs[col - 1].data {
        ColumnData::Categorical { codes, categories } => usize::try_from(codes[i])
            .ok()
            .and_then(|c| categories.get(c).cloned())
            .unwrap_or_default(),
        ColumnData::Numeric(v) => format_number(v[i]),
        ColumnData::Bool(v) => v[i].to_string(),
        ColumnData::Text(v) => v[i].clone(),
    }
}

/// Writes the cell ids and obs rows of `cells` as CSV (header: `cell`, then the obs columns).
pub fn write_selection_csv(
    d: &Dataset,
    cells: &[usize],
    path: &Path,
    progress: &Progress,
) -> Result<(), JobError> {
    let file = std::fs::File::create(path).map_err(|e| io_error(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let header: Vec<String> = std::iter::once("cell".to_string())
        .chain(d.obs.iter().map(|c| csv_field(&c.name)))
        .collect();
    writeln!(out, "{}", header.join(",")).map_err(|e| io_error(path, e))?;
    for (k, &i) in cells.iter().enumerate() {
        if k % 10_000 == 0 {
            progress.check()?;
            progress.set(k as f32 / cells.len().max(1) as f32, format!("{k} rows"));
        }
        let row: Vec<String> = (0..=d.obs.len())
            .map(|c| csv_field(&cell_text(d, c, i)))
            .collect();
        writeln!(out, "{}", row.join(",")).map_err(|e| io_error(path, e))?;
    }
    out.flush().map_err(|e| io_error(path, e))
}

/// Writes the visible points of a view as an SVG of `rect`'s size (points outside are skipped).
pub fn write_svg(
    data: &PointData,
    camera: &Camera,
    rect: Rect,
    radius: f32,
    opacity: f32,
    path: &Path,
    progress: &Progress,
) -> Result<(), JobError> {
    let file = std::fs::File::create(path).map_err(|e| io_error(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let (w, h) = (rect.width(), rect.height());
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect width="100%" height="100%" fill="white"/>"#
    )
    .map_err(|e| io_error(path, e))?;
    let (positions, colors, flags) = (&data.positions.1, &data.colors.1, &data.flags.1);
    let selection_active = flags.iter().any(|f| f & FLAG_SELECTED != 0);
    let unflagged;
    let flags = if flags.len() == positions.len() {
        flags.as_slice()
    } else {
        unflagged = vec![0; positions.len()];
        &unflagged
    };
    // Selected points last, so they are on top as in the window.
    let order = paint_order(flags, usize::MAX);
    for (k, &i) in order.iter().enumerate() {
        if k % 50_000 == 0 {
            progress.check()?;
            progress.set(k as f32 / order.len().max(1) as f32, "writing points");
        }
        let f = flags[i];
        let p = camera.to_screen(positions[i], rect) - rect.min.to_vec2();
        if p.x < 0.0 || p.y < 0.0 || p.x > w || p.y > h {
            continue;
        }
        let [r, g, b, _] = colors.get(i).copied().unwrap_or(0).to_le_bytes();
        let alpha = if selection_active && f & FLAG_SELECTED == 0 {
            opacity * 0.4
        } else {
            opacity
        };
        writeln!(
            out,
            r##"<circle cx="{:.2}" cy="{:.2}" r="{radius:.2}" fill="#{r:02x}{g:02x}{b:02x}" fill-opacity="{alpha:.2}"/>"##,
            p.x, p.y
        )
        .map_err(|e| io_error(path, e))?;
    }
    writeln!(out, "</svg>").map_err(|e| io_error(path, e))?;
    out.flush().map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::demo;

    #[test]
    fn csv_has_header_and_escapes() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let d = demo::generate(50, &Progress::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sel.csv");
        write_selection_csv(&d, &[3, 7], &path, &Progress::default()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("cell,cell_type,sample,n_counts"));
        assert!(lines[1].starts_with("demo-cell-0000003,"));
    }

    #[test]
    fn png_and_svg_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("v.png");
        let img = ColorImage::new([4, 3], vec![egui::Color32::RED; 12]);
        write_png(&img, &png).unwrap();
        assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
        let svg = dir.path().join("v.svg");
        let data = PointData {
            positions: (1, std::sync::Arc::new(vec![[0.0, 0.0], [100.0, 100.0]])),
            colors: (1, std::sync::Arc::new(vec![0xff0000ff, 0xff00ff00])),
            flags: (1, std::sync::Arc::new(vec![0, 0])),
        };
        let rect = Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(200.0, 100.0));
        let cam = Camera {
            center: [0.0, 0.0],
            zoom: 1.0,
        };
        write_svg(&data, &cam, rect, 2.0, 1.0, &svg, &Progress::default()).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        // The first point is in view, the second is off-canvas.
        assert_eq!(text.matches("<circle").count(), 1);
        assert!(text.contains("fill=\"#ff0000\""));
    }

    #[test]
    fn svg_paints_selected_points_last() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("v.svg");
        // Two points at the same spot: the selected one (first, blue) must be written last.
        let data = PointData {
            positions: (1, std::sync::Arc::new(vec![[0.0, 0.0], [0.0, 0.0]])),
            colors: (1, std::sync::Arc::new(vec![0xffff0000, 0xff0000ff])),
            flags: (1, std::sync::Arc::new(vec![FLAG_SELECTED, 0])),
        };
        let rect = Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(200.0, 100.0));
        let cam = Camera {
            center: [0.0, 0.0],
            zoom: 1.0,
        };
        write_svg(&data, &cam, rect, 2.0, 1.0, &svg, &Progress::default()).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        let fills: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("<circle"))
            .map(|l| {
                l.split("fill=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(fills, vec!["#ff0000", "#0000ff"]);
    }
}

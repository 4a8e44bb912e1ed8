//! Exports: the current view as PNG or SVG, the selected cells as CSV. Each runs in a job.

use std::io::Write;
use std::path::Path;

use c2s_core::dataset::Dataset;
use egui::{ColorImage, Rect};

use super::coloring::{FLAG_HIDDEN, FLAG_SELECTED};
use super::jobs::{JobError, Progress};
use super::panels::table::cell_text;
use super::render::camera::Camera;
use super::render::scatter::PointData;

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
    for i in 0..positions.len() {
        if i % 50_000 == 0 {
            progress.check()?;
            progress.set(i as f32 / positions.len() as f32, "writing points");
        }
        let f = flags.get(i).copied().unwrap_or(0);
        if f & FLAG_HIDDEN != 0 {
            continue;
        }
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
}

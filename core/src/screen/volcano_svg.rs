//! A volcano plot of one context and set as a standalone SVG file (for papers and slides): x the
//! effect against the control, y −log10 p, the hit thresholds as dashed lines, hits in red,
//! the top hits named. The app's "volcano as SVG" and `screen report --volcano` write it.

use super::report::{EffectRow, HitThresholds};
use crate::error::{Error, Result};
use crate::io::atomic::write_atomically;
use crate::statistics::value_at_zscore;
use std::fmt::Write;
use std::path::Path;

/// Plot size in SVG user units (pixels).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 520.0;
/// Left, right, top and bottom margins.
const MARGIN: (f64, f64, f64, f64) = (70.0, 24.0, 44.0, 56.0);
/// Hits named on the plot, most significant first.
const LABELLED: usize = 8;

/// What to draw besides the points.
#[derive(Debug, Clone, PartialEq)]
pub struct VolcanoStyle {
    /// The title (e.g. the set and the context).
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The p threshold (a horizontal line at −log10 p).
    pub max_p: f64,
    /// The effect whose z is the z threshold (a vertical line), when defined.
    pub effect_at_z: Option<f64>,
}

impl VolcanoStyle {
    /// The style of the volcano of `rows` (one context and set) at `thresholds`: titled by the
    /// set and the context, the z line at the effect whose z-score among `rows` is the
    /// threshold.
    pub fn new(rows: &[EffectRow], context: &str, set: &str, thresholds: HitThresholds) -> Self {
        let effects: Vec<f64> = rows.iter().map(|r| r.effect).collect();
        Self {
            title: format!("{set} in {context}"),
            x_label: format!("effect on {set} in {context}"),
            max_p: thresholds.max_p,
            effect_at_z: value_at_zscore(&effects, thresholds.min_z),
        }
    }
}

/// The SVG text of the volcano of `rows` (one context and set). Rows whose effect or p is not
/// finite, or whose p is 0, are left out and counted in a note under the plot.
pub fn volcano_svg(rows: &[EffectRow], style: &VolcanoStyle) -> String {
    let points: Vec<(&EffectRow, f64, f64)> = rows
        .iter()
        .filter(|r| r.effect.is_finite() && r.p.is_finite() && r.p > 0.0)
        .map(|r| (r, r.effect, -r.p.log10()))
        .collect();
    let p_line = -style.max_p.log10();
    let xs = points
        .iter()
        .map(|p| p.1)
        .chain(style.effect_at_z.filter(|x| x.is_finite()));
    let ys = points.iter().map(|p| p.2).chain([p_line, 0.0]);
    let x_axis = Axis::spanning(xs);
    let y_axis = Axis::spanning(ys);
    let (left, right, top, bottom) = MARGIN;
    let (x0, x1, y0, y1) = (left, WIDTH - right, HEIGHT - bottom, top);
    let sx = |x: f64| x0 + (x - x_axis.lo) / (x_axis.hi - x_axis.lo) * (x1 - x0);
    let sy = |y: f64| y0 + (y - y_axis.lo) / (y_axis.hi - y_axis.lo) * (y1 - y0);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    s.push('\n');
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        (x0 + x1) / 2.0,
        escape(&style.title)
    );
    // Axes, ticks and grid.
    for t in x_axis.ticks() {
        let x = sx(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{y1}\" x2=\"{x:.1}\" y2=\"{y0}\" stroke=\"#eeeeee\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            y0 + 16.0,
            x_axis.format(t)
        );
    }
    for t in y_axis.ticks() {
        let y = sy(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#eeeeee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 6.0,
            y + 4.0,
            y_axis.format(t)
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{x0}\" y=\"{y1}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444444\"/>",
        x1 - x0,
        y0 - y1
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        HEIGHT - 16.0,
        escape(&style.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">−log10 p</text>"#,
        (y0 + y1) / 2.0
    );
    // Thresholds.
    let guide = "stroke=\"#c87828\" stroke-dasharray=\"6 4\"";
    let _ = writeln!(
        s,
        "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" {guide}><title>p = {}</title></line>",
        style.max_p,
        y = sy(p_line)
    );
    if let Some(x) = style.effect_at_z.filter(|x| x.is_finite()) {
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{y1}\" x2=\"{x:.1}\" y2=\"{y0}\" {guide}/>",
            x = sx(x)
        );
    }
    // Points: non-hits first so hits are drawn on top; each names its perturbation on hover.
    for hit in [false, true] {
        let fill = if hit { "#d62728" } else { "#8c8c8c" };
        for (r, x, y) in points.iter().filter(|p| p.0.hit == hit) {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{fill}\" fill-opacity=\"0.8\">\
                 <title>{} (effect {:.4}, p {:.3e})</title></circle>",
                sx(*x),
                sy(*y),
                escape(&r.perturbation),
                x,
                r.p
            );
        }
    }
    let mut top: Vec<&(&EffectRow, f64, f64)> = points.iter().filter(|p| p.0.hit).collect();
    top.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (r, x, y) in top.into_iter().take(LABELLED) {
        // Labels in the right third read leftwards, so long names stay inside the figure.
        let (dx, anchor) = if sx(*x) > x0 + 2.0 * (x1 - x0) / 3.0 {
            (-5.0, "end")
        } else {
            (5.0, "start")
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="{anchor}">{}</text>"#,
            sx(*x) + dx,
            sy(*y) - 5.0,
            escape(&r.perturbation)
        );
    }
    let undrawn = rows.len() - points.len();
    if undrawn > 0 {
        let _ = writeln!(
            s,
            r##"<text x="{x0}" y="{}" font-size="10" fill="#666666">{undrawn} perturbation(s) not drawn: p undefined</text>"##,
            HEIGHT - 2.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Writes [`volcano_svg`] of `rows` to `path`, atomically (a new file; an existing one is
/// replaced only once the new one is complete).
pub fn write_volcano_svg(path: &Path, rows: &[EffectRow], style: &VolcanoStyle) -> Result<()> {
    let svg = volcano_svg(rows, style);
    write_atomically(path, |tmp| {
        std::fs::write(tmp, &svg).map_err(|e| Error::Write {
            path: tmp.to_path_buf(),
            detail: e.to_string(),
        })
    })
}

/// A linear axis over a data range, padded and rounded to tick steps of 1, 2 or 5 × 10^k.
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    fn spanning(values: impl Iterator<Item = f64>) -> Self {
        let (mut lo, mut hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let raw = (hi - lo) / 6.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        Self {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            step,
        }
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        (0..=n).map(move |k| self.lo + k as f64 * self.step)
    }

    fn format(&self, v: f64) -> String {
        let decimals = (-self.step.log10().floor()).max(0.0) as usize;
        let v = if v.abs() < self.step * 1e-9 { 0.0 } else { v };
        format!("{v:.decimals$}")
    }
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, effect: f64, p: f64, hit: bool) -> EffectRow {
        EffectRow {
            perturbation: name.into(),
            context: "A".into(),
            set: "S".into(),
            n: 3,
            mean: effect,
            control_mean: 0.0,
            effect,
            z: effect,
            t: 0.0,
            p,
            q: p,
            hit,
        }
    }

    fn style() -> VolcanoStyle {
        VolcanoStyle {
            title: "S in A".into(),
            x_label: "effect on S in A".into(),
            max_p: 0.05,
            effect_at_z: Some(0.5),
        }
    }

    #[test]
    fn points_hits_labels_and_thresholds_are_drawn() {
        let rows = [
            row("<drug&1>", 1.0, 1e-4, true),
            row("b", -0.5, 0.3, false),
            row("c", 0.0, f64::NAN, false),
        ];
        let svg = volcano_svg(&rows, &style());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2, "the NaN row is left out");
        assert_eq!(svg.matches("fill=\"#d62728\"").count(), 1, "one hit");
        // The hit is named, escaped, on the plot and in its tooltip.
        assert_eq!(svg.matches("&lt;drug&amp;1&gt;").count(), 2);
        assert!(svg.contains("1 perturbation(s) not drawn"));
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
    }

    #[test]
    fn points_land_inside_the_frame_in_order() {
        let rows = [row("lo", -2.0, 0.5, false), row("hi", 3.0, 1e-6, true)];
        let svg = volcano_svg(&rows, &style());
        let centre = |name: &str| -> (f64, f64) {
            let line = svg
                .lines()
                .find(|l| l.starts_with("<circle") && l.contains(&format!("<title>{name} ")))
                .unwrap();
            let attr = |a: &str| -> f64 {
                let rest = &line[line.find(&format!("{a}=\"")).unwrap() + a.len() + 2..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            };
            (attr("cx"), attr("cy"))
        };
        let (lo, hi) = (centre("lo"), centre("hi"));
        let (left, right, top, bottom) = MARGIN;
        for (x, y) in [lo, hi] {
            assert!((left..=WIDTH - right).contains(&x), "{x}");
            assert!((top..=HEIGHT - bottom).contains(&y), "{y}");
        }
        assert!(lo.0 < hi.0, "a larger effect is further right");
        assert!(hi.1 < lo.1, "a smaller p is higher up");
    }

    #[test]
    fn axes_round_to_nice_steps() {
        let a = Axis::spanning([0.13, 0.87].into_iter());
        assert_eq!((a.lo, a.hi, a.step), (0.0, 1.0, 0.2));
        let ticks: Vec<String> = a.ticks().map(|t| a.format(t)).collect();
        assert_eq!(ticks, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let flat = Axis::spanning([2.0, 2.0].into_iter());
        assert!(flat.lo < 2.0 && flat.hi > 2.0);
        let empty = Axis::spanning(std::iter::empty());
        assert_eq!((empty.lo, empty.hi), (0.0, 1.0));
    }
}

//! Colour maps for continuous values and palettes for categories.
//!
//! Continuous maps are matplotlib's perceptually uniform maps, sampled at ten stops and
//! interpolated linearly in sRGB (close to the originals to the eye). Categorical palettes follow
//! scanpy: its 20-colour default, then evenly spread hues for longer category lists.

use egui::Color32;

/// A continuous colour map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Colormap {
    /// matplotlib viridis (default).
    Viridis,
    /// matplotlib magma.
    Magma,
    /// matplotlib inferno.
    Inferno,
    /// matplotlib plasma.
    Plasma,
    /// cividis (colour-vision-deficiency friendly).
    Cividis,
    /// Light grey to dark red, as in expression plots of CELLxGENE.
    GreyRed,
}

impl Colormap {
    /// Every map, in menu order.
    pub const ALL: [Colormap; 6] = [
        Colormap::Viridis,
        Colormap::Magma,
        Colormap::Inferno,
        Colormap::Plasma,
        Colormap::Cividis,
        Colormap::GreyRed,
    ];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Viridis => "viridis",
            Colormap::Magma => "magma",
            Colormap::Inferno => "inferno",
            Colormap::Plasma => "plasma",
            Colormap::Cividis => "cividis",
            Colormap::GreyRed => "grey-red",
        }
    }

    fn stops(self) -> &'static [u32] {
        match self {
            Colormap::Viridis => &[
                0x440154, 0x482878, 0x3e4989, 0x31688e, 0x26828e, 0x1f9e89, 0x35b779, 0x6ece58,
                0xb5de2b, 0xfde725,
            ],
            Colormap::Magma => &[
                0x000004, 0x180f3d, 0x440f76, 0x721f81, 0x9e2f7f, 0xcd4071, 0xf1605d, 0xfd9668,
                0xfeca8d, 0xfcfdbf,
            ],
            Colormap::Inferno => &[
                0x000004, 0x1b0c41, 0x4a0c6b, 0x781c6d, 0xa52c60, 0xcf4446, 0xed6925, 0xfb9b06,
                0xf7d13d, 0xfcffa4,
            ],
            Colormap::Plasma => &[
                0x0d0887, 0x46039f, 0x7201a8, 0x9c179e, 0xbd3786, 0xd8576b, 0xed7953, 0xfb9f3a,
                0xfdca26, 0xf0f921,
            ],
            Colormap::Cividis => &[
                0x00224e, 0x123570, 0x3b496c, 0x575d6d, 0x707173, 0x8a8678, 0xa59c74, 0xc3b369,
                0xe1cc55, 0xfee838,
            ],
            Colormap::GreyRed => &[0xd9d9d9, 0xf3b8a0, 0xe8745a, 0xc42a2a, 0x67000d],
        }
    }

    /// The colour at `t` in `[0, 1]` (values outside are clamped; NaN gives the lowest colour).
    pub fn at(self, t: f32) -> Color32 {
        let stops = self.stops();
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let x = t * (stops.len() - 1) as f32;
        let i = (x.floor() as usize).min(stops.len() - 2);
        let f = x - i as f32;
        let (a, b) = (hex_u32(stops[i]), hex_u32(stops[i + 1]));
        let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * f).round() as u8;
        Color32::from_rgb(mix(a.r(), b.r()), mix(a.g(), b.g()), mix(a.b(), b.b()))
    }

    /// A 256-entry lookup table.
    pub fn lut(self) -> Vec<Color32> {
        (0..256).map(|i| self.at(i as f32 / 255.0)).collect()
    }
}

fn hex_u32(rgb: u32) -> Color32 {
    Color32::from_rgb((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8)
}

/// Parses `#rrggbb` or `#rrggbbaa` (as in `uns['<col>_colors']`); `None` for anything else.
pub fn parse_hex(s: &str) -> Option<Color32> {
    let h = s.trim().strip_prefix('#')?;
    let byte = |i: usize| u8::from_str_radix(h.get(i..i + 2)?, 16).ok();
    match h.len() {
        6 => Some(Color32::from_rgb(byte(0)?, byte(2)?, byte(4)?)),
        8 => Some(Color32::from_rgba_unmultiplied(
            byte(0)?,
            byte(2)?,
            byte(4)?,
            byte(6)?,
        )),
        _ => None,
    }
}

/// scanpy's default palette for up to 20 categories (`scanpy.plotting.palettes.default_20`).
const DEFAULT_20: [u32; 20] = [
    0x1f77b4, 0xff7f0e, 0x279e68, 0xd62728, 0xaa40fc, 0x8c564b, 0xe377c2, 0xb5bd61, 0x17becf,
    0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896, 0xc5b0d5, 0xc49c94, 0xf7b6d2, 0xdbdb8d, 0x9edae5,
    0xad494a, 0x8c6d31,
];

/// Colours for `n` categories: `file_palette` (from `uns`) when it has one valid colour per
/// category, else scanpy's default for ≤ 20, else hues spread by the golden angle.
pub fn categorical_palette(n: usize, file_palette: Option<&[String]>) -> Vec<Color32> {
    if let Some(p) = file_palette
        && p.len() >= n
    {
        let parsed: Option<Vec<Color32>> = p[..n].iter().map(|s| parse_hex(s)).collect();
        if let Some(colors) = parsed {
            return colors;
        }
    }
    if n <= DEFAULT_20.len() {
        return DEFAULT_20[..n].iter().map(|&c| hex_u32(c)).collect();
    }
    (0..n)
        .map(|i| {
            let hue = (i as f32 * 0.618_034) % 1.0;
            let value = if i % 2 == 0 { 0.85 } else { 0.65 };
            egui::ecolor::Hsva::new(hue, 0.65, value, 1.0).into()
        })
        .collect()
}

/// Colour for cells with a missing value (NaN, or category code −1).
pub const MISSING: Color32 = Color32::from_rgb(0xc8, 0xc8, 0xc8);

/// Value range after percentile clipping: the `lo`-th and `hi`-th percentiles (0–100, nearest
/// rank) of `sorted`, finite values sorted ascending; `None` when it is empty.
pub fn percentile_range_sorted(sorted: &[f32], lo: f32, hi: f32) -> Option<(f32, f32)> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank =
        |p: f32| (((p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f32).round() as usize).min(n - 1);
    Some((sorted[rank(lo.min(hi))], sorted[rank(hi.max(lo))]))
}

/// Normalises `v` into `[0, 1]` over `range` (a flat range maps everything to 0).
pub fn normalize(v: f32, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_match_matplotlib() {
        assert_eq!(
            Colormap::Viridis.at(0.0),
            Color32::from_rgb(0x44, 0x01, 0x54)
        );
        assert_eq!(
            Colormap::Viridis.at(1.0),
            Color32::from_rgb(0xfd, 0xe7, 0x25)
        );
        assert_eq!(Colormap::Magma.at(1.0), Color32::from_rgb(0xfc, 0xfd, 0xbf));
        // Out of range and NaN are clamped, never panic.
        assert_eq!(Colormap::Viridis.at(7.0), Colormap::Viridis.at(1.0));
        assert_eq!(Colormap::Viridis.at(f32::NAN), Colormap::Viridis.at(0.0));
    }

    #[test]
    fn colormaps_interpolate_between_stops() {
        let mid = Colormap::Viridis.at(0.5 / 9.0);
        // Half-way between 0x440154 and 0x482878.
        assert_eq!(mid, Color32::from_rgb(0x46, 0x15, 0x66));
        assert_eq!(Colormap::Magma.lut().len(), 256);
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("#ff0000"), Some(Color32::RED));
        assert_eq!(parse_hex("#00ff0080").map(|c| c.a()), Some(0x80));
        assert_eq!(parse_hex("red"), None);
        assert_eq!(parse_hex("#12345"), None);
    }

    #[test]
    fn palette_prefers_file_colours_and_scales_to_thousands() {
        let file = vec!["#000000".to_string(), "#ffffff".to_string()];
        assert_eq!(
            categorical_palette(2, Some(&file)),
            vec![Color32::BLACK, Color32::WHITE]
        );
        // Too short a palette in the file falls back to the default.
        assert_eq!(categorical_palette(3, Some(&file))[0], hex_u32(0x1f77b4));
        let many = categorical_palette(5000, None);
        assert_eq!(many.len(), 5000);
        assert_ne!(many[0], many[1]);
    }

    #[test]
    fn percentile_clipping() {
        let values: Vec<f32> = (0..=100).map(|v| v as f32).collect();
        assert_eq!(
            percentile_range_sorted(&values, 0.0, 100.0),
            Some((0.0, 100.0))
        );
        assert_eq!(
            percentile_range_sorted(&values, 5.0, 95.0),
            Some((5.0, 95.0))
        );
        assert_eq!(
            percentile_range_sorted(&values, 95.0, 5.0),
            Some((5.0, 95.0))
        );
        assert_eq!(percentile_range_sorted(&[], 0.0, 100.0), None);
        assert_eq!(normalize(50.0, (0.0, 100.0)), 0.5);
        assert_eq!(normalize(500.0, (0.0, 100.0)), 1.0);
        assert_eq!(normalize(3.0, (3.0, 3.0)), 0.0);
    }
}

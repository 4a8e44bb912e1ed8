//! What the points are coloured by, and the per-point colours and flags sent to the GPU.
//!
//! A [`Legend`] is built once when the user picks a column or gene; point colours are recomputed
//! only when the legend, the colour map or the clipping changes.

use std::sync::Arc;

use rayon::prelude::*;

use c2s_core::dataset::{ColumnData, Dataset};
use egui::Color32;

use super::colormap::{self, Colormap};
use super::jobs::{JobError, Progress};
use super::selection::Selection;

/// What to colour the points by.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ColorSource {
    /// One neutral colour.
    #[default]
    None,
    /// An `obs` column.
    Obs(String),
    /// A gene's expression in the loaded matrix.
    Gene(String),
}

impl ColorSource {
    /// Short label for headers.
    pub fn label(&self) -> String {
        match self {
            ColorSource::None => "nothing".into(),
            ColorSource::Obs(c) => c.clone(),
            ColorSource::Gene(g) => format!("{g} (expression)"),
        }
    }
}

/// Legend of a categorical colouring: one entry per category.
#[derive(Debug, Clone)]
pub struct CategoricalLegend {
    /// Category labels.
    pub categories: Vec<String>,
    /// Cells per category.
    pub counts: Vec<usize>,
    /// Colour of each category.
    pub colors: Vec<Color32>,
    /// Whether each category is hidden.
    pub hidden: Vec<bool>,
    /// Category code of each cell (−1 = missing).
    pub codes: Arc<Vec<i32>>,
    /// Cells with a missing value.
    pub missing: usize,
}

impl CategoricalLegend {
    /// Shows only `category` (double-click in the legend); solo-ing it again shows all.
    pub fn solo(&mut self, category: usize) {
        let already_solo = self
            .hidden
            .iter()
            .enumerate()
            .all(|(i, &h)| h == (i != category));
        for (i, h) in self.hidden.iter_mut().enumerate() {
            *h = !already_solo && i != category;
        }
    }

    /// Whether cell `i` is hidden.
    pub fn is_hidden(&self, i: usize) -> bool {
        let c = self.codes[i];
        c >= 0 && self.hidden.get(c as usize).copied().unwrap_or(false)
    }
}

/// Legend of a continuous colouring.
#[derive(Debug, Clone)]
pub struct ContinuousLegend {
    /// Value of each cell (NaN = missing).
    pub values: Arc<Vec<f32>>,
    /// The finite values, sorted: percentiles are lookups, so dragging the clip sliders costs
    /// no sort.
    pub sorted: Arc<Vec<f32>>,
    /// Minimum and maximum of the finite values.
    pub data_range: (f32, f32),
}

impl ContinuousLegend {
    /// The `lo`-th and `hi`-th percentiles (0–100) of the finite values, `None` when there
    /// are none.
    pub fn percentile_range(&self, lo: f32, hi: f32) -> Option<(f32, f32)> {
        colormap::percentile_range_sorted(&self.sorted, lo, hi)
    }
}

/// The colouring currently shown.
#[derive(Debug, Clone, Default)]
pub enum Legend {
    /// All points one colour.
    #[default]
    None,
    /// Categories with their colours.
    Categorical(CategoricalLegend),
    /// Values on a colour map.
    Continuous(ContinuousLegend),
}

/// Builds the legend for `source`, or explains why it cannot.
pub fn build_legend(dataset: &Dataset, source: &ColorSource) -> Result<Legend, String> {
    match source {
        ColorSource::None => Ok(Legend::None),
        ColorSource::Obs(name) => {
            let column = dataset
                .obs_column(name)
                .ok_or_else(|| format!("no obs column named '{name}'"))?;
            let palette = dataset.palettes.get(name).map(|p| p.as_slice());
            Ok(match &column.data {
                ColumnData::Categorical { codes, categories } => {
                    categorical(codes.clone(), categories.clone(), palette)
                }
                ColumnData::Bool(values) => categorical(
                    values.iter().map(|&b| b as i32).collect(),
                    vec!["False".into(), "True".into()],
                    palette,
                ),
                ColumnData::Text(values) => {
                    let mut categories: Vec<String> = values.clone();
                    categories.sort_unstable();
                    categories.dedup();
                    let codes = values
                        .iter()
                        .map(|v| categories.binary_search(v).map_or(-1, |i| i as i32))
                        .collect();
                    categorical(codes, categories, None)
                }
                ColumnData::Numeric(values) => {
                    continuous(values.iter().map(|&v| v as f32).collect())
                }
            })
        }
        ColorSource::Gene(gene) => {
            let j = dataset
                .var_names
                .iter()
                .position(|g| g == gene)
                .ok_or_else(|| format!("gene '{gene}' is not in the loaded matrix"))?;
            Ok(continuous(
                gene_values(dataset, j, &Progress::default()).map_err(|e| e.to_string())?,
            ))
        }
    }
}

/// Dense expression of gene `j` for every cell, in one pass over the stored entries
/// (reports progress and stops when cancelled).
pub fn gene_values(dataset: &Dataset, j: usize, progress: &Progress) -> Result<Vec<f32>, JobError> {
    let m = &dataset.expression;
    let mut out = vec![0.0f32; dataset.n_cells()];
    let j = j as u32;
    for (i, v) in out.iter_mut().enumerate().take(m.n_rows) {
        if i % 65_536 == 0 {
            progress.check()?;
            progress.set(i as f32 / m.n_rows.max(1) as f32, "reading expression");
        }
        let (cols, vals) = m.row(i);
        if let Some(p) = cols.iter().position(|&c| c == j) {
            *v = vals[p];
        }
    }
    Ok(out)
}

fn categorical(codes: Vec<i32>, categories: Vec<String>, palette: Option<&[String]>) -> Legend {
    let mut counts = vec![0usize; categories.len()];
    let mut missing = 0;
    for &c in &codes {
        match usize::try_from(c).ok().and_then(|c| counts.get_mut(c)) {
            Some(n) => *n += 1,
            None => missing += 1,
        }
    }
    Legend::Categorical(CategoricalLegend {
        colors: colormap::categorical_palette(categories.len(), palette),
        hidden: vec![false; categories.len()],
        counts,
        categories,
        codes: Arc::new(codes),
        missing,
    })
}

/// A continuous legend over `values` (NaN = missing).
pub fn continuous(values: Vec<f32>) -> Legend {
    let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_unstable_by(f32::total_cmp);
    let data_range = colormap::percentile_range_sorted(&sorted, 0.0, 100.0).unwrap_or((0.0, 0.0));
    Legend::Continuous(ContinuousLegend {
        values: Arc::new(values),
        sorted: Arc::new(sorted),
        data_range,
    })
}

/// Continuous colouring settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ContinuousStyle {
    /// The colour map.
    pub colormap: Colormap,
    /// Lower clipping percentile (0–100).
    pub clip_low: f32,
    /// Upper clipping percentile (0–100).
    pub clip_high: f32,
}

impl Default for ContinuousStyle {
    fn default() -> Self {
        Self {
            colormap: Colormap::Viridis,
            clip_low: 0.0,
            clip_high: 99.0,
        }
    }
}

/// Default point colour when nothing is coloured.
pub const NEUTRAL: Color32 = Color32::from_rgb(0x4c, 0x78, 0xa8);

/// Packs a colour as RGBA8 in a `u32` (little-endian byte order r, g, b, a).
pub fn pack(c: Color32) -> u32 {
    u32::from_le_bytes([c.r(), c.g(), c.b(), 255])
}

/// Per-point colours for `legend`, and the clipped value range for continuous legends. Runs
/// on every core: it is redone on the UI thread while a clip slider is dragged.
pub fn point_colors(
    legend: &Legend,
    n: usize,
    style: &ContinuousStyle,
) -> (Vec<u32>, Option<(f32, f32)>) {
    match legend {
        Legend::None => (vec![pack(NEUTRAL); n], None),
        Legend::Categorical(l) => {
            let missing = pack(colormap::MISSING);
            let packed: Vec<u32> = l.colors.iter().map(|&c| pack(c)).collect();
            let colors = l
                .codes
                .par_iter()
                .map(|&c| {
                    usize::try_from(c)
                        .ok()
                        .and_then(|c| packed.get(c))
                        .copied()
                        .unwrap_or(missing)
                })
                .collect();
            (colors, None)
        }
        Legend::Continuous(l) => {
            let range = l
                .percentile_range(style.clip_low, style.clip_high)
                .unwrap_or((0.0, 0.0));
            let lut: Vec<u32> = style.colormap.lut().into_iter().map(pack).collect();
            let missing = pack(colormap::MISSING);
            let colors = l
                .values
                .par_iter()
                .map(|&v| {
                    if v.is_finite() {
                        lut[(colormap::normalize(v, range) * 255.0).round() as usize]
                    } else {
                        missing
                    }
                })
                .collect();
            (colors, Some(range))
        }
    }
}

/// Flag bit: the point is hidden (its category is switched off).
pub const FLAG_HIDDEN: u32 = 1;
/// Flag bit: the point is selected.
pub const FLAG_SELECTED: u32 = 2;

/// Per-point flags: hidden by the legend, selected.
pub fn point_flags(legend: &Legend, selection: &Selection, n: usize) -> Vec<u32> {
    (0..n)
        .map(|i| {
            let hidden = matches!(legend, Legend::Categorical(l) if l.is_hidden(i));
            (hidden as u32 * FLAG_HIDDEN) | (selection.contains(i) as u32 * FLAG_SELECTED)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::demo;

    #[test]
    fn categorical_counts_colours_and_solo() {
        let d = demo::generate(500, &Progress::default()).unwrap();
        let Legend::Categorical(mut l) =
            build_legend(&d, &ColorSource::Obs("cell_type".into())).unwrap()
        else {
            panic!("categorical")
        };
        assert_eq!(l.counts.iter().sum::<usize>() + l.missing, 500);
        // The uns palette is used.
        assert_eq!(
            l.colors[0],
            colormap::parse_hex(&d.palettes["cell_type"][0]).unwrap()
        );
        l.solo(2);
        assert_eq!(l.hidden.iter().filter(|&&h| !h).count(), 1);
        assert!(!l.hidden[2]);
        l.solo(2);
        assert!(l.hidden.iter().all(|&h| !h));
        let (colors, range) = point_colors(
            &Legend::Categorical(l.clone()),
            500,
            &ContinuousStyle::default(),
        );
        assert_eq!(range, None);
        assert_eq!(colors[0], pack(l.colors[l.codes[0] as usize]));
    }

    #[test]
    fn continuous_colours_follow_the_colormap_and_clipping() {
        let values: Vec<f32> = (0..=100).map(|v| v as f32).chain([f32::NAN]).collect();
        let legend = continuous(values);
        let style = ContinuousStyle {
            colormap: Colormap::Magma,
            clip_low: 10.0,
            clip_high: 90.0,
        };
        let (colors, range) = point_colors(&legend, 102, &style);
        assert_eq!(range, Some((10.0, 90.0)));
        assert_eq!(colors[0], pack(Colormap::Magma.at(0.0)));
        assert_eq!(colors[10], pack(Colormap::Magma.at(0.0)));
        assert_eq!(colors[95], pack(Colormap::Magma.at(1.0)));
        assert_eq!(colors[101], pack(colormap::MISSING));
    }

    #[test]
    fn gene_expression_and_errors() {
        let d = demo::generate(300, &Progress::default()).unwrap();
        let Legend::Continuous(l) = build_legend(&d, &ColorSource::Gene("MS4A1".into())).unwrap()
        else {
            panic!("continuous")
        };
        assert!(l.data_range.1 > 0.0);
        assert!(build_legend(&d, &ColorSource::Gene("NOPE".into())).is_err());
        assert!(build_legend(&d, &ColorSource::Obs("nope".into())).is_err());
    }

    #[test]
    fn flags_mark_hidden_and_selected() {
        let legend = categorical(vec![0, 1, -1], vec!["a".into(), "b".into()], None);
        let Legend::Categorical(mut l) = legend else {
            unreachable!()
        };
        l.hidden[1] = true;
        let mut sel = Selection::new(3);
        sel.apply([0], crate::gui::selection::SelectMode::Replace);
        let flags = point_flags(&Legend::Categorical(l), &sel, 3);
        assert_eq!(flags, vec![FLAG_SELECTED, FLAG_HIDDEN, 0]);
    }
}

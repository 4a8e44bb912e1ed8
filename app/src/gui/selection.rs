//! Selection geometry in data coordinates: lasso polygons, boxes, and a uniform-grid index of the
//! embedding for hover and hit tests.
//!
//! A lasso test over a million points runs in a few milliseconds: polygon edges are bucketed by
//! grid row, so each point is tested only against the edges crossing its row.

/// How a new selection combines with the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectMode {
    /// Replace the current selection.
    Replace,
    /// Add to it (Shift or Ctrl/Cmd held).
    Add,
    /// Remove from it (Alt held).
    Subtract,
}

impl SelectMode {
    /// The mode the keyboard modifiers ask for.
    pub fn from_modifiers(m: egui::Modifiers) -> Self {
        if m.alt {
            SelectMode::Subtract
        } else if m.shift || m.command || m.ctrl {
            SelectMode::Add
        } else {
            SelectMode::Replace
        }
    }
}

/// The set of selected cells, as one flag per cell plus a count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    flags: Vec<bool>,
    count: usize,
}

impl Selection {
    /// An empty selection over `n` cells.
    pub fn new(n: usize) -> Self {
        Self {
            flags: vec![false; n],
            count: 0,
        }
    }

    /// Number of selected cells.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether cell `i` is selected.
    pub fn contains(&self, i: usize) -> bool {
        self.flags.get(i).copied().unwrap_or(false)
    }

    /// One flag per cell: whether it is selected.
    pub fn flags(&self) -> &[bool] {
        &self.flags
    }

    /// Indices of the selected cells, ascending.
    pub fn indices(&self) -> Vec<usize> {
        (0..self.flags.len()).filter(|&i| self.flags[i]).collect()
    }

    /// Deselects everything.
    pub fn clear(&mut self) {
        self.flags.iter_mut().for_each(|f| *f = false);
        self.count = 0;
    }

    /// Combines the cells in `hits` (ascending or not, no duplicates needed) with the selection.
    pub fn apply(&mut self, hits: impl IntoIterator<Item = usize>, mode: SelectMode) {
        if mode == SelectMode::Replace {
            self.clear();
        }
        let value = mode != SelectMode::Subtract;
        for i in hits {
            if let Some(f) = self.flags.get_mut(i) {
                *f = value;
            }
        }
        self.count = self.flags.iter().filter(|&&f| f).count();
    }
}

/// Whether `p` lies inside the closed polygon `poly` (even-odd rule); the reference that
/// [`GridIndex::in_polygon`] is tested against.
#[cfg(test)]
pub fn point_in_polygon(p: [f32; 2], poly: &[[f32; 2]]) -> bool {
    let mut inside = false;
    let n = poly.len();
    if n < 3 {
        return false;
    }
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (poly[i], poly[j]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
            if p[0] < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// A uniform grid over the points of a 2-D embedding: each cell lists the points inside it.
#[derive(Debug, Clone)]
pub struct GridIndex {
    min: [f32; 2],
    cell: [f32; 2],
    dims: [usize; 2],
    /// Start of each grid cell's run in `order` (`dims[0] * dims[1] + 1` entries).
    starts: Vec<u32>,
    /// Point indices sorted by grid cell.
    order: Vec<u32>,
    points: std::sync::Arc<Vec<[f32; 2]>>,
}

impl GridIndex {
    /// Builds the index (about 4 points per grid cell on average). Non-finite points are left out.
    pub fn build(points: std::sync::Arc<Vec<[f32; 2]>>) -> Self {
        let (min, max) = bounds(&points).unwrap_or(([0.0, 0.0], [1.0, 1.0]));
        let n = points.len().max(1);
        let side = ((n as f32 / 4.0).sqrt().ceil() as usize).clamp(1, 2048);
        let dims = [side, side];
        let cell = [
            ((max[0] - min[0]) / side as f32).max(f32::MIN_POSITIVE),
            ((max[1] - min[1]) / side as f32).max(f32::MIN_POSITIVE),
        ];
        let mut index = Self {
            min,
            cell,
            dims,
            starts: Vec::new(),
            order: Vec::new(),
            points,
        };
        let mut counts = vec![0u32; dims[0] * dims[1] + 1];
        let keys: Vec<Option<usize>> = index.points.iter().map(|&p| index.key(p)).collect();
        for k in keys.iter().flatten() {
            counts[k + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut fill = counts.clone();
        let mut order = vec![0u32; counts[counts.len() - 1] as usize];
        for (i, k) in keys.iter().enumerate() {
            if let Some(k) = k {
                order[fill[*k] as usize] = i as u32;
                fill[*k] += 1;
            }
        }
        index.starts = counts;
        index.order = order;
        index
    }

    fn cell_of(&self, p: [f32; 2]) -> [usize; 2] {
        let c = |d: usize| {
            (((p[d] - self.min[d]) / self.cell[d]).floor().max(0.0) as usize).min(self.dims[d] - 1)
        };
        [c(0), c(1)]
    }

    fn key(&self, p: [f32; 2]) -> Option<usize> {
        if !(p[0].is_finite() && p[1].is_finite()) {
            return None;
        }
        let [cx, cy] = self.cell_of(p);
        Some(cy * self.dims[0] + cx)
    }

    fn bucket(&self, cx: usize, cy: usize) -> &[u32] {
        let k = cy * self.dims[0] + cx;
        &self.order[self.starts[k] as usize..self.starts[k + 1] as usize]
    }

    /// The point nearest to `p` within `radius` (data units) that passes `visible`.
    pub fn nearest(
        &self,
        p: [f32; 2],
        radius: f32,
        visible: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let lo = self.cell_of([p[0] - radius, p[1] - radius]);
        let hi = self.cell_of([p[0] + radius, p[1] + radius]);
        let mut best: Option<(f32, usize)> = None;
        for cy in lo[1]..=hi[1] {
            for cx in lo[0]..=hi[0] {
                for &i in self.bucket(cx, cy) {
                    let q = self.points[i as usize];
                    let d2 = (q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2);
                    if d2 <= radius * radius
                        && best.is_none_or(|(b, _)| d2 < b)
                        && visible(i as usize)
                    {
                        best = Some((d2, i as usize));
                    }
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Indices of the points inside the axis-aligned box spanned by `a` and `b`.
    pub fn in_box(&self, a: [f32; 2], b: [f32; 2]) -> Vec<usize> {
        let (min, max) = (
            [a[0].min(b[0]), a[1].min(b[1])],
            [a[0].max(b[0]), a[1].max(b[1])],
        );
        let (lo, hi) = (self.cell_of(min), self.cell_of(max));
        let mut hits = Vec::new();
        for cy in lo[1]..=hi[1] {
            for cx in lo[0]..=hi[0] {
                for &i in self.bucket(cx, cy) {
                    let q = self.points[i as usize];
                    if q[0] >= min[0] && q[0] <= max[0] && q[1] >= min[1] && q[1] <= max[1] {
                        hits.push(i as usize);
                    }
                }
            }
        }
        hits
    }

    /// Indices of the points inside the lasso polygon `poly` (even-odd rule).
    pub fn in_polygon(&self, poly: &[[f32; 2]]) -> Vec<usize> {
        let Some((min, max)) = bounds(poly) else {
            return Vec::new();
        };
        if poly.len() < 3 {
            return Vec::new();
        }
        let (lo, hi) = (self.cell_of(min), self.cell_of(max));
        let mut hits = Vec::new();
        let mut row_edges: Vec<([f32; 2], [f32; 2])> = Vec::new();
        for cy in lo[1]..=hi[1] {
            // Edges whose y-span overlaps this grid row.
            // Padded by a fraction of a row so rounding in `cell_of` cannot drop an edge.
            let pad = self.cell[1] * 0.01;
            let y0 = self.min[1] + cy as f32 * self.cell[1] - pad;
            let y1 = y0 + self.cell[1] + 2.0 * pad;
            let (y0, y1) = if cy == 0 { (f32::MIN, y1) } else { (y0, y1) };
            let y1 = if cy == self.dims[1] - 1 { f32::MAX } else { y1 };
            row_edges.clear();
            for i in 0..poly.len() {
                let (a, b) = (poly[i], poly[(i + poly.len() - 1) % poly.len()]);
                if a[1].max(b[1]) >= y0 && a[1].min(b[1]) <= y1 {
                    row_edges.push((a, b));
                }
            }
            for cx in lo[0]..=hi[0] {
                for &i in self.bucket(cx, cy) {
                    let p = self.points[i as usize];
                    if p[0] < min[0] || p[0] > max[0] || p[1] < min[1] || p[1] > max[1] {
                        continue;
                    }
                    let mut inside = false;
                    for &(a, b) in &row_edges {
                        if (a[1] > p[1]) != (b[1] > p[1]) {
                            let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
                            if p[0] < x {
                                inside = !inside;
                            }
                        }
                    }
                    if inside {
                        hits.push(i as usize);
                    }
                }
            }
        }
        hits
    }
}

/// Bounding box (min, max) of the finite points, or `None` when there are none.
pub fn bounds(points: &[[f32; 2]]) -> Option<([f32; 2], [f32; 2])> {
    let mut min = [f32::INFINITY; 2];
    let mut max = [f32::NEG_INFINITY; 2];
    for p in points
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
    {
        for d in 0..2 {
            min[d] = min[d].min(p[d]);
            max[d] = max[d].max(p[d]);
        }
    }
    (min[0] <= max[0]).then_some((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn lattice(n: usize) -> Arc<Vec<[f32; 2]>> {
        Arc::new(
            (0..n * n)
                .map(|i| [(i % n) as f32, (i / n) as f32])
                .collect(),
        )
    }

    #[test]
    fn point_in_polygon_square_and_concave() {
        let square = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]];
        assert!(point_in_polygon([1.0, 1.0], &square));
        assert!(!point_in_polygon([3.0, 1.0], &square));
        // A "C" shape: the notch is outside.
        let c = [
            [0.0, 0.0],
            [3.0, 0.0],
            [3.0, 1.0],
            [1.0, 1.0],
            [1.0, 2.0],
            [3.0, 2.0],
            [3.0, 3.0],
            [0.0, 3.0],
        ];
        assert!(point_in_polygon([0.5, 1.5], &c));
        assert!(!point_in_polygon([2.0, 1.5], &c));
        assert!(!point_in_polygon([0.5, 0.5], &[[0.0, 0.0], [1.0, 1.0]]));
    }

    #[test]
    fn grid_lasso_matches_brute_force() {
        let pts = lattice(60);
        let index = GridIndex::build(pts.clone());
        let poly = [
            [5.3, 4.1],
            [50.2, 10.7],
            [30.5, 22.0],
            [52.0, 55.5],
            [8.8, 40.1],
            [20.0, 25.0],
        ];
        let mut fast = index.in_polygon(&poly);
        fast.sort_unstable();
        let slow: Vec<usize> = (0..pts.len())
            .filter(|&i| point_in_polygon(pts[i], &poly))
            .collect();
        assert!(!slow.is_empty());
        assert_eq!(fast, slow);
    }

    #[test]
    fn box_and_nearest() {
        let index = GridIndex::build(lattice(10));
        let mut hits = index.in_box([1.5, 1.5], [3.5, 2.5]);
        hits.sort_unstable();
        assert_eq!(hits, vec![22, 23]);
        assert_eq!(index.nearest([4.2, 6.9], 0.5, |_| true), Some(74));
        assert_eq!(index.nearest([4.5, 6.5], 0.1, |_| true), None);
        // A hidden point is skipped in favour of the next nearest.
        assert_eq!(index.nearest([4.2, 6.9], 1.0, |i| i != 74), Some(75));
    }

    #[test]
    fn selection_modes_combine() {
        let mut sel = Selection::new(6);
        sel.apply([0, 1, 2], SelectMode::Replace);
        sel.apply([4], SelectMode::Add);
        sel.apply([1], SelectMode::Subtract);
        assert_eq!(sel.indices(), vec![0, 2, 4]);
        assert_eq!(sel.count(), 3);
        sel.apply([5], SelectMode::Replace);
        assert_eq!(sel.indices(), vec![5]);
        assert_eq!(
            SelectMode::from_modifiers(egui::Modifiers::SHIFT),
            SelectMode::Add
        );
        assert_eq!(
            SelectMode::from_modifiers(egui::Modifiers::ALT),
            SelectMode::Subtract
        );
    }

    #[test]
    fn non_finite_points_are_ignored() {
        let pts = Arc::new(vec![[0.0, 0.0], [f32::NAN, 1.0], [1.0, 1.0]]);
        let index = GridIndex::build(pts);
        let mut hits = index.in_box([-1.0, -1.0], [2.0, 2.0]);
        hits.sort_unstable();
        assert_eq!(hits, vec![0, 2]);
    }
}

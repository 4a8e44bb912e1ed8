//! The order points are painted in, shared by every renderer: visible unselected points first,
//! then the selected ones, so a selection is never hidden under other cells.
//!
//! The GPU scatter draws all points in one instanced call (skipping selected ones while a
//! selection exists) and then the [`on_top`] points in a second call; the CPU fallback and the
//! SVG export paint one point at a time in [`paint_order`].

use crate::gui::coloring::{FLAG_HIDDEN, FLAG_SELECTED};

/// Whether a point with `flags` belongs on top: selected and not hidden.
pub fn is_on_top(flags: u32) -> bool {
    flags & FLAG_SELECTED != 0 && flags & FLAG_HIDDEN == 0
}

/// Indices of the points drawn on top (selected, visible), ascending.
pub fn on_top(flags: &[u32]) -> Vec<u32> {
    (0..flags.len() as u32)
        .filter(|&i| is_on_top(flags[i as usize]))
        .collect()
}

/// Indices of visible points in painting order: unselected points, then selected ones, each
/// group in index order. At most about `budget` points of each group are kept, evenly
/// subsampled (`usize::MAX` keeps all).
pub fn paint_order(flags: &[u32], budget: usize) -> Vec<usize> {
    let budget = budget.max(1);
    let top = on_top(flags);
    let base_stride = flags.len().div_ceil(budget).max(1);
    let top_stride = top.len().div_ceil(budget).max(1);
    (0..flags.len())
        .step_by(base_stride)
        .filter(|&i| flags[i] & (FLAG_HIDDEN | FLAG_SELECTED) == 0)
        .chain(top.iter().step_by(top_stride).map(|&i| i as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u32 = FLAG_HIDDEN;
    const S: u32 = FLAG_SELECTED;

    #[test]
    fn selected_points_come_last_and_hidden_never() {
        let flags = [S, 0, H, S | H, 0, S];
        assert_eq!(on_top(&flags), vec![0, 5]);
        assert_eq!(paint_order(&flags, usize::MAX), vec![1, 4, 0, 5]);
        assert_eq!(paint_order(&[], usize::MAX), Vec::<usize>::new());
    }

    #[test]
    fn budget_subsamples_each_group_but_keeps_a_small_selection() {
        // 1000 points, the last three selected: the budget thins the rest, not the selection.
        let mut flags = vec![0; 1000];
        flags[997..].fill(S);
        let order = paint_order(&flags, 100);
        let (base, top): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&i| flags[i] & S == 0);
        assert_eq!(base.len(), 100);
        assert_eq!(top, vec![997, 998, 999]);
        assert_eq!(&order[order.len() - 3..], &[997, 998, 999]);
    }
}

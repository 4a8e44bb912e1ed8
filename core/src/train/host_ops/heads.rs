//! The attention heads of a fused projection's rows: splitting `[tokens, q | k | v]` into
//! per-head `[B, heads, T, D]` blocks with the rotary embedding applied to queries and keys,
//! and the reverse for the gradient (rotated back, written into the rows' columns). On host
//! values this is one copy each way; in Burn operations it is a reshape, a transposed view,
//! three narrows and for the rotation a dozen element-wise tensors per layer, each way.

use crate::model::rope::HostRope;
use rayon::prelude::*;

/// Where each head's query, key and value sit in a token's row of the fused projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvLayout {
    /// GPT-NeoX's `query_key_value`: head after head, each as its query, key and value
    /// (`[heads, 3, head_dim]`).
    Interleaved {
        /// Attention heads (as many key/value heads).
        heads: usize,
        /// Values per head.
        head_dim: usize,
    },
    /// Every query head, then every key head, then every value head (Gemma's three projections
    /// side by side).
    Stacked {
        /// Query heads.
        heads: usize,
        /// Key/value heads (each serves `heads / kv_heads` consecutive query heads).
        kv_heads: usize,
        /// Values per head.
        head_dim: usize,
    },
}

/// The three parts of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Query,
    Key,
    Value,
}

impl Part {
    const ALL: [Part; 3] = [Part::Query, Part::Key, Part::Value];
}

impl QkvLayout {
    /// Query heads.
    pub fn heads(&self) -> usize {
        match *self {
            Self::Interleaved { heads, .. } | Self::Stacked { heads, .. } => heads,
        }
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        match *self {
            Self::Interleaved { heads, .. } => heads,
            Self::Stacked { kv_heads, .. } => kv_heads,
        }
    }

    /// Values per head.
    pub fn head_dim(&self) -> usize {
        match *self {
            Self::Interleaved { head_dim, .. } | Self::Stacked { head_dim, .. } => head_dim,
        }
    }

    /// Values per token row.
    pub fn width(&self) -> usize {
        (self.heads() + 2 * self.kv_heads()) * self.head_dim()
    }

    fn part_heads(&self, part: Part) -> usize {
        match part {
            Part::Query => self.heads(),
            Part::Key | Part::Value => self.kv_heads(),
        }
    }

    /// The column where head `h` of `part` starts in a token's row.
    fn offset(&self, part: Part, h: usize) -> usize {
        let d = self.head_dim();
        let index = part as usize;
        match *self {
            Self::Interleaved { .. } => (3 * h + index) * d,
            Self::Stacked {
                heads, kv_heads, ..
            } => {
                let before = match part {
                    Part::Query => 0,
                    Part::Key => heads,
                    Part::Value => heads + kv_heads,
                };
                (before + h) * d
            }
        }
    }
}

/// One part's heads `[B, n, T, D]` from `rows × seq` token rows of `qkv`, queries and keys
/// rotated (tokens numbered row-major, as the rotary tables are).
pub(super) fn gather(
    qkv: &[f32],
    layout: QkvLayout,
    part: Part,
    rows: usize,
    seq: usize,
    rope: &HostRope,
) -> Vec<f32> {
    let (n, d, width) = (layout.part_heads(part), layout.head_dim(), layout.width());
    let mut out = vec![0f32; rows * n * seq * d];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(seq * d)
        .enumerate()
        .for_each(|(bh, head)| {
            let (b, h) = (bh / n, bh % n);
            let at = layout.offset(part, h);
            for (pos, dst) in head.chunks_mut(d).enumerate() {
                let token = b * seq + pos;
                dst.copy_from_slice(&qkv[token * width + at..][..d]);
                if part != Part::Value {
                    rope.apply(token, dst);
                }
            }
        });
    out
}

/// The gradient of the token rows from the gradients of the three parts' heads (each
/// `[B, n, T, D]`), queries and keys rotated back.
pub(super) fn scatter(
    grads: [&[f32]; 3],
    layout: QkvLayout,
    rows: usize,
    seq: usize,
    rope: &HostRope,
) -> Vec<f32> {
    let (d, width) = (layout.head_dim(), layout.width());
    let mut out = vec![0f32; rows * seq * width];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(width)
        .enumerate()
        .for_each(|(token, row)| {
            let (b, pos) = (token / seq, token % seq);
            for (part, grad) in Part::ALL.into_iter().zip(grads) {
                let n = layout.part_heads(part);
                for h in 0..n {
                    let dst = &mut row[layout.offset(part, h)..][..d];
                    dst.copy_from_slice(&grad[((b * n + h) * seq + pos) * d..][..d]);
                    if part != Part::Value {
                        rope.apply_inverse(token, dst);
                    }
                }
            }
        });
    out
}

/// Both layouts as the tests use them, each with a rotary dimension: partial rotation for the
/// interleaved one, grouped key/value heads and full rotation for the stacked one.
#[cfg(test)]
pub(super) fn test_layouts() -> [(QkvLayout, usize); 2] {
    [
        (
            QkvLayout::Interleaved {
                heads: 3,
                head_dim: 8,
            },
            4,
        ),
        (
            QkvLayout::Stacked {
                heads: 4,
                kv_heads: 2,
                head_dim: 6,
            },
            6,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{RopeConfig, RopeScaling};
    use crate::model::rope::Rope;

    fn rope(rotary_dim: usize, tokens: usize) -> HostRope {
        let positions: Vec<i64> = (0..tokens as i64).map(|p| p * 3 % 7).collect();
        Rope::new(
            rotary_dim,
            RopeConfig {
                theta: 10_000.0,
                scaling: RopeScaling::None,
            },
        )
        .host_tables(&positions)
    }

    /// Every column of a row is read once by the split, and the scatter of the split is the
    /// row again (the rotation undone), for both layouts.
    #[test]
    fn scatter_undoes_gather_for_both_layouts() {
        let (rows, seq) = (2, 5);
        for (layout, rotary_dim) in test_layouts() {
            let rope = rope(rotary_dim, rows * seq);
            let qkv: Vec<f32> = (0..rows * seq * layout.width())
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let parts = Part::ALL.map(|p| gather(&qkv, layout, p, rows, seq, &rope));
            let back = scatter([&parts[0], &parts[1], &parts[2]], layout, rows, seq, &rope);
            let worst = qkv
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-6, "{layout:?}: {worst}");
            // Values pass unrotated; the rotary part of a query moves.
            let d = layout.head_dim();
            let (token, h) = (7, 1);
            let v_at = token * layout.width() + layout.offset(Part::Value, h);
            let (b, pos) = (token / seq, token % seq);
            let n = layout.kv_heads();
            assert_eq!(
                &parts[2][((b * n + h) * seq + pos) * d..][..d],
                &qkv[v_at..v_at + d]
            );
        }
    }

    #[test]
    fn the_layouts_place_heads_as_the_checkpoints_do() {
        let neox = QkvLayout::Interleaved {
            heads: 2,
            head_dim: 4,
        };
        assert_eq!(neox.width(), 24);
        assert_eq!(neox.offset(Part::Query, 1), 12);
        assert_eq!(neox.offset(Part::Key, 0), 4);
        assert_eq!(neox.offset(Part::Value, 1), 20);
        let gemma = QkvLayout::Stacked {
            heads: 4,
            kv_heads: 1,
            head_dim: 2,
        };
        assert_eq!(gemma.width(), 12);
        assert_eq!(gemma.offset(Part::Key, 0), 8);
        assert_eq!(gemma.offset(Part::Value, 0), 10);
    }
}

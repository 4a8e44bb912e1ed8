//! A low-rank update of a dense weight, `W += scale · B·A` (a LoRA adapter's factors), applied
//! when the weight is read: the engine runs an adapter at the base model's speed, and `merge`
//! writes the same sums to disk.

/// `scale · B·A` for one `[out, in]` weight.
#[derive(Debug, Clone, PartialEq)]
pub struct LowRankDelta {
    /// `A`, `[rank, in]` row-major.
    pub a: Vec<f32>,
    /// `B`, `[out, rank]` row-major.
    pub b: Vec<f32>,
    /// The rank.
    pub rank: usize,
    /// The factor applied to `B·A` (LoRA's `alpha / r`, or `alpha / √r` with rsLoRA).
    pub scale: f32,
}

impl LowRankDelta {
    /// Adds `scale · B·A` to `weight`, `[out, in]` row-major with rows of `in_features`.
    pub fn add_to(&self, weight: &mut [f32], in_features: usize) {
        for (o, row) in weight.chunks_mut(in_features).enumerate() {
            self.add_to_row(o, row);
        }
    }

    /// Adds row `o` of `scale · B·A` to `row` (row `o` of the weight, `in` values).
    pub fn add_to_row(&self, o: usize, row: &mut [f32]) {
        let (r, in_features) = (self.rank, row.len());
        for (k, &bk) in self.b[o * r..(o + 1) * r].iter().enumerate() {
            let w = self.scale * bk;
            let a = &self.a[k * in_features..(k + 1) * in_features];
            for (v, &ak) in row.iter_mut().zip(a) {
                *v += w * ak;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_scaled_product_of_the_factors() {
        // B = [[1], [2]] (2×1), A = [[3, 4, 5]] (1×3), scale 0.5 → ΔW = [[1.5, 2, 2.5], [3, 4, 5]].
        let d = LowRankDelta {
            a: vec![3.0, 4.0, 5.0],
            b: vec![1.0, 2.0],
            rank: 1,
            scale: 0.5,
        };
        let mut w = vec![1.0; 6];
        d.add_to(&mut w, 3);
        assert_eq!(w, [2.5, 3.0, 3.5, 4.0, 5.0, 6.0]);
    }
}

//! Left-padded batches: each row's tokens are right-aligned, padding is masked out, and positions
//! count real tokens only (`cumsum(mask) − 1`, padding at 1, as `transformers` does).

/// A `[batch, seq]` block of token ids ready for a prefill step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedBatch {
    /// Row-major ids, padding first.
    pub ids: Vec<u32>,
    /// Row-major positions.
    pub positions: Vec<i64>,
    /// Row-major validity (false = padding).
    pub valid: Vec<bool>,
    /// Rows.
    pub batch: usize,
    /// Columns (the longest row).
    pub seq: usize,
    /// Real tokens per row.
    pub lengths: Vec<usize>,
}

impl PaddedBatch {
    /// Left-pads `rows` with `pad`.
    pub fn left_pad<R: AsRef<[u32]>>(rows: &[R], pad: u32) -> Self {
        let batch = rows.len();
        let seq = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * seq);
        let mut positions = Vec::with_capacity(batch * seq);
        let mut valid = Vec::with_capacity(batch * seq);
        for row in rows {
            let row = row.as_ref();
            let padding = seq - row.len();
            ids.extend(std::iter::repeat_n(pad, padding));
            positions.extend(std::iter::repeat_n(1i64, padding));
            valid.extend(std::iter::repeat_n(false, padding));
            ids.extend_from_slice(row);
            positions.extend(0..row.len() as i64);
            valid.extend(std::iter::repeat_n(true, row.len()));
        }
        Self {
            ids,
            positions,
            valid,
            batch,
            seq,
            lengths: rows.iter().map(|r| r.as_ref().len()).collect(),
        }
    }

    /// The same batch with positions `0..seq` on every row, padding included: what
    /// `transformers` uses when a forward call gets an attention mask but no position ids (the
    /// `cell2sentence` package's embedding call). Real tokens then start at their padding's
    /// width; rotary attention depends only on position differences, so they see the same thing.
    pub fn with_column_positions(mut self) -> Self {
        let seq = self.seq as i64;
        self.positions = (0..self.batch).flat_map(|_| 0..seq).collect();
        self
    }

    /// Columns of padding in front of row `b`.
    pub fn padding(&self, b: usize) -> usize {
        self.seq - self.lengths[b]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_right_aligned_with_per_row_positions() {
        let b = PaddedBatch::left_pad(&[vec![5, 6, 7], vec![9]], 0);
        assert_eq!(b.ids, vec![5, 6, 7, 0, 0, 9]);
        assert_eq!(b.positions, vec![0, 1, 2, 1, 1, 0]);
        assert_eq!(b.valid, vec![true, true, true, false, false, true]);
        assert_eq!(b.padding(1), 2);
        let b = b.with_column_positions();
        assert_eq!(b.positions, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(b.valid, vec![true, true, true, false, false, true]);
    }
}

//! Expression matrices held in memory: compressed sparse rows (cells × genes).

/// A cells × genes matrix in compressed sparse row form, values as `f32`.
///
/// After [`CsrMatrix::canonicalize`] (which the reader applies), column indices within a row are
/// strictly increasing, as scipy's `sum_duplicates` leaves them; use [`CsrMatrix::column`] for
/// per-gene access.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsrMatrix {
    /// Number of rows (cells).
    pub n_rows: usize,
    /// Number of columns (genes).
    pub n_cols: usize,
    /// Row pointers, `n_rows + 1` entries.
    pub indptr: Vec<u64>,
    /// Column index of each stored entry.
    pub indices: Vec<u32>,
    /// Value of each stored entry (explicit zeros may be present).
    pub data: Vec<f32>,
}

impl CsrMatrix {
    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// The stored column indices and values of row `i`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (start, end) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[start..end], &self.data[start..end])
    }

    /// The rows `rows` (in that order) as a new matrix with the same columns.
    pub fn select_rows(&self, rows: &[usize]) -> CsrMatrix {
        let mut out = CsrMatrix {
            n_rows: rows.len(),
            n_cols: self.n_cols,
            indptr: Vec::with_capacity(rows.len() + 1),
            ..Default::default()
        };
        out.indptr.push(0);
        for &r in rows {
            let (cols, vals) = self.row(r);
            out.indices.extend_from_slice(cols);
            out.data.extend_from_slice(vals);
            out.indptr.push(out.data.len() as u64);
        }
        out
    }

    /// Sorts each row by column index and sums repeated entries, as scipy's `sum_duplicates`
    /// does (the `cell2sentence` package triggers it before ranking, so tie order depends on it).
    pub fn canonicalize(&mut self) {
        use rayon::prelude::*;
        let indptr = &self.indptr;
        let mut rows: Vec<(&mut [u32], &mut [f32])> = Vec::with_capacity(self.n_rows);
        let (mut idx, mut val): (&mut [u32], &mut [f32]) = (&mut self.indices, &mut self.data);
        for i in 0..self.n_rows {
            let len = (indptr[i + 1] - indptr[i]) as usize;
            let (a, rest_i) = idx.split_at_mut(len);
            let (b, rest_v) = val.split_at_mut(len);
            rows.push((a, b));
            idx = rest_i;
            val = rest_v;
        }
        let has_duplicates = rows
            .into_par_iter()
            .map(|(cols, vals)| {
                if cols.windows(2).all(|w| w[0] < w[1]) {
                    return false;
                }
                let mut pairs: Vec<(u32, f32)> =
                    cols.iter().copied().zip(vals.iter().copied()).collect();
                pairs.sort_by_key(|p| p.0);
                for (k, (c, v)) in pairs.into_iter().enumerate() {
                    cols[k] = c;
                    vals[k] = v;
                }
                cols.windows(2).any(|w| w[0] == w[1])
            })
            .reduce(|| false, |a, b| a || b);
        if has_duplicates {
            self.merge_sorted_duplicates();
        }
    }

    /// Sums runs of equal column indices within each (sorted) row, compacting the arrays.
    fn merge_sorted_duplicates(&mut self) {
        let mut write = 0usize;
        let mut read = 0usize;
        for i in 0..self.n_rows {
            let end = self.indptr[i + 1] as usize;
            let row_start = write;
            while read < end {
                if write > row_start && self.indices[write - 1] == self.indices[read] {
                    self.data[write - 1] += self.data[read];
                } else {
                    self.indices[write] = self.indices[read];
                    self.data[write] = self.data[read];
                    write += 1;
                }
                read += 1;
            }
            self.indptr[i + 1] = write as u64;
        }
        self.indices.truncate(write);
        self.data.truncate(write);
    }

    /// Dense values of column `j` for every row (zeros where nothing is stored).
    /// Rows must be canonical (sorted column indices).
    pub fn column(&self, j: usize) -> Vec<f32> {
        let j = j as u32;
        (0..self.n_rows)
            .map(|i| {
                let (cols, vals) = self.row(i);
                cols.binary_search(&j).map_or(0.0, |p| vals[p])
            })
            .collect()
    }
}

/// The index of the first element where `bad` holds, scanning blocks in parallel (each block
/// with a tight loop: rayon's per-element `position_first` costs more than the test itself).
pub(crate) fn first_index_where<T: Sync>(
    items: &[T],
    bad: impl Fn(&T) -> bool + Sync,
) -> Option<usize> {
    const BLOCK: usize = 1 << 16;
    use rayon::prelude::*;
    items
        .par_chunks(BLOCK)
        .enumerate()
        .find_map_first(|(k, block)| block.iter().position(&bad).map(|p| k * BLOCK + p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_rows_keep_their_entries_in_the_given_order() {
        let m = CsrMatrix {
            n_rows: 3,
            n_cols: 4,
            indptr: vec![0, 2, 2, 3],
            indices: vec![0, 3, 1],
            data: vec![1.0, 2.0, 3.0],
        };
        let s = m.select_rows(&[2, 1, 0]);
        assert_eq!((s.n_rows, s.n_cols), (3, 4));
        assert_eq!(s.indptr, [0, 1, 1, 3]);
        assert_eq!(s.indices, [1, 0, 3]);
        assert_eq!(s.data, [3.0, 1.0, 2.0]);
    }

    #[test]
    fn canonicalize_sorts_rows_and_sums_duplicates() {
        let mut m = CsrMatrix {
            n_rows: 2,
            n_cols: 4,
            indptr: vec![0, 3, 6],
            indices: vec![3, 0, 2, 1, 1, 0],
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        m.canonicalize();
        assert_eq!(m.indptr, [0, 3, 5]);
        assert_eq!(m.indices, [0, 2, 3, 0, 1]);
        assert_eq!(m.data, [2.0, 3.0, 1.0, 6.0, 9.0]);
        assert_eq!(m.column(1), [0.0, 9.0]);
    }
}

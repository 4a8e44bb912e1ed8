//! Expression matrices held in memory: compressed sparse rows (cells × genes).

/// A cells × genes matrix in compressed sparse row form, values as `f32`.
///
/// Column indices within a row are kept in the order the file stored them (the reference
/// tie-break depends on it); use [`CsrMatrix::column`] for per-gene access.
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

    /// Dense values of column `j` for every row (zeros where nothing is stored).
    pub fn column(&self, j: usize) -> Vec<f32> {
        let j = j as u32;
        (0..self.n_rows)
            .map(|i| {
                let (cols, vals) = self.row(i);
                cols.iter()
                    .position(|&c| c == j)
                    .map_or(0.0, |p| vals[p])
            })
            .collect()
    }
}

//! Locating and reading expression matrices (`X`, `raw/X`, `layers/*`) into a [`CsrMatrix`],
//! in bounded chunks so that only one copy of the matrix is ever held, with progress and
//! cancellation.

use super::direct;
use super::hdf::{self, HdfResult, read_range_into};
use crate::dataset::{MatrixChoice, MatrixKind};
use crate::matrix::{CsrMatrix, first_index_where};
use crate::progress::Progress;
use hdf5::{Dataset, File, Group};
use hdf5_metno as hdf5;

/// Stored entries read per HDF5 call.
const CHUNK: usize = 1 << 22;

/// How a matrix is stored in the file.
pub enum Stored {
    /// Compressed sparse rows or columns in a group with `data`, `indices`, `indptr`.
    Sparse {
        /// The group holding the arrays.
        group: Group,
        /// `true` for CSC.
        by_column: bool,
        /// Rows × columns.
        shape: (usize, usize),
    },
    /// A 2-D dataset.
    Dense(Dataset),
}

impl Stored {
    /// Rows × columns.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Stored::Sparse { shape, .. } => *shape,
            Stored::Dense(ds) => {
                let s = ds.shape();
                (
                    s.first().copied().unwrap_or(0),
                    s.get(1).copied().unwrap_or(1),
                )
            }
        }
    }

    /// "csr", "csc" or "dense".
    pub fn storage(&self) -> &'static str {
        match self {
            Stored::Sparse {
                by_column: false, ..
            } => "csr",
            Stored::Sparse {
                by_column: true, ..
            } => "csc",
            Stored::Dense(_) => "dense",
        }
    }

    /// Element type name of the values.
    pub fn dtype(&self) -> String {
        match self {
            Stored::Sparse { group, .. } => group
                .dataset("data")
                .map(|d| hdf::dtype_name(&d))
                .unwrap_or_default(),
            Stored::Dense(ds) => hdf::dtype_name(ds),
        }
    }
}

/// The HDF5 path of a matrix choice, trying the anndata ≤ 0.6 spelling (`raw.X`) too.
fn candidate_paths(choice: &MatrixChoice) -> Vec<String> {
    match choice {
        MatrixChoice::X => vec!["X".into()],
        MatrixChoice::Raw => vec!["raw/X".into(), "raw.X".into()],
        MatrixChoice::Layer(name) => vec![format!("layers/{name}")],
    }
}

/// Finds a matrix in the file; `Ok(None)` if it is absent.
pub fn locate(file: &File, choice: &MatrixChoice) -> HdfResult<Option<Stored>> {
    for path in candidate_paths(choice) {
        if let Ok(group) = file.group(&path) {
            return stored_group(&group).map(Some);
        }
        if let Ok(ds) = file.dataset(&path) {
            if ds.ndim() != 2 {
                return Err(format!(
                    "{path} is not a 2-D matrix (shape {:?})",
                    ds.shape()
                ));
            }
            if !hdf::is_numeric(&ds) && !hdf::is_bool(&ds) {
                return Err(format!(
                    "{path} holds {}, not numbers",
                    hdf::dtype_name(&ds)
                ));
            }
            return Ok(Some(Stored::Dense(ds)));
        }
    }
    Ok(None)
}

fn stored_group(group: &Group) -> HdfResult<Stored> {
    let encoding = hdf::attr_string(group, "encoding-type")
        .or_else(|| hdf::attr_string(group, "h5sparse_format").map(|f| format!("{f}_matrix")))
        .unwrap_or_default();
    let by_column = match encoding.as_str() {
        "csr_matrix" => false,
        "csc_matrix" => true,
        other => {
            return Err(format!(
                "{} has unsupported encoding '{other}'",
                group.name()
            ));
        }
    };
    let shape = hdf::attr_numbers(group, "shape")
        .or_else(|| hdf::attr_numbers(group, "h5sparse_shape"))
        .filter(|s| s.len() == 2 && s.iter().all(|v| *v >= 0.0))
        .ok_or_else(|| format!("{} has no valid 'shape' attribute", group.name()))?;
    for part in ["data", "indices", "indptr"] {
        if group.dataset(part).is_err() {
            return Err(format!("sparse matrix {} lacks '{part}'", group.name()));
        }
    }
    Ok(Stored::Sparse {
        group: group.clone(),
        by_column,
        shape: (shape[0] as usize, shape[1] as usize),
    })
}

/// Reads a 1-D numeric slice `[start, end)` converted to `T`.
fn slice<T: hdf5::H5Type + Clone>(ds: &Dataset, start: usize, end: usize) -> HdfResult<Vec<T>> {
    let arr = ds
        .read_slice_1d::<T, _>(start..end)
        .map_err(|e| e.to_string())?;
    Ok(arr.into_raw_vec_and_offset().0)
}

fn read_indptr(group: &Group, len: usize) -> HdfResult<Vec<u64>> {
    let ds = group.dataset("indptr").map_err(|e| e.to_string())?;
    if ds.size() != len {
        return Err(format!(
            "indptr of {} has {} entries, expected {len}",
            group.name(),
            ds.size()
        ));
    }
    let raw = ds.read_raw::<i64>().map_err(|e| e.to_string())?;
    if raw.first() != Some(&0) || raw.windows(2).any(|w| w[1] < w[0]) {
        return Err(format!(
            "indptr of {} is not a valid non-decreasing offset array",
            group.name()
        ));
    }
    Ok(raw.into_iter().map(|v| v as u64).collect())
}

fn check_values(values: &[f32], offset: usize, name: &str) -> HdfResult<()> {
    if let Some(p) = first_index_where(values, |v| !v.is_finite()) {
        return Err(format!(
            "{name} contains a non-finite value ({}) at stored entry {}; replace NaN/Inf (e.g. with 0) before using this matrix",
            values[p],
            offset + p
        ));
    }
    Ok(())
}

/// Reads the whole matrix into CSR, converting CSC and dense storage on the fly.
pub fn read(stored: &Stored, name: &str, progress: &Progress) -> HdfResult<CsrMatrix> {
    match stored {
        Stored::Sparse {
            group,
            by_column: false,
            shape,
        } => read_csr(group, *shape, name, progress),
        Stored::Sparse {
            group,
            by_column: true,
            shape,
        } => read_csc(group, *shape, name, progress),
        Stored::Dense(ds) => read_dense(ds, name, progress),
    }
}

fn cancelled(progress: &Progress) -> HdfResult<()> {
    progress.check().map_err(|_| CANCELLED.to_string())
}

/// Marker message for cancellation travelling through `HdfResult`.
pub const CANCELLED: &str = "\u{0}cancelled";

/// The number of stored entries `indptr` promises, and the `data` and `indices` arrays, which
/// must hold at least that many.
fn sparse_arrays(
    group: &Group,
    indptr: &[u64],
    name: &str,
) -> HdfResult<(usize, Dataset, Dataset)> {
    let nnz = *indptr.last().unwrap_or(&0) as usize;
    let data_ds = group.dataset("data").map_err(|e| e.to_string())?;
    let idx_ds = group.dataset("indices").map_err(|e| e.to_string())?;
    if data_ds.size() < nnz || idx_ds.size() < nnz {
        return Err(format!(
            "{name}: indptr promises {nnz} entries but data/indices hold fewer; the file is truncated or damaged"
        ));
    }
    Ok((nnz, data_ds, idx_ds))
}

fn read_csr(
    group: &Group,
    (n_rows, n_cols): (usize, usize),
    name: &str,
    progress: &Progress,
) -> HdfResult<CsrMatrix> {
    let indptr = read_indptr(group, n_rows + 1)?;
    let (nnz, data_ds, idx_ds) = sparse_arrays(group, &indptr, name)?;
    let mut data = vec![0f32; nnz];
    let mut indices = vec![0u32; nnz];
    if let (Some(d), Some(i)) = (
        direct::locate::<f32>(&data_ds),
        direct::locate::<i32>(&idx_ds),
    ) {
        // Plain bytes in the file: read on all cores, each block checked as it arrives
        // (column indices as u32 from their i32 bits, so negative ones are out of range).
        d.read_into(0, &mut data, progress, |b, first| {
            check_values(b, first, name)
        })?;
        i.read_into(0, &mut indices, progress, |b, _| {
            check_columns(b, n_cols, name)
        })?;
    } else {
        // Read in slices straight into the final arrays; indices arrive as i32 (HDF5
        // converts and clips other integer types), so a negative or clipped index shows up
        // as out of range.
        let mut start = 0;
        while start < nnz {
            cancelled(progress)?;
            let end = (start + CHUNK).min(nnz);
            read_range_into(&data_ds, start, &mut data[start..end])?;
            let cols: &mut [i32] = bytemuck::cast_slice_mut(&mut indices[start..end]);
            read_range_into(&idx_ds, start, cols)?;
            start = end;
            progress.set_fraction(start as f32 / nnz as f32);
        }
        check_values(&data, 0, name)?;
        check_columns(&indices, n_cols, name)?;
    }
    let mut m = CsrMatrix {
        n_rows,
        n_cols,
        indptr,
        indices,
        data,
    };
    m.canonicalize();
    Ok(m)
}

/// Checks that every column index read as `u32` (from i32 bits) is below `n_cols`.
fn check_columns(indices: &[u32], n_cols: usize, name: &str) -> HdfResult<()> {
    if let Some(p) = first_index_where(indices, |&c| c as usize >= n_cols) {
        let c = indices[p];
        return Err(format!(
            "{name}: column index {} out of range for {n_cols} genes; the file is damaged",
            c as i32
        ));
    }
    Ok(())
}

fn read_csc(
    group: &Group,
    (n_rows, n_cols): (usize, usize),
    name: &str,
    progress: &Progress,
) -> HdfResult<CsrMatrix> {
    let colptr = read_indptr(group, n_cols + 1)?;
    let (nnz, data_ds, idx_ds) = sparse_arrays(group, &colptr, name)?;
    // Pass 1: entries per row.
    let mut counts = vec![0u64; n_rows + 1];
    let mut start = 0;
    while start < nnz {
        cancelled(progress)?;
        let end = (start + CHUNK).min(nnz);
        for r in slice::<i64>(&idx_ds, start, end)? {
            if r < 0 || r as usize >= n_rows {
                return Err(format!(
                    "{name}: row index {r} out of range for {n_rows} cells; the file is damaged"
                ));
            }
            counts[r as usize + 1] += 1;
        }
        start = end;
        progress.set_fraction(0.5 * start as f32 / nnz as f32);
    }
    for i in 0..n_rows {
        counts[i + 1] += counts[i];
    }
    let indptr = counts;
    let mut next: Vec<u64> = indptr[..n_rows].to_vec();
    let mut data = vec![0f32; nnz];
    let mut indices = vec![0u32; nnz];
    // Pass 2: scatter column by column, so each row's columns come out sorted.
    let mut col = 0usize;
    let mut start = 0;
    while start < nnz {
        cancelled(progress)?;
        let end = (start + CHUNK).min(nnz);
        let rows = slice::<i64>(&idx_ds, start, end)?;
        let values = slice::<f32>(&data_ds, start, end)?;
        check_values(&values, start, name)?;
        for (k, (&r, &v)) in rows.iter().zip(&values).enumerate() {
            let pos = (start + k) as u64;
            while colptr[col + 1] <= pos {
                col += 1;
            }
            let slot = &mut next[r as usize];
            data[*slot as usize] = v;
            indices[*slot as usize] = col as u32;
            *slot += 1;
        }
        start = end;
        progress.set_fraction(0.5 + 0.5 * start as f32 / nnz as f32);
    }
    let mut m = CsrMatrix {
        n_rows,
        n_cols,
        indptr,
        indices,
        data,
    };
    m.canonicalize();
    Ok(m)
}

fn read_dense(ds: &Dataset, name: &str, progress: &Progress) -> HdfResult<CsrMatrix> {
    let shape = ds.shape();
    let (n_rows, n_cols) = (shape[0], shape[1]);
    let block = (CHUNK / n_cols.max(1)).max(1);
    let mut m = CsrMatrix {
        n_rows,
        n_cols,
        indptr: vec![0],
        ..Default::default()
    };
    let mut r0 = 0;
    while r0 < n_rows {
        cancelled(progress)?;
        let r1 = (r0 + block).min(n_rows);
        let arr = ds
            .read_slice_2d::<f32, _>((r0..r1, ..))
            .map_err(|e| e.to_string())?;
        for (i, row) in arr.outer_iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if !v.is_finite() {
                    return Err(format!(
                        "{name} contains a non-finite value ({v}) at cell {}, gene {j}; replace NaN/Inf (e.g. with 0) before using this matrix",
                        r0 + i
                    ));
                }
                if v != 0.0 {
                    m.indices.push(j as u32);
                    m.data.push(v);
                }
            }
            m.indptr.push(m.data.len() as u64);
        }
        r0 = r1;
        progress.set_fraction(r0 as f32 / n_rows as f32);
    }
    Ok(m)
}

/// Reads up to `limit` stored values from the start of a matrix, to detect what it holds cheaply.
pub fn sample_values(stored: &Stored, limit: usize) -> HdfResult<Vec<f32>> {
    match stored {
        Stored::Sparse { group, .. } => {
            let ds = group.dataset("data").map_err(|e| e.to_string())?;
            let n = ds.size().min(limit);
            slice::<f32>(&ds, 0, n)
        }
        Stored::Dense(ds) => {
            let (rows, cols) = stored.shape();
            let take = (limit / cols.max(1)).clamp(1, rows.max(1)).min(rows);
            if take == 0 {
                return Ok(Vec::new());
            }
            let arr = ds
                .read_slice_2d::<f32, _>((0..take, ..))
                .map_err(|e| e.to_string())?;
            Ok(arr.into_raw_vec_and_offset().0)
        }
    }
}

/// Classifies values: negatives → scaled, all integers → counts, small non-integers → log-normalised.
pub fn detect_kind(values: &[f32]) -> MatrixKind {
    use rayon::prelude::*;
    /// What a run of values showed.
    #[derive(Clone, Copy)]
    struct Seen {
        negative: bool,
        any: bool,
        integral: bool,
        max: f32,
    }
    let nothing = Seen {
        negative: false,
        any: false,
        integral: true,
        max: 0.0,
    };
    let seen = values
        .par_chunks(1 << 16)
        .map(|chunk| {
            // Branch-free, so that the loop vectorises.
            let mut s = nothing;
            for &v in chunk {
                let counted = v.is_finite() && v != 0.0;
                let a = v.abs();
                // Every f32 of magnitude 2^23 or more is an integer; below, adding and taking
                // away 2^23 rounds to an integer, which gives `a` back only if it was one.
                let integer = a >= 8_388_608.0 || (a + 8_388_608.0) - 8_388_608.0 == a;
                s.negative |= counted & (v < 0.0);
                s.any |= counted;
                s.integral &= !counted | integer;
                let x = if counted { v } else { 0.0 };
                s.max = if x > s.max { x } else { s.max };
            }
            s
        })
        .reduce(
            || nothing,
            |a, b| Seen {
                negative: a.negative || b.negative,
                any: a.any || b.any,
                integral: a.integral && b.integral,
                max: a.max.max(b.max),
            },
        );
    if seen.negative {
        MatrixKind::Scaled
    } else if !seen.any {
        MatrixKind::Empty
    } else if seen.integral {
        MatrixKind::RawCounts
    } else if seen.max <= 30.0 {
        MatrixKind::LogNormalized
    } else {
        MatrixKind::Normalized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_detected_from_values() {
        assert_eq!(detect_kind(&[1.0, 3.0, 0.0, 12.0]), MatrixKind::RawCounts);
        assert_eq!(detect_kind(&[0.5, 2.3, 4.1]), MatrixKind::LogNormalized);
        assert_eq!(detect_kind(&[0.5, 2.3, -0.2]), MatrixKind::Scaled);
        assert_eq!(detect_kind(&[0.5, 2000.3]), MatrixKind::Normalized);
        assert_eq!(detect_kind(&[0.0, 0.0]), MatrixKind::Empty);
        assert_eq!(detect_kind(&[3.0e9, 1.0, 7.0]), MatrixKind::RawCounts);
        assert_eq!(detect_kind(&[1.0, 1.0e6 + 0.5]), MatrixKind::Normalized);
        assert_eq!(detect_kind(&[f32::NAN, 2.0]), MatrixKind::RawCounts);
        let mut many = vec![2.0f32; 300_000];
        many[250_000] = -0.5;
        assert_eq!(
            detect_kind(&many),
            MatrixKind::Scaled,
            "a negative value in a later chunk"
        );
    }
}

//! Large arrays read without the HDF5 library when their bytes lie in the file as they are.
//!
//! HDF5 reads under one global lock, so a matrix of hundreds of MiB comes in on one thread,
//! and checking it takes another pass over memory. A dataset without filters, stored in the
//! native type, is just runs of values at known file offsets: one run when it is contiguous
//! (as C2S Studio and h5py write by default), one per chunk when it is chunked (as anndata
//! writes sparse matrices). Here such a dataset is read by positional reads on all cores, and
//! each block is checked right after it arrives, while it is still in cache.

use super::hdf::{HdfResult, read_range_into};
use crate::progress::Progress;
use hdf5::Dataset;
use hdf5::dataset::Layout;
use hdf5_metno as hdf5;
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Elements per block read (and checked) by one task: 4 MiB of `f32`.
const BLOCK: usize = 1 << 20;

/// A run of consecutive elements stored as plain bytes at one file address.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: usize,
    len: usize,
    addr: u64,
}

/// A 1-D dataset whose elements are plain bytes of one native type, in runs in its file.
#[derive(Debug, Clone)]
pub struct PlainArray {
    path: PathBuf,
    /// Runs in element order, covering `0..len` without gaps.
    runs: Vec<Run>,
    len: usize,
    /// Bytes per element.
    size: usize,
}

/// Where `ds`'s elements lie in its file, if they can be read as plain `T` bytes: no filters,
/// the file type equal to `T`'s native type, every chunk allocated, and the first and last
/// elements read this way equal to what HDF5 reads.
pub fn locate<T: hdf5::H5Type + bytemuck::Pod + Send>(ds: &Dataset) -> Option<PlainArray> {
    if !cfg!(unix) || ds.ndim() != 1 || ds.size() == 0 || !ds.filters().is_empty() {
        return None;
    }
    if ds.dtype().ok()? != hdf5::Datatype::from_type::<T>().ok()? {
        return None;
    }
    let (len, size) = (ds.size(), std::mem::size_of::<T>());
    let runs = match ds.layout() {
        Layout::Contiguous if ds.storage_size() == (len * size) as u64 => vec![Run {
            first: 0,
            len,
            addr: ds.offset()?,
        }],
        Layout::Chunked => chunk_runs(ds, len, size)?,
        _ => return None,
    };
    let array = PlainArray {
        path: PathBuf::from(ds.filename()),
        runs,
        len,
        size,
    };
    array.agrees_with_hdf5::<T>(ds).then_some(array)
}

/// The runs of a chunked dataset without filters, if its chunks tile it.
fn chunk_runs(ds: &Dataset, len: usize, size: usize) -> Option<Vec<Run>> {
    let chunk = *ds.chunk()?.first()?;
    let mut runs = Vec::new();
    let mut whole = true;
    ds.chunks_visit(|info| {
        let first = info.offset.first().copied().unwrap_or(0) as usize;
        whole &= info.size == (chunk * size) as u64;
        runs.push(Run {
            first,
            len: chunk.min(len.saturating_sub(first)),
            addr: info.addr,
        });
        0
    })
    .ok()?;
    runs.sort_by_key(|r| r.first);
    let mut end = 0;
    for r in &runs {
        whole &= r.first == end && r.len > 0;
        end = r.first + r.len;
    }
    (whole && end == len).then_some(runs)
}

impl PlainArray {
    /// Whether the first and last elements read directly equal those HDF5 reads (a guard
    /// against any address convention this module does not know of).
    fn agrees_with_hdf5<T: hdf5::H5Type + bytemuck::Pod + Send>(&self, ds: &Dataset) -> bool {
        let n = self.len.min(64);
        let probe = |start: usize| -> HdfResult<bool> {
            let mut ours = vec![T::zeroed(); n];
            let mut theirs = vec![T::zeroed(); n];
            self.read_into(start, &mut ours, &Progress::new(), |_, _| Ok(()))?;
            read_range_into(ds, start, &mut theirs)?;
            Ok(bytemuck::cast_slice::<T, u8>(&ours) == bytemuck::cast_slice::<T, u8>(&theirs))
        };
        matches!(probe(0), Ok(true)) && matches!(probe(self.len - n), Ok(true))
    }

    /// The reads that make up elements `[start, end)`, in order: (first element, length,
    /// file address), none longer than [`BLOCK`].
    fn reads(&self, start: usize, end: usize) -> Vec<(usize, usize, u64)> {
        let mut reads = Vec::new();
        for r in &self.runs {
            let mut from = start.max(r.first);
            let to = end.min(r.first + r.len);
            while from < to {
                let n = (to - from).min(BLOCK);
                let at = r.addr + ((from - r.first) * self.size) as u64;
                reads.push((from, n, at));
                from += n;
            }
        }
        reads
    }

    /// Reads elements `[start, start + out.len())` into `out` (elements of the same size as
    /// the file's) in parallel blocks and calls `check(block, index of its first element)` on
    /// each block as soon as it is read; the first failure in element order is returned.
    #[cfg(unix)]
    pub fn read_into<T, C>(
        &self,
        start: usize,
        out: &mut [T],
        progress: &Progress,
        check: C,
    ) -> HdfResult<()>
    where
        T: bytemuck::Pod + Send,
        C: Fn(&[T], usize) -> HdfResult<()> + Sync,
    {
        use std::os::unix::fs::FileExt;
        if std::mem::size_of::<T>() != self.size {
            return Err("direct read with a different element size".into());
        }
        let end = start + out.len();
        if end > self.len {
            return Err(format!(
                "entries {start}..{end} requested from an array of {}",
                self.len
            ));
        }
        let file = std::fs::File::open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        // Cut `out` into the reads' pieces (the runs tile the array, so they tile `out`).
        let mut jobs = Vec::new();
        let mut rest = out;
        for (first, n, at) in self.reads(start, end) {
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(n);
            jobs.push((piece, first, at));
            rest = tail;
        }
        let done = AtomicUsize::new(0);
        let total = (end - start).max(1);
        jobs.into_par_iter()
            .map(|(piece, first, at)| {
                progress
                    .check()
                    .map_err(|_| super::matrix::CANCELLED.to_string())?;
                file.read_exact_at(bytemuck::cast_slice_mut(piece), at)
                    .map_err(|e| format!("cannot read entries from {first} on: {e}"))?;
                check(piece, first)?;
                let n = done.fetch_add(piece.len(), Ordering::Relaxed) + piece.len();
                progress.set_fraction(n as f32 / total as f32);
                Ok(())
            })
            .collect::<Vec<HdfResult<()>>>()
            .into_iter()
            .collect()
    }

    /// Positional reads are only available on Unix; elsewhere [`locate`] finds nothing.
    #[cfg(not(unix))]
    pub fn read_into<T, C>(&self, _: usize, _: &mut [T], _: &Progress, _: C) -> HdfResult<()>
    where
        T: bytemuck::Pod + Send,
        C: Fn(&[T], usize) -> HdfResult<()> + Sync,
    {
        Err("direct reads need a Unix system".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with `values` stored three times: contiguous, chunked, and chunked with gzip.
    fn file_with(values: &[f32]) -> (tempfile::TempDir, hdf5::File) {
        let dir = tempfile::tempdir().unwrap();
        let file = hdf5::File::create(dir.path().join("a.h5")).unwrap();
        file.new_dataset_builder()
            .with_data(values)
            .create("plain")
            .unwrap();
        file.new_dataset_builder()
            .chunk(BLOCK / 3 + 7)
            .with_data(values)
            .create("chunked")
            .unwrap();
        file.new_dataset_builder()
            .chunk(1000)
            .deflate(1)
            .with_data(values)
            .create("packed")
            .unwrap();
        file.flush().unwrap();
        (dir, file)
    }

    #[test]
    fn contiguous_arrays_read_directly_equal_hdf5_reads() {
        let n = 2 * BLOCK + 123;
        let values: Vec<f32> = (0..n).map(|i| (i % 977) as f32 * 0.5).collect();
        let (_dir, file) = file_with(&values);
        let plain = file.dataset("plain").unwrap();
        let array = locate::<f32>(&plain).expect("a contiguous f32 array is read directly");
        let mut out = vec![0f32; n - 10];
        array
            .read_into(10, &mut out, &Progress::new(), |_, _| Ok(()))
            .unwrap();
        assert_eq!(out, values[10..]);
        let chunked = file.dataset("chunked").unwrap();
        let array = locate::<f32>(&chunked).expect("unfiltered chunks are read directly");
        assert!(array.runs.len() > 6);
        let mut out = vec![0f32; n - 20];
        array
            .read_into(20, &mut out, &Progress::new(), |_, _| Ok(()))
            .unwrap();
        assert_eq!(out, values[20..]);
        assert!(locate::<i32>(&plain).is_none(), "another element type");
        let packed = file.dataset("packed").unwrap();
        assert!(locate::<f32>(&packed).is_none(), "chunked and compressed");
    }

    #[test]
    fn the_first_failing_block_is_reported_and_reads_stay_in_range() {
        let n = 3 * BLOCK;
        let (_dir, file) = file_with(&vec![1.0f32; n]);
        let array = locate::<f32>(&file.dataset("plain").unwrap()).unwrap();
        let mut out = vec![0f32; n];
        let err = array
            .read_into(0, &mut out, &Progress::new(), |_, first| {
                if first == 0 {
                    Ok(())
                } else {
                    Err(format!("block at {first}"))
                }
            })
            .unwrap_err();
        assert_eq!(err, format!("block at {BLOCK}"));
        let mut too_many = vec![0f32; 2];
        assert!(
            array
                .read_into(n - 1, &mut too_many, &Progress::new(), |_, _| Ok(()))
                .is_err()
        );
    }
}

//! Safetensors checkpoints (single file or sharded with `model.safetensors.index.json`), memory
//! mapped and turned into Burn tensors, or packed for the CPU kernels a row at a time, one
//! parameter at a time, with shape checks that name the offending tensor.

use super::ModelError;
use super::low_rank::LowRankDelta;
use crate::kernels::{PackedMatrix, WeightFormat};
use crate::progress::Progress;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData, bf16, f16};
use memmap2::Mmap;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// Anything else (integer buffers and so on); cannot become a float parameter.
    Other,
}

impl StoredDType {
    /// Bytes per element (0 for [`StoredDType::Other`], which is never decoded).
    fn width(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Other => 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: StoredDType,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// All tensors of a checkpoint, indexed by name.
#[derive(Debug)]
pub struct Weights {
    files: Vec<(PathBuf, Mmap)>,
    entries: BTreeMap<String, Entry>,
    used: Mutex<BTreeSet<String>>,
    /// Where reading reports the fraction of the checkpoint's bytes decoded, and learns that
    /// the load was cancelled.
    progress: Option<Progress>,
    /// Bytes decoded so far.
    decoded: AtomicU64,
    /// Low-rank updates added to weights as they are read (a LoRA adapter), by tensor name.
    deltas: HashMap<String, LowRankDelta>,
}

impl Weights {
    /// Opens `model.safetensors` or the shards listed in `model.safetensors.index.json` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self, ModelError> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| io_err(&index, e))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ModelError::Weights {
                    message: format!("{} is not valid JSON: {e}", index.display()),
                })?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ModelError::Weights {
                    message: format!("{} has no `weight_map` object", index.display()),
                })?;
            let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
            let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
            Self::open_files(&paths)
        } else if single.exists() {
            Self::open_files(&[single])
        } else {
            Err(ModelError::Weights {
                message: format!(
                    "no model.safetensors or model.safetensors.index.json in {} (PyTorch .bin \
                     checkpoints are not supported: convert them with `transformers` \
                     `save_pretrained(safe_serialization=True)`)",
                    dir.display()
                ),
            })
        }
    }

    /// Opens the given safetensors files as one checkpoint.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self, ModelError> {
        let mut files = Vec::new();
        let mut entries = BTreeMap::new();
        for (index, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| io_err(path, e))?;
            // SAFETY: the map is read-only; a checkpoint modified while loaded gives wrong
            // values, not memory unsafety in our code (we copy out of it immediately).
            let map = unsafe { Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
            let (header, meta) =
                safetensors::SafeTensors::read_metadata(&map).map_err(|e| ModelError::Weights {
                    message: format!("{} is not a valid safetensors file: {e}", path.display()),
                })?;
            let base = 8 + header;
            for (name, info) in meta.tensors() {
                let dtype = match info.dtype {
                    safetensors::Dtype::F32 => StoredDType::F32,
                    safetensors::Dtype::F16 => StoredDType::F16,
                    safetensors::Dtype::BF16 => StoredDType::BF16,
                    _ => StoredDType::Other,
                };
                let (start, end) = (base + info.data_offsets.0, base + info.data_offsets.1);
                if end > map.len() {
                    return Err(ModelError::Weights {
                        message: format!(
                            "{} is truncated: tensor `{name}` ends at byte {end} of {}",
                            path.display(),
                            map.len()
                        ),
                    });
                }
                entries.insert(
                    name,
                    Entry {
                        file: index,
                        dtype,
                        shape: info.shape.clone(),
                        start,
                        end,
                    },
                );
            }
            files.push((path.clone(), map));
        }
        Ok(Self {
            files,
            entries,
            used: Mutex::new(BTreeSet::new()),
            progress: None,
            decoded: AtomicU64::new(0),
            deltas: HashMap::new(),
        })
    }

    /// Reports reading progress to `progress` (the fraction of the checkpoint's bytes decoded;
    /// a tensor read twice, as a tied head on the CPU, counts twice) and stops with
    /// [`ModelError::Cancelled`] at the next tensor once it is cancelled.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Adds each delta to its tensor (`[out, in]` weights, by name) whenever that tensor is
    /// read: the model built from these weights runs the base with the adapter merged.
    pub fn with_deltas(mut self, deltas: HashMap<String, LowRankDelta>) -> Self {
        self.deltas = deltas;
        self
    }

    /// Bytes of all tensors in the checkpoint.
    fn total_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| (e.end - e.start) as u64)
            .sum()
    }

    /// Whether a tensor with this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// All tensor names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Stored element type of a tensor.
    pub fn dtype(&self, name: &str) -> Option<StoredDType> {
        self.entries.get(name).map(|e| e.dtype)
    }

    /// The file that holds a tensor.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.entries
            .get(name)
            .map(|e| self.files[e.file].0.as_path())
    }

    /// Stored shape of a tensor.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Number of parameters: the elements of every stored tensor.
    pub fn parameter_count(&self) -> u64 {
        self.names()
            .filter_map(|n| self.shape(n))
            .map(|shape| shape.iter().map(|&d| d as u64).product::<u64>())
            .sum()
    }

    /// The float dtype holding the most parameters (the checkpoint's dtype): a few f32 norms
    /// beside bf16 matrices do not make a bf16 checkpoint f32.
    pub fn dominant_dtype(&self) -> StoredDType {
        let mut counts = [0usize; 3];
        for e in self.entries.values() {
            let n = e.shape.iter().product::<usize>();
            match e.dtype {
                StoredDType::F32 => counts[0] += n,
                StoredDType::F16 => counts[1] += n,
                StoredDType::BF16 => counts[2] += n,
                StoredDType::Other => {}
            }
        }
        let best = (0..3).max_by_key(|i| counts[*i]).unwrap_or(0);
        [StoredDType::F32, StoredDType::F16, StoredDType::BF16][best]
    }

    /// Reads a tensor as f32 values, checking its shape.
    pub fn read_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        const CHUNK: usize = 1 << 16;
        let (bytes, dtype) = self.stored(name, shape)?;
        let width = dtype.width();
        let mut values = vec![0.0f32; shape.iter().product()];
        // Decoded on every core: loading is otherwise bound by this loop.
        values
            .par_chunks_mut(CHUNK)
            .zip(bytes.par_chunks(CHUNK * width))
            .for_each(|(out, bytes)| decode_into(bytes, dtype, out));
        if let Some(delta) = self.deltas.get(name) {
            delta.add_to(&mut values, shape.last().copied().unwrap_or(1));
        }
        self.mark_read(name, bytes.len())?;
        Ok(values)
    }

    /// Packs the `[rows, cols]` weight `name` for the CPU kernels straight from the mapped
    /// file, decoding one row at a time (with any low-rank delta added): the tensor never exists
    /// whole in f32, so loading writes only the packed weights to fresh memory.
    pub fn packed(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        format: WeightFormat,
    ) -> Result<PackedMatrix, ModelError> {
        let (bytes, dtype) = self.stored(name, &[rows, cols])?;
        let row_bytes = cols * dtype.width();
        let delta = self.deltas.get(name);
        let packed = PackedMatrix::pack_rows(rows, cols, format, &|r, row| {
            decode_into(&bytes[r * row_bytes..][..row_bytes], dtype, row);
            if let Some(delta) = delta {
                delta.add_to_row(r, row);
            }
        });
        self.mark_read(name, bytes.len())?;
        Ok(packed)
    }

    /// The stored bytes of a float tensor whose shape is `shape`, and their element type;
    /// [`ModelError::Cancelled`] once the load is cancelled.
    fn stored(&self, name: &str, shape: &[usize]) -> Result<(&[u8], StoredDType), ModelError> {
        if self.progress.as_ref().is_some_and(Progress::is_cancelled) {
            return Err(ModelError::Cancelled);
        }
        let entry = self.entries.get(name).ok_or_else(|| ModelError::Weights {
            message: format!("tensor `{name}` is missing from the checkpoint"),
        })?;
        if entry.shape != shape {
            return Err(ModelError::Weights {
                message: format!(
                    "tensor `{name}` has shape {:?} but config.json implies {:?}; the config and \
                     the weights do not belong together",
                    entry.shape, shape
                ),
            });
        }
        if entry.dtype == StoredDType::Other {
            return Err(ModelError::Weights {
                message: format!("tensor `{name}` is not stored as f32, f16 or bf16"),
            });
        }
        let bytes = &self.files[entry.file].1[entry.start..entry.end];
        let expected = shape.iter().product::<usize>() * entry.dtype.width();
        if bytes.len() != expected {
            return Err(ModelError::Weights {
                message: format!(
                    "tensor `{name}` holds {} bytes, expected {expected} for shape {shape:?}",
                    bytes.len()
                ),
            });
        }
        Ok((bytes, entry.dtype))
    }

    /// Records that `name` (`bytes` long) was read, for [`Self::unused`] and the progress.
    fn mark_read(&self, name: &str, bytes: usize) -> Result<(), ModelError> {
        self.used
            .lock()
            .map_err(|_| ModelError::Weights {
                message: "weight bookkeeping lock poisoned".into(),
            })?
            .insert(name.to_string());
        if let Some(progress) = &self.progress {
            let done = self.decoded.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
            progress.set_fraction(done as f32 / self.total_bytes().max(1) as f32);
        }
        Ok(())
    }

    /// Loads a tensor of the given shape onto `device` in `dtype`.
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        dtype: DType,
        device: &B::Device,
    ) -> Result<Tensor<B, D>, ModelError> {
        let values = self.read_f32(name, &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            (device, dtype),
        ))
    }

    /// Loads a PyTorch `nn.Linear` weight stored `[out, in]` as Burn's `[in, out]`.
    pub fn linear_weight<B: Backend>(
        &self,
        name: &str,
        out_features: usize,
        in_features: usize,
        dtype: DType,
        device: &B::Device,
    ) -> Result<Tensor<B, 2>, ModelError> {
        let values = self.read_f32(name, &[out_features, in_features])?;
        let data = transpose(&values, out_features, in_features);
        Ok(Tensor::from_data(
            TensorData::new(data, [in_features, out_features]),
            (device, dtype),
        ))
    }

    /// Names that were never read, excluding those for which `ignore` returns true.
    pub fn unused(&self, ignore: impl Fn(&str) -> bool) -> Vec<String> {
        let used = self.used.lock().map(|u| u.clone()).unwrap_or_default();
        self.entries
            .keys()
            .filter(|k| !used.contains(*k) && !ignore(k))
            .cloned()
            .collect()
    }

    /// Files backing this checkpoint.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }
}

/// Decodes little-endian `dtype` values from `bytes` into `out` (as many as `out` holds).
fn decode_into(bytes: &[u8], dtype: StoredDType, out: &mut [f32]) {
    match dtype {
        StoredDType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        StoredDType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        StoredDType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        StoredDType::Other => unreachable!("`Weights::stored` rejects other element types"),
    }
}

/// `[out, in]` row-major → `[in, out]`, in cache-friendly tiles.
pub(crate) fn transpose(src: &[f32], out: usize, inp: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut dst = vec![0f32; src.len()];
    for o0 in (0..out).step_by(TILE) {
        for i0 in (0..inp).step_by(TILE) {
            for o in o0..(o0 + TILE).min(out) {
                let row = &src[o * inp..(o + 1) * inp];
                for (i, v) in row.iter().enumerate().take((i0 + TILE).min(inp)).skip(i0) {
                    dst[i * out + o] = *v;
                }
            }
        }
    }
    dst
}

fn io_err(path: &Path, e: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::values;

    /// A checkpoint of one `[rows, cols]` matrix per stored dtype, in `dir`.
    fn write_matrices(dir: &Path, rows: usize, cols: usize) {
        let v = values(rows * cols, 11, 2.0);
        let f32_bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let f16_bytes: Vec<u8> = v
            .iter()
            .flat_map(|x| f16::from_f32(*x).to_le_bytes())
            .collect();
        let bf16_bytes: Vec<u8> = v
            .iter()
            .flat_map(|x| bf16::from_f32(*x).to_le_bytes())
            .collect();
        let view = |dtype, bytes| {
            safetensors::tensor::TensorView::new(dtype, vec![rows, cols], bytes).unwrap()
        };
        let views = vec![
            (
                "a.f32".to_string(),
                view(safetensors::Dtype::F32, &f32_bytes),
            ),
            (
                "a.f16".to_string(),
                view(safetensors::Dtype::F16, &f16_bytes),
            ),
            (
                "a.bf16".to_string(),
                view(safetensors::Dtype::BF16, &bf16_bytes),
            ),
        ];
        let data = safetensors::serialize(views, None).unwrap();
        std::fs::write(dir.join("model.safetensors"), data).unwrap();
    }

    /// Packing row by row from the mapped file gives the same packed weights as packing the
    /// whole decoded tensor, for every stored dtype and format, with and without an adapter's
    /// delta; the tensor counts as read.
    #[test]
    fn packing_from_the_file_equals_packing_the_decoded_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let (rows, cols) = (37, 70);
        write_matrices(dir.path(), rows, cols);
        let delta = LowRankDelta {
            a: values(2 * cols, 12, 1.0),
            b: values(rows * 2, 13, 1.0),
            rank: 2,
            scale: 0.5,
        };
        let x = values(3 * cols, 14, 1.0);
        for with_delta in [false, true] {
            let mut weights = Weights::open_dir(dir.path()).unwrap();
            if with_delta {
                weights = weights.with_deltas(HashMap::from([("a.bf16".into(), delta.clone())]));
            }
            for name in ["a.f32", "a.f16", "a.bf16"] {
                let whole = weights.read_f32(name, &[rows, cols]).unwrap();
                for format in [WeightFormat::F32, WeightFormat::Q8] {
                    let by_rows = weights.packed(name, rows, cols, format).unwrap();
                    let want = PackedMatrix::pack(&whole, rows, cols, format).matmul(&x, 3);
                    let got = by_rows.matmul(&x, 3);
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{name} {format:?} delta={with_delta}");
                }
            }
            assert!(weights.unused(|_| false).is_empty());
        }
        let weights = Weights::open_dir(dir.path()).unwrap();
        let err = weights
            .packed("a.f32", cols, rows, WeightFormat::F32)
            .unwrap_err();
        assert!(err.to_string().contains("has shape [37, 70]"), "{err}");
        let err = weights
            .packed("missing", rows, cols, WeightFormat::Q8)
            .unwrap_err();
        assert!(err.to_string().contains("`missing` is missing"), "{err}");
    }
}

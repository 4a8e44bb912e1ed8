//! Safetensors checkpoints (single file or sharded with `model.safetensors.index.json`), memory
//! mapped and turned into Burn tensors one parameter at a time, with shape checks that name the
//! offending tensor.

use super::ModelError;
use super::low_rank::LowRankDelta;
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
        let bytes = &self.files[entry.file].1[entry.start..entry.end];
        let n: usize = shape.iter().product();
        let width = match entry.dtype {
            StoredDType::F32 => 4,
            StoredDType::F16 | StoredDType::BF16 => 2,
            StoredDType::Other => {
                return Err(ModelError::Weights {
                    message: format!("tensor `{name}` is not stored as f32, f16 or bf16"),
                });
            }
        };
        if bytes.len() != n * width {
            return Err(ModelError::Weights {
                message: format!(
                    "tensor `{name}` holds {} bytes, expected {} for shape {shape:?}",
                    bytes.len(),
                    n * width
                ),
            });
        }
        // Decoded on every core: loading is otherwise bound by this loop.
        let mut values: Vec<f32> = match entry.dtype {
            StoredDType::F32 => bytes
                .par_chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            StoredDType::F16 => bytes
                .par_chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            StoredDType::BF16 => bytes
                .par_chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            StoredDType::Other => unreachable!("rejected above"),
        };
        if let Some(delta) = self.deltas.get(name) {
            delta.add_to(&mut values, shape.last().copied().unwrap_or(1));
        }
        self.used
            .lock()
            .map_err(|_| ModelError::Weights {
                message: "weight bookkeeping lock poisoned".into(),
            })?
            .insert(name.to_string());
        if let Some(progress) = &self.progress {
            let done = self
                .decoded
                .fetch_add(bytes.len() as u64, Ordering::Relaxed)
                + bytes.len() as u64;
            progress.set_fraction(done as f32 / self.total_bytes().max(1) as f32);
        }
        Ok(values)
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

//! Merging a LoRA adapter into its base model: `W += scale · B·A` for every adapted projection,
//! written as a full Hugging Face checkpoint (the base's files with the merged tensors, each
//! safetensors file in its stored dtype, the other files copied), which every command loads as
//! an ordinary model. Full fine-tuning writes its result with the same [`write_checkpoint`].

use super::TrainError;
use super::adapter::Adapter;
use super::model::BaseModel;
use super::params::LoraParams;
use crate::io::atomic::{ensure_not_input, write_atomically};
use crate::model::config::ModelConfig;
use crate::model::low_rank::LowRankDelta;
use crate::model::weights::{StoredDType, Weights};
use burn::tensor::{bf16, f16};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSummary {
    /// Projections that received an adapter.
    pub merged: usize,
    /// Tensors written in total.
    pub tensors: usize,
}

/// Merges the peft adapter in `adapter_dir` into the model in `model_dir` and writes the result
/// to `out` (created; must not be the base model's folder).
pub fn merge_adapter(
    model_dir: &Path,
    adapter_dir: &Path,
    out: &Path,
) -> Result<MergeSummary, TrainError> {
    ensure_not_input(out, &[model_dir])?;
    let base = BaseModel::open(model_dir)?;
    let deltas = adapter_deltas(adapter_dir, &base.config, &base.weights)?;
    let tensors = write_checkpoint(&base, out, &|name, values, shape| {
        if let Some(d) = deltas.get(name) {
            d.add_to(values, shape.last().copied().unwrap_or(1));
        }
    })?;
    Ok(MergeSummary {
        merged: deltas.len(),
        tensors,
    })
}

/// A change applied to each tensor's f32 values (name, values, shape) before it is written.
pub type TensorEdit<'a> = dyn Fn(&str, &mut Vec<f32>, &[usize]) + 'a;

/// Writes `base` to `out` as a full Hugging Face checkpoint: every safetensors file of the base
/// with the same tensor names and stored dtypes, each tensor's f32 values passed through `edit`
/// (name, values, shape) first, and the base folder's other files (config, tokenizer) copied.
/// Returns the number of tensors written.
pub fn write_checkpoint(
    base: &BaseModel,
    out: &Path,
    edit: &TensorEdit<'_>,
) -> Result<usize, TrainError> {
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let weights = &base.weights;
    let mut by_file: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for name in weights.names() {
        let file = weights
            .file_of(name)
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("model.safetensors")
            .to_string();
        by_file.entry(file).or_default().push(name);
    }
    let mut tensors = 0;
    for (file, names) in &by_file {
        let mut encoded: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for &name in names {
            let shape = weights.shape(name).unwrap_or_default().to_vec();
            let mut values = weights.read_f32(name, &shape)?;
            edit(name, &mut values, &shape);
            let (dtype, bytes) = encode(&values, weights.dtype(name));
            encoded.push((name.to_string(), dtype, shape, bytes));
        }
        let path = out.join(file);
        let views = encoded
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TrainError::io(&path, e))?;
        let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        let data =
            safetensors::serialize(views, Some(metadata)).map_err(|e| TrainError::io(&path, e))?;
        write_atomically(&path, |tmp| {
            std::fs::write(tmp, &data).map_err(|e| crate::Error::Write {
                path: tmp.to_path_buf(),
                detail: e.to_string(),
            })
        })?;
        tensors += encoded.len();
    }
    copy_other_files(&base.dir, out)?;
    Ok(tensors)
}

/// `values` in the stored dtype (f32 unless the base stored bf16 or f16), little-endian.
fn encode(values: &[f32], stored: Option<StoredDType>) -> (safetensors::Dtype, Vec<u8>) {
    match stored {
        Some(StoredDType::BF16) => (
            safetensors::Dtype::BF16,
            values
                .iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        Some(StoredDType::F16) => (
            safetensors::Dtype::F16,
            values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        _ => (
            safetensors::Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    }
}

/// The adapter in `adapter_dir` as one low-rank delta per adapted weight (`<path>.weight`),
/// checked against the base model (`config`, `weights`): an adapter for another architecture or
/// other shapes is an error saying so.
pub fn adapter_deltas(
    adapter_dir: &Path,
    config: &ModelConfig,
    weights: &Weights,
) -> Result<HashMap<String, LowRankDelta>, TrainError> {
    let adapter = Adapter::open(adapter_dir, config)?;
    let specs = adapter.specs(weights)?;
    let params: LoraParams = adapter.params(&specs)?;
    let scale = adapter.config.scale() as f32;
    Ok(params
        .factors
        .into_iter()
        .map(|f| {
            let delta = LowRankDelta {
                a: f.a,
                b: f.b,
                rank: params.rank,
                scale,
            };
            (format!("{}.weight", f.spec.path), delta)
        })
        .collect())
}

/// Copies the base folder's files other than safetensors weights (config, tokenizer, index).
fn copy_other_files(from: &Path, to: &Path) -> Result<(), TrainError> {
    for entry in std::fs::read_dir(from).map_err(|e| TrainError::io(from, e))? {
        let path = entry.map_err(|e| TrainError::io(from, e))?.path();
        let is_weights = path.extension().is_some_and(|e| e == "safetensors");
        if path.is_file() && !is_weights {
            let dest = to.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &dest).map_err(|e| TrainError::io(&dest, e))?;
        }
    }
    Ok(())
}

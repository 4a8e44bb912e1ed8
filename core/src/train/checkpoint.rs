//! Training checkpoints: `OUT/checkpoints/step-NNNNNN/` with the adapter (peft layout) or, for
//! full fine-tuning, every weight (`model.safetensors`, f32), the AdamW moments and the run
//! position. A checkpoint is written into a hidden temporary folder
//! and renamed into place, so it is either complete or absent; after each save only the last K
//! and the best by validation loss are kept.

use super::TrainError;
use super::adapter::{WEIGHTS_FILE, write_adapter, write_f32_safetensors};
use super::config::LoraConfig;
use super::full::FullParams;
use super::optim::AdamState;
use super::params::{ModuleSpec, Trainable};
use crate::model::config::ModelConfig;
use crate::model::weights::Weights;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const FULL_FILE: &str = "model.safetensors";

/// Where a run stands after an optimizer step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// Optimizer steps done.
    pub step: usize,
    /// Validation loss at this step, when evaluated.
    pub val_loss: Option<f64>,
    /// The best validation loss so far and its step.
    pub best: Option<(usize, f64)>,
}

/// Everything a checkpoint restores.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The run position.
    pub state: RunState,
    /// The LoRA factors or the full weights.
    pub params: Trainable,
    /// The optimizer moments.
    pub adam: AdamState,
}

/// The checkpoints folder of a run.
pub fn folder(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

fn step_dir(out: &Path, step: usize) -> PathBuf {
    folder(out).join(format!("step-{step:06}"))
}

/// Saves a checkpoint atomically, then prunes to the last `keep` plus the best.
pub fn save(
    out: &Path,
    checkpoint: &Checkpoint,
    lora: &LoraConfig,
    base_model: &str,
    keep: usize,
) -> Result<PathBuf, TrainError> {
    let root = folder(out);
    std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(&root)
        .map_err(|e| TrainError::io(&root, e))?;
    let dest = step_dir(out, checkpoint.state.step);
    // On failure the temporary folder is removed when `tmp` drops: nothing half-written stays.
    write_files(tmp.path(), checkpoint, lora, base_model).map_err(|e| incomplete(&dest, e))?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| TrainError::io(&dest, e))?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, &dest).map_err(|e| TrainError::io(&dest, e))?;
    prune(out, keep, checkpoint.state.best.map(|b| b.0))?;
    Ok(dest)
}

/// The error of a checkpoint that could not be written, saying what to do.
fn incomplete(dest: &Path, e: TrainError) -> TrainError {
    let detail = match e {
        TrainError::Io { message, .. } => message,
        other => other.to_string(),
    };
    TrainError::io(
        dest,
        format!(
            "the checkpoint could not be written ({detail}), so none of it was kept; free disk \
             space, then add --resume to the same command to continue from the last complete \
             checkpoint"
        ),
    )
}

/// Writes a checkpoint's files into `dir`.
fn write_files(
    dir: &Path,
    checkpoint: &Checkpoint,
    lora: &LoraConfig,
    base_model: &str,
) -> Result<(), TrainError> {
    match &checkpoint.params {
        Trainable::Lora(p) => write_adapter(dir, p, lora, base_model)?,
        Trainable::Full(p) => {
            let tensors = p
                .names
                .iter()
                .zip(&p.shapes)
                .zip(&p.values)
                .map(|((n, s), v)| (n.clone(), (s.clone(), v.as_slice())))
                .collect();
            write_f32_safetensors(&dir.join(FULL_FILE), &tensors)?;
        }
    }
    let adam = &checkpoint.adam;
    let mut moments = BTreeMap::new();
    for (i, (m, v)) in adam.m.iter().zip(&adam.v).enumerate() {
        moments.insert(format!("m.{i:04}"), (vec![m.len()], m.as_slice()));
        moments.insert(format!("v.{i:04}"), (vec![v.len()], v.as_slice()));
    }
    write_f32_safetensors(&dir.join(OPTIMIZER_FILE), &moments)?;
    let state = serde_json::json!({
        "run": checkpoint.state,
        "adam_step": adam.step,
    });
    let state_path = dir.join(STATE_FILE);
    std::fs::write(&state_path, state.to_string()).map_err(|e| TrainError::io(&state_path, e))
}

/// Completed checkpoints, oldest first, as (step, folder).
pub fn list(out: &Path) -> Result<Vec<(usize, PathBuf)>, TrainError> {
    let root = folder(out);
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(|e| TrainError::io(&root, e))? {
        let path = entry.map_err(|e| TrainError::io(&root, e))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(step) = step
            && path.join(STATE_FILE).exists()
        {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

fn prune(out: &Path, keep: usize, best: Option<usize>) -> Result<(), TrainError> {
    let all = list(out)?;
    let cut = all.len().saturating_sub(keep.max(1));
    for (step, path) in &all[..cut] {
        if Some(*step) != best {
            std::fs::remove_dir_all(path).map_err(|e| TrainError::io(path, e))?;
        }
    }
    Ok(())
}

/// Loads the checkpoint in `dir` of a run that trains what `like` holds: LoRA factors for a
/// model whose adapted projections are `modules`, or full weights of `like`'s names and shapes.
pub fn load(
    dir: &Path,
    model: &ModelConfig,
    modules: &[ModuleSpec],
    like: &Trainable,
) -> Result<Checkpoint, TrainError> {
    let params = match like {
        Trainable::Lora(_) => {
            if !dir.join(WEIGHTS_FILE).exists() {
                return Err(TrainError::io(
                    dir,
                    "this checkpoint holds no LoRA adapter (a full fine-tuning run?); resume \
                     with the run's own settings (--full as before)",
                ));
            }
            Trainable::Lora(super::adapter::Adapter::open(dir, model)?.params(modules)?)
        }
        Trainable::Full(full) => {
            let path = dir.join(FULL_FILE);
            if !path.exists() {
                return Err(TrainError::io(
                    dir,
                    "this checkpoint holds no full weights (a LoRA run?); resume with the run's \
                     own settings (no --full)",
                ));
            }
            let weights = Weights::open_files(&[path])?;
            let values = full
                .names
                .iter()
                .zip(&full.shapes)
                .map(|(n, s)| weights.read_f32(n, s))
                .collect::<Result<Vec<_>, _>>()?;
            Trainable::Full(FullParams {
                values,
                ..full.clone()
            })
        }
    };
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| TrainError::io(&state_path, e))?;
    let state: RunState =
        serde_json::from_value(value["run"].clone()).map_err(|e| TrainError::io(&state_path, e))?;
    let adam_step = value["adam_step"].as_u64().unwrap_or(0);
    let weights = Weights::open_files(&[dir.join(OPTIMIZER_FILE)])?;
    let tensors = params.tensors();
    let mut adam = AdamState {
        step: adam_step,
        m: Vec::new(),
        v: Vec::new(),
    };
    if adam_step > 0 {
        for (i, t) in tensors.iter().enumerate() {
            adam.m
                .push(weights.read_f32(&format!("m.{i:04}"), &[t.len()])?);
            adam.v
                .push(weights.read_f32(&format!("v.{i:04}"), &[t.len()])?);
        }
    }
    Ok(Checkpoint {
        state,
        params,
        adam,
    })
}

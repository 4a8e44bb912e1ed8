//! peft LoRA adapters on disk: `adapter_config.json` + `adapter_model.safetensors` with peft's
//! key names (`base_model.model.<module path>.lora_A.weight` `[r, in]`, `….lora_B.weight`
//! `[out, r]`). Ours are written so peft loads them onto the Hugging Face base model; any peft
//! LoRA adapter (ours or peft-written) is read back and checked against the base model.

use super::TrainError;
use super::config::{LoraConfig, projections};
use super::params::{Factor, LoraParams, ModuleSpec};
use crate::io::atomic::write_atomically;
use crate::model::config::ModelConfig;
use crate::model::weights::Weights;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The adapter's config file name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter's weights file name.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const KEY_PREFIX: &str = "base_model.model.";

fn key(path: &str, factor: &str) -> String {
    format!("{KEY_PREFIX}{path}.lora_{factor}.weight")
}

/// Writes `params` as a peft adapter folder `dir` (created if needed; each file atomically).
pub fn write_adapter(
    dir: &Path,
    params: &LoraParams,
    lora: &LoraConfig,
    base_model: &str,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let config = json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": lora.rank,
        "rank_pattern": {},
        "revision": null,
        "target_modules": lora.targets,
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": lora.use_rslora,
    });
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| TrainError::io(dir.join(CONFIG_FILE), e))?;
    write_atomically(&dir.join(CONFIG_FILE), |tmp| {
        std::fs::write(tmp, &text).map_err(|e| crate::Error::Write {
            path: tmp.to_path_buf(),
            detail: e.to_string(),
        })
    })?;
    let r = params.rank;
    let mut tensors = BTreeMap::new();
    for f in &params.factors {
        let s = &f.spec;
        tensors.insert(key(&s.path, "A"), (vec![r, s.in_features], f.a.as_slice()));
        tensors.insert(key(&s.path, "B"), (vec![s.out_features, r], f.b.as_slice()));
    }
    write_f32_safetensors(&dir.join(WEIGHTS_FILE), &tensors)
}

/// Writes named f32 tensors to a safetensors file atomically (metadata `format: pt`, as torch).
pub fn write_f32_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, &[f32])>,
) -> Result<(), TrainError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (shape, values))| {
            (
                name.clone(),
                shape.clone(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrainError::io(path, e))?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let encoded =
        safetensors::serialize(views, Some(metadata)).map_err(|e| TrainError::io(path, e))?;
    write_atomically(path, |tmp| {
        std::fs::write(tmp, &encoded).map_err(|e| crate::Error::Write {
            path: tmp.to_path_buf(),
            detail: e.to_string(),
        })
    })?;
    Ok(())
}

/// A peft LoRA adapter read from disk, before it is matched to a model's modules.
#[derive(Debug)]
pub struct Adapter {
    /// The adapter folder.
    pub dir: PathBuf,
    /// Rank, alpha, dropout, rsLoRA and the adapted projection names.
    pub config: LoraConfig,
    /// `base_model_name_or_path`, when given.
    pub base_model: Option<String>,
    weights: Weights,
    /// Module path → (rank, in, out) from the stored shapes.
    shapes: BTreeMap<String, (usize, usize, usize)>,
}

impl Adapter {
    /// Reads `dir/adapter_config.json` and the tensor index of `dir/adapter_model.safetensors`,
    /// and checks that the adapter is a plain LoRA that fits `model`'s architecture.
    pub fn open(dir: &Path, model: &ModelConfig) -> Result<Self, TrainError> {
        let fail = |message: String| TrainError::Adapter {
            path: dir.to_path_buf(),
            message,
        };
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            fail(format!(
                "cannot read {CONFIG_FILE} ({e}); a peft adapter folder holds {CONFIG_FILE} and \
                 {WEIGHTS_FILE}"
            ))
        })?;
        let raw: Value = serde_json::from_str(&text)
            .map_err(|e| fail(format!("{CONFIG_FILE} is not valid JSON: {e}")))?;
        let peft_type = raw.get("peft_type").and_then(Value::as_str).unwrap_or("");
        if peft_type != "LORA" {
            return Err(fail(format!(
                "peft_type is `{peft_type}`; only LoRA adapters (`LORA`) are supported"
            )));
        }
        let flag = |name: &str| raw.get(name).and_then(Value::as_bool).unwrap_or(false);
        if flag("use_dora") {
            return Err(fail(
                "DoRA adapters (`use_dora: true`) are not supported".into(),
            ));
        }
        if flag("fan_in_fan_out") {
            return Err(fail(
                "`fan_in_fan_out: true` is for GPT-2 Conv1D layers, which these models do not \
                 have"
                    .into(),
            ));
        }
        let bias = raw.get("bias").and_then(Value::as_str).unwrap_or("none");
        if bias != "none" {
            return Err(fail(format!(
                "adapters that train biases (`bias: {bias}`) are not supported"
            )));
        }
        let non_empty = |name: &str| match raw.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        for field in ["modules_to_save", "rank_pattern", "alpha_pattern"] {
            if non_empty(field) {
                return Err(fail(format!(
                    "`{field}` is set; adapters with per-module ranks or fully trained modules \
                     are not supported"
                )));
            }
        }
        let rank = raw
            .get("r")
            .and_then(Value::as_u64)
            .ok_or_else(|| fail("adapter_config.json has no integer `r`".into()))?
            as usize;
        let alpha = raw
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| fail("adapter_config.json has no `lora_alpha`".into()))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights = Weights::open_files(std::slice::from_ref(&weights_path))
            .map_err(|e| fail(e.to_string()))?;
        let mut shapes = BTreeMap::new();
        let mut names: Vec<String> = Vec::new();
        for name in weights.names() {
            let Some(rest) = name.strip_prefix(KEY_PREFIX) else {
                return Err(fail(format!(
                    "unexpected tensor `{name}` (not a peft LoRA key)"
                )));
            };
            let (path, factor) = if let Some(p) = rest.strip_suffix(".lora_A.weight") {
                (p, 'A')
            } else if let Some(p) = rest.strip_suffix(".lora_B.weight") {
                (p, 'B')
            } else {
                return Err(fail(format!(
                    "unexpected tensor `{name}` (not a LoRA factor)"
                )));
            };
            let shape = weights.shape(name).unwrap_or_default().to_vec();
            if shape.len() != 2 {
                return Err(fail(format!(
                    "tensor `{name}` has shape {shape:?}, not 2-D"
                )));
            }
            let entry = shapes.entry(path.to_string()).or_insert((0, 0, 0));
            match factor {
                'A' => {
                    entry.0 = shape[0];
                    entry.1 = shape[1];
                }
                _ => entry.2 = shape[0],
            }
            if factor == 'B' && shape[1] != rank || factor == 'A' && shape[0] != rank {
                return Err(fail(format!(
                    "tensor `{name}` has shape {shape:?}, which does not match rank r = {rank}"
                )));
            }
            let module = path.rsplit('.').next().unwrap_or(path).to_string();
            if !names.contains(&module) {
                names.push(module);
            }
        }
        if shapes.is_empty() {
            return Err(fail(format!("{WEIGHTS_FILE} holds no LoRA tensors")));
        }
        let known = projections(model);
        names.sort_by_key(|n| known.iter().position(|k| k == n).unwrap_or(usize::MAX));
        let config = LoraConfig {
            rank,
            alpha,
            dropout: raw
                .get("lora_dropout")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            use_rslora: flag("use_rslora"),
            targets: names,
        };
        config.validate(model).map_err(|e| {
            fail(format!(
                "{e}; the adapter was made for another base model than this {}",
                model.architecture_name()
            ))
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            base_model: raw
                .get("base_model_name_or_path")
                .and_then(Value::as_str)
                .map(String::from),
            weights,
            shapes,
        })
    }

    /// The adapted projections as the checkpoint `weights` stores them (`<path>.weight`,
    /// `[out, in]`), in the adapter's key order: each must exist with the adapter's shape.
    pub fn specs(&self, weights: &Weights) -> Result<Vec<ModuleSpec>, TrainError> {
        self.shapes
            .iter()
            .map(|(path, &(_, inp, out))| {
                let name = format!("{path}.weight");
                match weights.shape(&name) {
                    Some(shape) if shape == [out, inp] => Ok(ModuleSpec {
                        path: path.clone(),
                        in_features: inp,
                        out_features: out,
                    }),
                    found => Err(TrainError::Adapter {
                        path: self.dir.clone(),
                        message: format!(
                            "`{path}` is [{out}, {inp}] in the adapter but {} in the base \
                             model; the adapter was made for another base model",
                            match found {
                                Some(s) => format!("{s:?}"),
                                None => "missing".into(),
                            }
                        ),
                    }),
                }
            })
            .collect()
    }

    /// The factors for `modules` (a model's adapted projections, in its order): every module
    /// must be in the adapter with matching shapes, and the adapter must hold nothing else.
    pub fn params(&self, modules: &[ModuleSpec]) -> Result<LoraParams, TrainError> {
        let fail = |message: String| TrainError::Adapter {
            path: self.dir.clone(),
            message,
        };
        let r = self.config.rank;
        for path in self.shapes.keys() {
            if !modules.iter().any(|m| &m.path == path) {
                return Err(fail(format!(
                    "it adapts `{path}`, which the base model does not have (or which is not \
                     adapted in every layer); it was made for another base model"
                )));
            }
        }
        let factors = modules
            .iter()
            .map(|spec| {
                let (ra, inp, out) = self.shapes.get(&spec.path).copied().ok_or_else(|| {
                    fail(format!(
                        "it has no factors for `{}` although it targets `{}`; adapters on only \
                         some layers are not supported",
                        spec.path,
                        spec.path.rsplit('.').next().unwrap_or_default()
                    ))
                })?;
                if (ra, inp, out) != (r, spec.in_features, spec.out_features) {
                    return Err(fail(format!(
                        "`{}` has A [{ra}, {inp}] and B [{out}, {r}], but the base model's \
                         projection is {} → {}; the adapter was made for another base model",
                        spec.path, spec.in_features, spec.out_features
                    )));
                }
                let read = |f: &str, shape: [usize; 2]| {
                    self.weights
                        .read_f32(&key(&spec.path, f), &shape)
                        .map_err(|e| fail(e.to_string()))
                };
                Ok(Factor {
                    spec: spec.clone(),
                    a: read("A", [r, spec.in_features])?,
                    b: read("B", [spec.out_features, r])?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LoraParams { rank: r, factors })
    }
}

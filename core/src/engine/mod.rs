//! The inference engine: load a C2S checkpoint on the best available backend and generate,
//! score and embed text with it.
//!
//! ```no_run
//! use c2s_core::engine::{Engine, LoadOptions, GenerateOptions};
//! let engine = Engine::load("vandijklab/C2S-Pythia-410m-cell-type-prediction", &LoadOptions::default())?;
//! let (out, _) = engine.generate(&["MALAT1 B2M CD74"], &GenerateOptions::default(), &mut |_| {}, None)?;
//! println!("{} (on {})", out[0].text, engine.info().device.kind);
//! # Ok::<(), c2s_core::engine::EngineError>(())
//! ```
//!
//! The backend is chosen at run time ([`device::select_device`]) and the model code is
//! monomorphised once per backend; everything below [`Engine`] is generic over `B: Backend`.

pub mod batch;
mod detokenize;
pub mod device;
pub mod generate;
pub mod locate;
pub mod memory;
pub mod sampling;
mod scheduler;
pub mod score;
mod stop;
pub mod tokenizer;

pub use device::{DeviceKind, DeviceRequest, DeviceSelection};
pub use generate::{
    GenerateOptions, GenerateRequest, Generation, GenerationStats, StopReason, TokenEvent,
};
pub use sampling::SamplingParams;
pub use score::TokenScores;

use crate::kernels::{Q8_BLOCK, WeightFormat};
use crate::model::weights::{StoredDType, Weights};
use crate::model::{LanguageModel, ModelError, Precision, config::ModelConfig};
use crate::progress::Progress;
use burn::backend::wgpu::{CubeBackend, WgpuDevice, WgpuRuntime};
use burn::backend::{Cuda, Flex, Wgpu, cuda::CudaDevice, flex::FlexDevice};
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use tokenizer::TextTokenizer;

/// wgpu without Burn's fusion (for parity checks and as a fallback switch).
pub type WgpuNoFusion = CubeBackend<WgpuRuntime, f32, i32, u32>;

/// Errors from the engine, each naming the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model could not be located.
    #[error("{message}")]
    NotFound {
        /// What was looked for and where.
        message: String,
    },
    /// `tokenizer.json` problems.
    #[error("tokenizer: {message}")]
    Tokenizer {
        /// What is wrong.
        message: String,
    },
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Bad request parameters.
    #[error("{message}")]
    Input {
        /// What is wrong.
        message: String,
    },
    /// The compute backend failed.
    #[error("backend: {message}")]
    Backend {
        /// What is wrong.
        message: String,
    },
}

/// Requested compute precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeRequest {
    /// f32 on CPU and wgpu; the checkpoint's own dtype on CUDA.
    #[default]
    Auto,
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16 (not on wgpu; falls back with a note).
    BF16,
    /// f32 compute with 8-bit weights (blocks of 64 with an f32 scale) in the CPU kernels:
    /// about a quarter of the memory traffic per token. CPU only; elsewhere f32 with a note.
    Q8,
}

impl FromStr for DTypeRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f32" | "float32" => Ok(Self::F32),
            "f16" | "float16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            "q8" | "int8" => Ok(Self::Q8),
            other => Err(format!(
                "unknown dtype `{other}`; use auto, f32, f16, bf16 or q8"
            )),
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Which backend.
    pub device: DeviceRequest,
    /// Which precision.
    pub dtype: DTypeRequest,
    /// Use Burn's kernel fusion on GPU backends (off with `C2S_FUSION=0`).
    pub fusion: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: DeviceRequest::Auto,
            dtype: DTypeRequest::Auto,
            fusion: std::env::var("C2S_FUSION")
                .map(|v| v != "0")
                .unwrap_or(true),
        }
    }
}

/// What was loaded, where, and the generation defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The model directory.
    pub dir: PathBuf,
    /// `gpt_neox`, `gemma2` or `gemma3`.
    pub architecture: String,
    /// Compute dtype.
    pub dtype: DType,
    /// How the CPU kernels store dense-layer weights; `None` on GPU backends.
    pub cpu_weights: Option<WeightFormat>,
    /// The backend and any fallback notes.
    pub device: DeviceSelection,
    /// Whether kernel fusion is on.
    pub fusion: bool,
    /// End-of-sequence ids (`generation_config.json`, else `config.json`).
    pub eos_ids: Vec<u32>,
    /// Padding id for batches.
    pub pad_id: u32,
    /// Logit rows.
    pub vocab_rows: usize,
    /// Embedding width.
    pub hidden_size: usize,
    /// Context length.
    pub context: usize,
    /// Number of parameters in the checkpoint (every stored tensor's elements).
    pub parameters: u64,
}

impl ModelInfo {
    /// Bytes the weights take on the device: the compute dtype's size per parameter, or for
    /// 8-bit CPU weights one byte plus the block scales (approximate: norms stay f32).
    pub fn weight_bytes(&self) -> u64 {
        match self.cpu_weights {
            Some(WeightFormat::Q8) => self.parameters + self.parameters * 4 / Q8_BLOCK as u64,
            _ => self.parameters * self.dtype.size() as u64,
        }
    }
}

/// One monomorphisation of the model per backend (boxed: the variants differ in size).
enum BackendModel {
    Cpu(Box<LanguageModel<Flex>>),
    Wgpu(Box<LanguageModel<Wgpu>>),
    WgpuNoFusion(Box<LanguageModel<WgpuNoFusion>>),
    Cuda(Box<LanguageModel<Cuda>>),
}

/// Runs `$body` with `$m` bound to the backend-specific model.
macro_rules! with_model {
    ($backend:expr, $m:ident => $body:expr) => {
        match $backend {
            BackendModel::Cpu($m) => $body,
            BackendModel::Wgpu($m) => $body,
            BackendModel::WgpuNoFusion($m) => $body,
            BackendModel::Cuda($m) => $body,
        }
    };
}

/// A loaded model with its tokenizer on a chosen backend.
pub struct Engine {
    backend: BackendModel,
    tokenizer: TextTokenizer,
    info: ModelInfo,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("info", &self.info).finish()
    }
}

/// Rows per batch for scoring and embedding.
const SCORE_BATCH: usize = 16;

impl Engine {
    /// Loads `model` (a directory or a Hugging Face id found in the local cache).
    pub fn load(model: &str, options: &LoadOptions) -> Result<Self, EngineError> {
        Self::load_with_progress(model, options, &Progress::new())
    }

    /// [`Self::load`], reporting the fraction of the weights read to `progress` and stopping
    /// with [`ModelError::Cancelled`] soon after it is cancelled.
    pub fn load_with_progress(
        model: &str,
        options: &LoadOptions,
        progress: &Progress,
    ) -> Result<Self, EngineError> {
        let dir = locate::resolve_model(model)?;
        Self::load_dir_with_progress(&dir, options, progress)
    }

    /// Loads a model directory.
    pub fn load_dir(dir: &Path, options: &LoadOptions) -> Result<Self, EngineError> {
        Self::load_dir_with_progress(dir, options, &Progress::new())
    }

    /// [`Self::load_dir`] with progress and cancellation (see [`Self::load_with_progress`]).
    pub fn load_dir_with_progress(
        dir: &Path,
        options: &LoadOptions,
        progress: &Progress,
    ) -> Result<Self, EngineError> {
        Self::load_dir_with_adapter(dir, None, options, progress)
    }

    /// [`Self::load_with_progress`] with a peft LoRA adapter folder (ours or peft's) merged
    /// into the weights as they are read, so the adapted model runs at the base model's speed.
    /// An adapter made for another base model is refused with a message saying so.
    pub fn load_with_adapter(
        model: &str,
        adapter: Option<&Path>,
        options: &LoadOptions,
        progress: &Progress,
    ) -> Result<Self, EngineError> {
        let dir = locate::resolve_model(model)?;
        Self::load_dir_with_adapter(&dir, adapter, options, progress)
    }

    /// [`Self::load_dir_with_progress`] with an optional adapter (see [`Self::load_with_adapter`]).
    pub fn load_dir_with_adapter(
        dir: &Path,
        adapter: Option<&Path>,
        options: &LoadOptions,
        progress: &Progress,
    ) -> Result<Self, EngineError> {
        let config_path = dir.join("config.json");
        let raw = read_json(&config_path)?;
        let config = ModelConfig::from_json(&raw)?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let mut weights = Weights::open_dir(dir)?.with_progress(progress.clone());
        if let Some(adapter) = adapter {
            let deltas =
                crate::train::merge::adapter_deltas(adapter, &config, &weights).map_err(|e| {
                    EngineError::Input {
                        message: format!("cannot apply the adapter {}: {e}", adapter.display()),
                    }
                })?;
            weights = weights.with_deltas(deltas);
        }
        let stored = weights.dominant_dtype();
        let mut selection = device::select_device(options.device);
        loop {
            let (precision, note) = resolve_precision(options.dtype, selection.kind, stored);
            let dtype = precision.dtype;
            if let Some(note) = note {
                selection.notes.push(note);
            }
            let needed = memory::load_bytes(&config, weights.parameter_count(), dtype.size());
            let what = format!("{} in {dtype:?}", dir.display());
            if selection.kind == DeviceKind::Cpu {
                memory::check_fits(needed, memory::available_host_bytes(), &what)?;
            }
            if selection.kind == DeviceKind::Cuda {
                let fits = memory::check_fits_device(
                    needed,
                    device::cuda_total_memory(),
                    &what,
                    &selection.description,
                );
                match fits {
                    Err(e) if options.device == DeviceRequest::Auto => {
                        selection
                            .notes
                            .push(format!("{e}; loading on the CPU instead"));
                        selection.kind = DeviceKind::Cpu;
                        selection.description = "CPU (Flex)".into();
                        continue;
                    }
                    fits => fits?,
                }
            }
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                load_backend(
                    selection.kind,
                    options.fusion,
                    &config,
                    &raw,
                    &weights,
                    precision,
                )
            }));
            match loaded {
                Ok(Ok(backend)) => {
                    if selection.kind == DeviceKind::Cuda && !options.fusion {
                        selection.notes.push(
                            "kernel fusion cannot be turned off on CUDA (--no-fusion and \
                             C2S_FUSION=0 apply to wgpu); running fused"
                                .into(),
                        );
                    }
                    let mut info =
                        model_info(dir, &config, &backend, precision, selection, options)?;
                    info.parameters = weights.parameter_count();
                    return Ok(Self {
                        backend,
                        tokenizer,
                        info,
                    });
                }
                Ok(Err(e)) => return Err(e),
                Err(panic) if options.device != DeviceRequest::Auto => {
                    return Err(EngineError::Backend {
                        message: format!(
                            "{} could not load {} in {dtype:?} ({}); nothing was loaded on \
                             another device because you asked for this one. Try a smaller \
                             dtype (--dtype bf16 on CUDA, q8 on the CPU), a smaller model, or \
                             --device cpu",
                            selection.kind,
                            dir.display(),
                            panic_message(&panic)
                        ),
                    });
                }
                Err(panic) if selection.kind != DeviceKind::Cpu => {
                    let why = panic_message(&panic);
                    selection.notes.push(format!(
                        "{} failed to initialise ({why}); falling back to the CPU",
                        selection.kind
                    ));
                    selection.kind = DeviceKind::Cpu;
                    selection.description = "CPU (Flex)".into();
                }
                Err(panic) => {
                    return Err(EngineError::Backend {
                        message: format!("the CPU backend failed: {}", panic_message(&panic)),
                    });
                }
            }
        }
    }

    /// Model, device and generation defaults.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Tokenizes texts with the model's tokenizer (special tokens as the file defines them).
    pub fn encode_all(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EngineError> {
        texts.iter().map(|t| self.tokenizer.encode(t)).collect()
    }

    /// Generates a continuation for each prompt, in length-sorted batches bounded by
    /// `options.max_batch_rows` and `options.kv_budget_bytes`; results in prompt order.
    pub fn generate(
        &self,
        prompts: &[&str],
        options: &GenerateOptions,
        on_token: &mut (dyn FnMut(TokenEvent<'_>) + Send),
        cancel: Option<&AtomicBool>,
    ) -> Result<(Vec<Generation>, GenerationStats), EngineError> {
        let ids = self.encode_all(prompts)?;
        self.generate_ids(&ids, options, on_token, cancel)
    }

    /// Like [`Self::generate`] for already tokenized prompts.
    pub fn generate_ids(
        &self,
        prompts: &[Vec<u32>],
        options: &GenerateOptions,
        on_token: &mut (dyn FnMut(TokenEvent<'_>) + Send),
        cancel: Option<&AtomicBool>,
    ) -> Result<(Vec<Generation>, GenerationStats), EngineError> {
        let requests: Vec<GenerateRequest<'_>> =
            prompts.iter().map(|p| GenerateRequest::new(p)).collect();
        self.generate_requests(&requests, options, on_token, &mut |_, _| {}, cancel)
    }

    /// Generates `samples` continuations of each request (see [`generate::Generator::run`]):
    /// each request's prompt is prefilled once per batch and its cache shared by its samples;
    /// `on_done(row, generation)` sees each row as it finishes. Results in row order (requests
    /// in order, each with its samples).
    pub fn generate_requests(
        &self,
        requests: &[GenerateRequest<'_>],
        options: &GenerateOptions,
        on_token: &mut (dyn FnMut(TokenEvent<'_>) + Send),
        on_done: &mut (dyn FnMut(usize, &Generation) + Send),
        cancel: Option<&AtomicBool>,
    ) -> Result<(Vec<Generation>, GenerationStats), EngineError> {
        with_model!(&self.backend, m => generate::Generator {
            model: m.as_ref(),
            tokenizer: &self.tokenizer,
            eos_ids: &self.info.eos_ids,
            pad_id: self.info.pad_id,
            cache_dtype_bytes: self.info.dtype.size(),
        }
        .run(requests, options, on_token, on_done, cancel))
    }

    /// Per-token log-probabilities of each text (teacher forcing).
    pub fn score(&self, texts: &[&str]) -> Result<Vec<TokenScores>, EngineError> {
        let ids = self.encode_all(texts)?;
        self.score_ids(&ids)
    }

    /// Like [`Self::score`] for token ids.
    pub fn score_ids(&self, rows: &[Vec<u32>]) -> Result<Vec<TokenScores>, EngineError> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(SCORE_BATCH) {
            out.extend(with_model!(&self.backend, m => score::score(m, chunk, self.info.pad_id))?);
        }
        Ok(out)
    }

    /// Summed log-probability of each continuation after its prompt (token ids; see
    /// [`score::score_continuations`]): each prompt runs once and its cache is shared by its
    /// continuations.
    pub fn score_continuations(
        &self,
        prompts: &[Vec<u32>],
        continuations: &[Vec<Vec<u32>>],
    ) -> Result<Vec<Vec<f64>>, EngineError> {
        if prompts.len() != continuations.len() {
            return Err(EngineError::Input {
                message: format!(
                    "{} prompts but {} lists of continuations",
                    prompts.len(),
                    continuations.len()
                ),
            });
        }
        let mut out = Vec::with_capacity(prompts.len());
        for (p, c) in prompts
            .chunks(SCORE_BATCH)
            .zip(continuations.chunks(SCORE_BATCH))
        {
            out.extend(with_model!(&self.backend, m => score::score_continuations(
                m, p, c, self.info.pad_id
            ))?);
        }
        Ok(out)
    }

    /// Mean final hidden state over the real tokens of each text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EngineError> {
        let ids = self.encode_all(texts)?;
        self.embed_ids(&ids)
    }

    /// Like [`Self::embed`] for token ids.
    pub fn embed_ids(&self, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EngineError> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(SCORE_BATCH) {
            out.extend(with_model!(&self.backend, m => score::embed(m, chunk, self.info.pad_id))?);
        }
        Ok(out)
    }

    /// The `cell2sentence` package's embeddings of `batch`, run as ONE left-padded batch: the
    /// mean of the final hidden states over every position, padding included (see
    /// [`score::embed_compat`]), so each row depends on the others; the caller picks the batch
    /// as the package's `inference_batch_size` would.
    pub fn embed_ids_compat(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EngineError> {
        with_model!(&self.backend, m => score::embed_compat(m, batch, self.info.pad_id))
    }
}

fn load_backend(
    kind: DeviceKind,
    fusion: bool,
    config: &ModelConfig,
    raw: &serde_json::Value,
    weights: &Weights,
    precision: Precision,
) -> Result<BackendModel, EngineError> {
    Ok(match kind {
        DeviceKind::Cpu => BackendModel::Cpu(Box::new(LanguageModel::from_weights(
            config.clone(),
            raw,
            weights,
            precision,
            &FlexDevice,
        )?)),
        DeviceKind::Wgpu if fusion => BackendModel::Wgpu(Box::new(LanguageModel::from_weights(
            config.clone(),
            raw,
            weights,
            precision,
            &WgpuDevice::DefaultDevice,
        )?)),
        DeviceKind::Wgpu => BackendModel::WgpuNoFusion(Box::new(LanguageModel::from_weights(
            config.clone(),
            raw,
            weights,
            precision,
            &WgpuDevice::DefaultDevice,
        )?)),
        DeviceKind::Cuda => BackendModel::Cuda(Box::new(LanguageModel::from_weights(
            config.clone(),
            raw,
            weights,
            precision,
            &CudaDevice { index: 0 },
        )?)),
    })
}

/// Picks the precision for a backend, with a note when the request cannot be honoured.
fn resolve_precision(
    request: DTypeRequest,
    kind: DeviceKind,
    stored: StoredDType,
) -> (Precision, Option<String>) {
    match (request, kind) {
        (DTypeRequest::Q8, DeviceKind::Cpu) => (
            Precision {
                dtype: DType::F32,
                cpu_weights: WeightFormat::Q8,
            },
            None,
        ),
        (DTypeRequest::Q8, _) => (
            DType::F32.into(),
            Some(format!(
                "8-bit weights run on the CPU backend only; computing in f32 on {kind}"
            )),
        ),
        (request, kind) => {
            let (dtype, note) = resolve_dtype(request, kind, stored);
            (dtype.into(), note)
        }
    }
}

/// Picks the compute dtype for a backend, with a note when the request cannot be honoured.
fn resolve_dtype(
    request: DTypeRequest,
    kind: DeviceKind,
    stored: StoredDType,
) -> (DType, Option<String>) {
    match (request, kind) {
        (DTypeRequest::Auto, DeviceKind::Cuda) => (
            match stored {
                StoredDType::BF16 => DType::BF16,
                StoredDType::F16 => DType::F16,
                _ => DType::F32,
            },
            None,
        ),
        (DTypeRequest::Auto | DTypeRequest::F32 | DTypeRequest::Q8, _) => (DType::F32, None),
        (DTypeRequest::F16, DeviceKind::Wgpu) => {
            if <Wgpu as Backend>::supports_dtype(&WgpuDevice::DefaultDevice, DType::F16) {
                (DType::F16, None)
            } else {
                (
                    DType::F32,
                    Some("this wgpu adapter has no f16 support; computing in f32".into()),
                )
            }
        }
        (DTypeRequest::BF16, DeviceKind::Wgpu) => (
            DType::F32,
            Some("wgpu has no bf16 arithmetic; computing in f32".into()),
        ),
        (DTypeRequest::F16, _) => (DType::F16, None),
        (DTypeRequest::BF16, _) => (DType::BF16, None),
    }
}

fn model_info(
    dir: &Path,
    config: &ModelConfig,
    backend: &BackendModel,
    precision: Precision,
    device: DeviceSelection,
    options: &LoadOptions,
) -> Result<ModelInfo, EngineError> {
    let special = config.special_ids();
    let mut eos_ids = special.eos.clone();
    let mut pad = special.pad;
    let gen_path = dir.join("generation_config.json");
    if gen_path.exists() {
        let gen_cfg = read_json(&gen_path)?;
        let gen_special = crate::model::config::SpecialIds::from_json(&gen_cfg);
        if !gen_special.eos.is_empty() {
            eos_ids = gen_special.eos;
        }
        pad = gen_special.pad.or(pad);
    }
    let pad_id = pad.or_else(|| eos_ids.first().copied()).unwrap_or(0);
    let (vocab_rows, hidden_size, context, architecture) = with_model!(
        backend,
        m => (m.vocab_rows(), m.hidden_size(), m.max_positions(), m.architecture_name())
    );
    Ok(ModelInfo {
        dir: dir.to_path_buf(),
        architecture: architecture.to_string(),
        dtype: precision.dtype,
        cpu_weights: (device.kind == DeviceKind::Cpu).then_some(precision.cpu_weights),
        // Burn's CUDA backend always fuses here; only wgpu has an unfused build.
        fusion: match device.kind {
            DeviceKind::Cpu => false,
            DeviceKind::Cuda => true,
            DeviceKind::Wgpu => options.fusion,
        },
        device,
        eos_ids,
        pad_id,
        vocab_rows,
        hidden_size,
        context,
        parameters: 0,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| {
        EngineError::Model(ModelError::Config {
            message: format!("{} is not valid JSON: {e}", path.display()),
        })
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

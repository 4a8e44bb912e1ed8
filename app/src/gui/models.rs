//! The model registry: models loaded once, shared by every panel that runs them (`Arc`), listed
//! with their device, dtype and memory, and unloaded on request.
//!
//! A model may carry a LoRA adapter (a peft folder, e.g. a Fine-tune run's output), merged into
//! its weights as they are read; the registry remembers which.
//!
//! Loading runs in the accelerator lane (it fills the device's memory, so it waits for the
//! inference or training job before it). A model is freed when it is unloaded and the last job
//! using it has ended.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use c2s_core::engine::{Engine, EngineError, LoadOptions};
use c2s_core::model::ModelError;

use super::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// A model in memory.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// Registry id (unique in this run).
    pub id: u64,
    /// What the user asked for: a directory or a Hugging Face id.
    pub source: String,
    /// The LoRA adapter folder merged into the weights, if any.
    pub adapter: Option<PathBuf>,
    /// The engine, shared with the jobs that run it.
    pub engine: Arc<Engine>,
}

impl LoadedModel {
    /// A short name: the id or the directory's last component, with `+ adapter` when an
    /// adapter is on.
    pub fn name(&self) -> String {
        let trimmed = self.source.trim_end_matches(['/', '\\']);
        let base = if Path::new(trimmed).is_dir() {
            super::loader::display_name(Path::new(trimmed))
        } else {
            trimmed.to_string()
        };
        match &self.adapter {
            Some(a) => format!("{base} + {}", super::loader::display_name(a)),
            None => base,
        }
    }
}

/// A load in progress.
#[derive(Debug)]
struct Loading {
    source: String,
    adapter: Option<PathBuf>,
    job: JobHandle<Engine>,
}

/// Every loaded model, and the loads in progress.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    models: Vec<LoadedModel>,
    loading: Vec<Loading>,
    next_id: u64,
}

impl ModelRegistry {
    /// The loaded models, in load order.
    pub fn models(&self) -> &[LoadedModel] {
        &self.models
    }

    /// The model with registry id `id`.
    pub fn get(&self, id: u64) -> Option<&LoadedModel> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The loaded model of `source` with `adapter` on (none: the plain model).
    pub fn find(&self, source: &str, adapter: Option<&Path>) -> Option<&LoadedModel> {
        self.models
            .iter()
            .find(|m| m.source == source.trim() && m.adapter.as_deref() == adapter)
    }

    /// Sources being loaded, with their job ids.
    pub fn loading(&self) -> impl Iterator<Item = (&str, u64)> {
        self.loading.iter().map(|l| (l.source.as_str(), l.job.id()))
    }

    /// Starts loading `source` (a model directory or a Hugging Face id in the local cache).
    pub fn start_load(&mut self, jobs: &mut Jobs, source: &str, options: LoadOptions) {
        self.start_load_with_adapter(jobs, source, None, options);
    }

    /// Starts loading `source` with the LoRA adapter in folder `adapter` merged in (none: the
    /// plain model). An adapter made for another base model fails the load with a message
    /// saying so.
    pub fn start_load_with_adapter(
        &mut self,
        jobs: &mut Jobs,
        source: &str,
        adapter: Option<PathBuf>,
        options: LoadOptions,
    ) {
        let source = source.trim().to_string();
        let what = source.clone();
        let title = match &adapter {
            Some(a) => format!("Loading model {source} with adapter {}", a.display()),
            None => format!("Loading model {source}"),
        };
        let folder = adapter.clone();
        let job = jobs.spawn(title, Lane::Accelerator, move |cx: &JobContext<()>| {
            cx.set(0.0, "reading the checkpoint");
            let loaded = Engine::load_with_adapter(&what, folder.as_deref(), &options, cx.core());
            let engine = match loaded {
                Err(EngineError::Model(ModelError::Cancelled)) => {
                    return Err(JobError::Cancelled);
                }
                loaded => loaded.map_err(|e| e.to_string())?,
            };
            cx.set(1.0, "loaded");
            Ok(engine)
        });
        self.loading.push(Loading {
            source,
            adapter,
            job,
        });
    }

    /// Takes finished loads into the registry (a failed load is reported by the job list).
    pub fn poll(&mut self) {
        let mut k = 0;
        while k < self.loading.len() {
            let Some(result) = self.loading[k].job.poll().result else {
                k += 1;
                continue;
            };
            let Loading {
                source, adapter, ..
            } = self.loading.remove(k);
            if let Ok(engine) = result {
                self.next_id += 1;
                self.models.push(LoadedModel {
                    id: self.next_id,
                    source,
                    adapter,
                    engine: Arc::new(engine),
                });
            }
        }
    }

    /// Removes model `id` from the registry; its memory is freed once no job uses it.
    pub fn unload(&mut self, id: u64) -> Option<LoadedModel> {
        let k = self.models.iter().position(|m| m.id == id)?;
        Some(self.models.remove(k))
    }
}

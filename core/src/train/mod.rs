//! LoRA fine-tuning of C2S checkpoints on Burn's autodiff backend, writing adapters that Python's
//! `peft` loads.
//!
//! Follow one run through the modules in order: [`config`] says which projections get adapters
//! and how they are scaled, [`data`] turns `model_input` / `response` examples into padded token
//! batches with loss masks, [`model`] is the trainable causal LM (the frozen base and the LoRA
//! factors of [`params`]), [`loss`] is the masked cross-entropy, [`optim`] the AdamW step with
//! gradient clipping and [`schedule`] its learning-rate schedule, [`trainer`] the loop with
//! validation (loss, and for classifications the candidate-ranking accuracy of [`rank`]),
//! `log.jsonl`, checkpoints ([`checkpoint`]) and resume, run on the requested
//! device by [`backend`]; [`adapter`] reads and writes peft's `adapter_config.json` +
//! `adapter_model.safetensors`, and [`merge`] folds an adapter into a full checkpoint. With
//! [`full`], every weight of a (small) GPT-NeoX model trains instead, and the run writes a full
//! checkpoint.

pub mod adapter;
pub mod backend;
pub mod cells;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod full;
pub mod host_ops;
pub mod loss;
pub mod merge;
pub mod model;
pub mod optim;
pub mod params;
pub mod rank;
pub mod schedule;
pub mod trainer;

use crate::model::ModelError;
use std::path::PathBuf;

/// Errors from fine-tuning: each names the problem and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is out of range or inconsistent with the model.
    #[error("{0}")]
    InvalidConfig(String),
    /// The training examples cannot be used.
    #[error("{0}")]
    InvalidData(String),
    /// A LoRA adapter is malformed or does not fit the base model.
    #[error("adapter {path}: {message}")]
    Adapter {
        /// The adapter folder or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The base model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The run was cancelled; the last finished step is checkpointed.
    #[error("training was cancelled")]
    Cancelled,
}

impl TrainError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

impl From<crate::Error> for TrainError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Cancelled => Self::Cancelled,
            crate::Error::Write { path, detail } => Self::Io {
                path,
                message: detail,
            },
            other => Self::InvalidData(other.to_string()),
        }
    }
}

//! Cell embeddings from a C2S model: each cell's prompt (the cell-type-prediction template with
//! its sentence, no answer) runs through the model, and the final-normed hidden states are
//! averaged into one vector per cell ([`EmbedPooling`]): over the prompt's real tokens (padding
//! left out, so a cell's embedding does not depend on its batch), or, in `compat`, over every
//! position of the left-padded batch as the `cell2sentence` package does.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::{Engine, EngineError};

/// How a cell's final hidden states become its embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbedPooling {
    /// Mean over the prompt's own tokens: the same whether the cell is embedded alone or in a
    /// batch.
    #[default]
    Masked,
    /// The `cell2sentence` package's mean (`embed_cells`): consecutive cells are left-padded
    /// into one batch and the mean runs over every position, padding included, so a cell's
    /// embedding depends on the cells batched with it and on the batch size.
    Compat,
}

impl EmbedPooling {
    /// Both modes, the default first.
    pub const ALL: [Self; 2] = [Self::Masked, Self::Compat];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Masked => "masked",
            Self::Compat => "compat",
        }
    }

    /// The batch size to use when none is given: for `compat`, the package's default
    /// `inference_batch_size` (its results depend on it).
    pub fn default_batch(self) -> usize {
        match self {
            Self::Masked => 16,
            Self::Compat => PACKAGE_BATCH,
        }
    }
}

/// `tasks.embed_cells`' default `inference_batch_size` in cell2sentence 1.2.0.
pub const PACKAGE_BATCH: usize = 8;

impl fmt::Display for EmbedPooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EmbedPooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown pooling `{s}`; use masked or compat"))
    }
}

/// Embeddings of the first `rows` prompts, row-major (`rows × width`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellEmbeddings {
    /// Values, one row of `width` per prompt done.
    pub data: Vec<f32>,
    /// The model's hidden size.
    pub width: usize,
    /// Prompts done.
    pub rows: usize,
    /// Whether the run stopped early on a cancel.
    pub cancelled: bool,
}

/// Embeds each prompt, `batch` at a time, pooled by `pooling` (in `compat` each group of `batch`
/// consecutive prompts is one padded batch, as the package's `inference_batch_size`);
/// `on_batch(done)` sees the progress and a raised `cancel` stops after the current batch,
/// keeping what is done.
pub fn embed_cells(
    engine: &Engine,
    prompts: &[String],
    batch: usize,
    pooling: EmbedPooling,
    cancel: &AtomicBool,
    on_batch: &mut dyn FnMut(usize),
) -> Result<CellEmbeddings, EngineError> {
    let width = engine.info().hidden_size;
    let mut out = CellEmbeddings {
        width,
        data: Vec::with_capacity(prompts.len() * width),
        ..Default::default()
    };
    for chunk in prompts.chunks(batch.max(1)) {
        if cancel.load(Ordering::Relaxed) {
            out.cancelled = true;
            break;
        }
        let ids = encode_within_context(engine, chunk)?;
        let rows = match pooling {
            EmbedPooling::Masked => engine.embed_ids(&ids)?,
            EmbedPooling::Compat => engine.embed_ids_compat(&ids)?,
        };
        for row in rows {
            out.data.extend(row);
        }
        out.rows += chunk.len();
        on_batch(out.rows);
    }
    Ok(out)
}

/// Token ids of `prompts`, or an error naming the fix when one exceeds the model's context.
fn encode_within_context(
    engine: &Engine,
    prompts: &[String],
) -> Result<Vec<Vec<u32>>, EngineError> {
    let context = engine.info().context;
    let ids = prompts
        .iter()
        .map(|p| engine.tokenizer().encode(p))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(long) = ids.iter().map(Vec::len).find(|&l| l > context) {
        return Err(EngineError::Input {
            message: format!(
                "a prompt has {long} tokens but the model's context is {context}; use fewer \
                 genes per cell"
            ),
        });
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_names_round_trip_and_masked_is_the_default() {
        for p in EmbedPooling::ALL {
            assert_eq!(p.name().parse::<EmbedPooling>(), Ok(p));
        }
        assert_eq!("COMPAT".parse::<EmbedPooling>(), Ok(EmbedPooling::Compat));
        assert!("mean".parse::<EmbedPooling>().is_err());
        assert_eq!(EmbedPooling::default(), EmbedPooling::Masked);
        assert_eq!(EmbedPooling::Compat.default_batch(), 8);
    }
}

//! Cell embeddings from a C2S model: each cell's prompt (the cell-type-prediction template with
//! its sentence, no answer) runs through the model, and the final-normed hidden states are
//! averaged over the prompt's real tokens (padding left out, so a cell's embedding does not
//! depend on its batch; the package averages over padding too).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::{Engine, EngineError};

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

/// Embeds each prompt, `batch` at a time; `on_batch(done)` sees the progress and a raised
/// `cancel` stops after the current batch, keeping what is done.
pub fn embed_cells(
    engine: &Engine,
    prompts: &[String],
    batch: usize,
    cancel: &AtomicBool,
    on_batch: &mut dyn FnMut(usize),
) -> Result<CellEmbeddings, EngineError> {
    let width = engine.info().hidden_size;
    let context = engine.info().context;
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
        let ids = chunk
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
        for row in engine.embed_ids(&ids)? {
            out.data.extend(row);
        }
        out.rows += chunk.len();
        on_batch(out.rows);
    }
    Ok(out)
}

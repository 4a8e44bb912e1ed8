//! The model's own `tokenizer.json` (with its post-processor, so special tokens are added exactly
//! as the file defines them), plus the set of ids it can produce.

use super::EngineError;
use std::path::Path;
use tokenizers::Tokenizer;

/// A loaded `tokenizer.json`.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// `known[id]`: the tokenizer has a token for `id` (ids past the end are unknown).
    known: Vec<bool>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("ids", &self.known.len())
            .finish()
    }
}

impl TextTokenizer {
    /// Reads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, EngineError> {
        if !path.exists() {
            return Err(EngineError::Tokenizer {
                message: format!(
                    "{} not found; the model directory must contain the model's tokenizer.json",
                    path.display()
                ),
            });
        }
        let inner = Tokenizer::from_file(path).map_err(|e| EngineError::Tokenizer {
            message: format!("cannot parse {}: {e}", path.display()),
        })?;
        let mut known = Vec::new();
        let size = inner.get_vocab_size(true);
        // Ids of the vocabulary and of added tokens (which can sit past `size`).
        for (_, id) in inner.get_vocab(true) {
            let id = id as usize;
            if id >= known.len() {
                known.resize(id + 1, false);
            }
            known[id] = true;
        }
        known.resize(known.len().max(size), false);
        Ok(Self { inner, known })
    }

    /// Token ids of `text`, special tokens added as the post-processor defines.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.inner
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Tokenizer {
                message: format!("cannot tokenize the input: {e}"),
            })
    }

    /// Token ids of `text` alone, without the post-processor's special tokens (a continuation
    /// appended to a prompt must not start with a BOS token).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Tokenizer {
                message: format!("cannot tokenize the input: {e}"),
            })
    }

    /// Text of `ids`, skipping special tokens (as `batch_decode(skip_special_tokens=True)`).
    pub fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| EngineError::Tokenizer {
                message: format!("cannot decode token ids: {e}"),
            })
    }

    /// Whether the tokenizer has a token with this id.
    pub fn knows(&self, id: u32) -> bool {
        self.known.get(id as usize).copied().unwrap_or(false)
    }

    /// One past the largest id the tokenizer knows.
    pub fn id_bound(&self) -> usize {
        self.known.len()
    }

    /// The id of a token string.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

//! Incremental detokenization, as `transformers`' `TextStreamer` and vLLM's
//! `detokenize_incrementally` do it: each new token decodes only a short window of recent ids
//! (from the `prefix` offset), and the text past the window's already-final part (up to the
//! `read` offset) is new. Text that ends in an incomplete character (U+FFFD from a partial
//! byte sequence) waits for the next token, so a step costs O(window), not O(row length).

use super::EngineError;
use super::tokenizer::TextTokenizer;

/// Offsets into a row's ids: `ids[prefix..read]` decodes to text already handed out, and
/// decoding from `prefix` on keeps word-initial spaces and merges exactly as in the whole text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IncrementalDecoder {
    prefix: usize,
    read: usize,
}

impl IncrementalDecoder {
    /// The text `ids` (the row so far, the newest id last) adds to what was handed out before;
    /// empty while the end is an incomplete character.
    pub(crate) fn next(
        &mut self,
        tokenizer: &TextTokenizer,
        ids: &[u32],
    ) -> Result<String, EngineError> {
        let (known, full) = self.decode_window(tokenizer, ids)?;
        if full.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        let new = suffix_after(&full, &known);
        if !new.is_empty() {
            self.prefix = self.read;
            self.read = ids.len();
        }
        Ok(new.to_string())
    }

    /// Everything not yet handed out, incomplete characters included (the row has ended).
    pub(crate) fn finish(
        &mut self,
        tokenizer: &TextTokenizer,
        ids: &[u32],
    ) -> Result<String, EngineError> {
        let (known, full) = self.decode_window(tokenizer, ids)?;
        let new = suffix_after(&full, &known).to_string();
        self.prefix = self.read;
        self.read = ids.len();
        Ok(new)
    }

    /// The text of `ids[prefix..read]` and of `ids[prefix..]`.
    fn decode_window(
        &self,
        tokenizer: &TextTokenizer,
        ids: &[u32],
    ) -> Result<(String, String), EngineError> {
        let known = tokenizer.decode(&ids[self.prefix..self.read])?;
        let full = tokenizer.decode(&ids[self.prefix..])?;
        Ok((known, full))
    }
}

/// The part of `full` past its longest common prefix (whole characters) with `known`.
fn suffix_after<'a>(full: &'a str, known: &str) -> &'a str {
    let common: usize = full
        .chars()
        .zip(known.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    &full[common..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use std::path::PathBuf;

    fn tokenizer(name: &str) -> TextTokenizer {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models")
            .join(name)
            .join("tokenizer.json");
        TextTokenizer::from_file(&path).expect("fixture tokenizer")
    }

    /// Decodes `ids` one token at a time; returns the pieces (the last from `finish`).
    fn pieces(tok: &TextTokenizer, ids: &[u32]) -> Vec<String> {
        let mut decoder = IncrementalDecoder::default();
        let mut out: Vec<String> = (1..=ids.len())
            .map(|n| decoder.next(tok, &ids[..n]).unwrap())
            .collect();
        out.push(decoder.finish(tok, ids).unwrap());
        out
    }

    #[test]
    fn pieces_concatenate_to_the_whole_decode() {
        for name in ["gpt_neox_parallel", "gemma3_text"] {
            let tok = tokenizer(name);
            let mut draws = SplitMix64::new(9);
            for case in 0..50 {
                let ids: Vec<u32> = (0..1 + case % 30)
                    .map(|_| draws.below(tok.id_bound()) as u32)
                    .filter(|&id| tok.knows(id))
                    .collect();
                let whole = tok.decode(&ids).unwrap();
                assert_eq!(pieces(&tok, &ids).concat(), whole, "{name} {ids:?}");
            }
            let text = "CD3E IL7R naïve T-Zelle über 5 µm";
            let ids = tok.encode_plain(text).unwrap();
            assert_eq!(pieces(&tok, &ids).concat(), tok.decode(&ids).unwrap());
        }
    }

    #[test]
    fn an_incomplete_character_waits_for_its_last_byte() {
        let tok = tokenizer("gpt_neox_parallel");
        // Byte-level BPE without merges for it: "é" is two byte tokens.
        let ids = tok.encode_plain("é").unwrap();
        assert_eq!(ids.len(), 2, "{ids:?}");
        let got = pieces(&tok, &ids);
        assert_eq!(got[0], "", "half a character is held back");
        assert_eq!(got.concat(), "é");
    }
}

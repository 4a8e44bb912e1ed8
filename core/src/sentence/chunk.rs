//! Sentences of consecutive cells stored back to back in a few large text buffers, so that
//! building and handing them on (to Parquet, say) costs no allocation per cell.

/// One buffer of consecutive sentences and where each ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextPart {
    /// The sentences, concatenated without separators: UTF-8, since it is made of whole gene
    /// names (kept as bytes so that it is validated once, where it becomes a string column).
    pub text: Vec<u8>,
    /// `ends[i]` is the byte offset in `text` where sentence `i` ends (and `i + 1` begins).
    pub ends: Vec<usize>,
}

impl TextPart {
    /// A part with room for `bytes` of text and `cells` sentences.
    pub fn with_capacity(bytes: usize, cells: usize) -> Self {
        Self {
            text: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(cells),
        }
    }

    /// Ends the sentence written since the previous one.
    pub fn finish_sentence(&mut self) {
        self.ends.push(self.text.len());
    }

    /// The sentences with their byte ranges in `text`.
    pub fn spans(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(a, b)| a..b)
    }
}

/// Sentences of consecutive cells, in order, over one or more [`TextPart`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentenceChunk {
    /// The parts, in cell order.
    pub parts: Vec<TextPart>,
}

impl SentenceChunk {
    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.ends.len()).sum()
    }

    /// Whether the chunk holds no sentence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sentences in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.parts.iter().flat_map(|p| {
            p.spans().map(move |r| {
                std::str::from_utf8(&p.text[r]).expect("sentences are made of whole UTF-8 names")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_come_back_in_order_across_parts() {
        let mut a = TextPart::with_capacity(16, 2);
        a.text.extend_from_slice(b"A B");
        a.finish_sentence();
        a.finish_sentence(); // an empty sentence
        let mut b = TextPart::default();
        b.text.push(b'C');
        b.finish_sentence();
        let chunk = SentenceChunk { parts: vec![a, b] };
        assert_eq!(chunk.len(), 3);
        assert_eq!(chunk.iter().collect::<Vec<_>>(), ["A B", "", "C"]);
        assert!(SentenceChunk::default().is_empty());
    }
}

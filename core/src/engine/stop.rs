//! Stop strings that never leak into the stream: text is handed out only once no stop string
//! can start in it. A tail that could still grow into a stop string is held back until the
//! next tokens settle it; when a stop string appears, the text is cut before it. What was
//! handed out is therefore always a prefix of the final text, and the pieces add up to it.

/// A row's text and how much of it was handed out.
#[derive(Debug, Clone)]
pub(crate) struct StopFilter<'a> {
    /// The non-empty stop strings.
    stops: Vec<&'a str>,
    /// Bytes of the longest stop string.
    longest: usize,
    text: String,
    emitted: usize,
}

impl<'a> StopFilter<'a> {
    /// A filter for `stops` (empty strings are ignored).
    pub(crate) fn new(stops: &'a [String]) -> Self {
        let stops: Vec<&str> = stops
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let longest = stops.iter().map(|s| s.len()).max().unwrap_or(0);
        Self {
            stops,
            longest,
            text: String::new(),
            emitted: 0,
        }
    }

    /// Appends new text. Returns whether a stop string now appears: then the text is cut
    /// before it and all of the rest is handed out.
    pub(crate) fn push(&mut self, new: &str) -> bool {
        self.text.push_str(new);
        // Nothing handed out can start a stop string, so a match starts at `emitted` or later.
        let pending = &self.text[self.emitted..];
        if let Some(cut) = self.stops.iter().filter_map(|s| pending.find(s)).min() {
            self.text.truncate(self.emitted + cut);
            self.emitted = self.text.len();
            return true;
        }
        self.emitted = self.safe_end();
        false
    }

    /// Hands out everything held back (the row ended without a stop string).
    pub(crate) fn release(&mut self) {
        self.emitted = self.text.len();
    }

    /// Bytes handed out so far.
    pub(crate) fn emitted(&self) -> usize {
        self.emitted
    }

    /// The text so far, held-back tail included.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The text handed out.
    pub(crate) fn into_emitted(mut self) -> String {
        self.text.truncate(self.emitted);
        self.text
    }

    /// The start of the shortest tail of the text that is the beginning of a stop string (the
    /// text's end when there is none).
    fn safe_end(&self) -> usize {
        let len = self.text.len();
        if self.longest == 0 {
            return len;
        }
        let from = len.saturating_sub(self.longest - 1).max(self.emitted);
        (from..len)
            .filter(|&j| self.text.is_char_boundary(j))
            .find(|&j| self.stops.iter().any(|s| s.starts_with(&self.text[j..])))
            .unwrap_or(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces`; returns what was handed out after each and whether a stop hit.
    fn feed(stops: &[String], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut f = StopFilter::new(stops);
        let mut out = Vec::new();
        let mut hit = false;
        for p in pieces {
            let before = f.emitted();
            hit = f.push(p);
            out.push(f.text()[before..f.emitted()].to_string());
            if hit {
                break;
            }
        }
        if !hit {
            let before = f.emitted();
            f.release();
            out.push(f.text()[before..].to_string());
        }
        let text = f.into_emitted();
        (out, hit, text)
    }

    #[test]
    fn a_stop_string_split_over_pieces_is_never_handed_out() {
        let stops = vec!["END".to_string()];
        let (out, hit, text) = feed(&stops, &["CD3E E", "N", "D more"]);
        assert!(hit);
        assert_eq!(out, ["CD3E ", "", ""]);
        assert_eq!(text, "CD3E ");
        assert_eq!(out.concat(), text);
    }

    #[test]
    fn a_false_start_is_released_once_it_cannot_match() {
        let stops = vec!["END".to_string(), "</s>".to_string()];
        let (out, hit, text) = feed(&stops, &["a E", "Nx <", "/", "x"]);
        assert!(!hit);
        assert_eq!(out, ["a ", "ENx ", "", "</x", ""]);
        assert_eq!(text, "a ENx </x");
        // The row ending releases a held tail.
        let (out, hit, text) = feed(&stops, &["a EN"]);
        assert!(!hit);
        assert_eq!(out, ["a ", "EN"]);
        assert_eq!(text, "a EN");
    }

    #[test]
    fn the_earliest_stop_string_wins_and_multibyte_text_is_cut_on_boundaries() {
        let stops = vec!["éé".to_string(), "b".to_string()];
        let (out, hit, text) = feed(&stops, &["xé", "é b"]);
        assert!(hit);
        assert_eq!(out, ["x", ""]);
        assert_eq!(text, "x");
        let (out, _, text) = feed(&[], &["ab", "c"]);
        assert_eq!(out, ["ab", "c", ""]);
        assert_eq!(text, "abc");
    }
}

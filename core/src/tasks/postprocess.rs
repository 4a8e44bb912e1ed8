//! Turning a generated cell sentence back into a gene list.
//!
//! - [`PostProcess::Compat`] is the package's `post_process_generated_cell_sentences`: words
//!   upper-cased and split on single spaces, unknown words replaced by [`PLACEHOLDER`] (the
//!   response's final "." makes the last gene unknown), then each repeated gene moved to the
//!   mean of its positions in the list as it stands at that moment.
//! - [`PostProcess::Clean`] first drops the final ".", splits on any whitespace, drops unknown
//!   words instead of keeping a placeholder, then moves repeated genes the same way.

use std::collections::HashMap;

/// The package's stand-in for a word that is not a gene.
pub const PLACEHOLDER: &str = "NOT_A_GENE";

/// Which post-processing to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostProcess {
    /// Strip the final ".", drop unknown words, merge repeats.
    #[default]
    Clean,
    /// Exactly as the `cell2sentence` 1.2.0 package.
    Compat,
}

impl std::str::FromStr for PostProcess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "clean" => Ok(Self::Clean),
            "compat" => Ok(Self::Compat),
            other => Err(format!(
                "unknown post-processing '{other}'; use clean or compat"
            )),
        }
    }
}

/// A generated sentence as genes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneList {
    /// Gene names in sentence order (with [`PLACEHOLDER`]s in compat mode).
    pub genes: Vec<String>,
    /// Words that were not genes.
    pub unknown: usize,
}

impl GeneList {
    /// The genes as a sentence, placeholders left out.
    pub fn sentence(&self) -> String {
        self.genes
            .iter()
            .filter(|g| g.as_str() != PLACEHOLDER)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The genes a sentence may name: upper-cased gene names, as sentences spell them.
#[derive(Debug, Clone, Default)]
pub struct GeneVocab {
    index: HashMap<String, usize>,
}

impl GeneVocab {
    /// The vocabulary of a matrix whose columns are `genes` (names upper-cased; for repeated
    /// names the first column wins).
    pub fn new(genes: &[String]) -> Self {
        let mut index = HashMap::with_capacity(genes.len());
        for (i, g) in genes.iter().enumerate() {
            index.entry(g.to_uppercase()).or_insert(i);
        }
        Self { index }
    }

    /// The column of an (upper-cased) gene name.
    pub fn column(&self, gene: &str) -> Option<usize> {
        self.index.get(gene).copied()
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no genes.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// Post-processes one generated sentence.
pub fn post_process(text: &str, vocab: &GeneVocab, mode: PostProcess) -> GeneList {
    let upper = text.to_uppercase();
    let (words, unknown) = match mode {
        PostProcess::Compat => {
            let words: Vec<String> = upper
                .split(' ')
                .map(|w| {
                    if vocab.column(w).is_some() {
                        w.to_string()
                    } else {
                        PLACEHOLDER.to_string()
                    }
                })
                .collect();
            let unknown = words.iter().filter(|w| *w == PLACEHOLDER).count();
            (words, unknown)
        }
        PostProcess::Clean => {
            let trimmed = upper.trim();
            let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
            let all: Vec<&str> = trimmed.split_whitespace().collect();
            let words: Vec<String> = all
                .iter()
                .filter(|w| vocab.column(w).is_some())
                .map(|w| w.to_string())
                .collect();
            let unknown = all.len() - words.len();
            (words, unknown)
        }
    };
    GeneList {
        genes: merge_repeats(words),
        unknown,
    }
}

/// Moves every repeated gene (not the placeholder) to the floor of the mean of its positions,
/// in order of first occurrence, each time in the list as already rearranged.
fn merge_repeats(mut words: Vec<String>) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for w in &words {
        let c = counts.entry(w.as_str()).or_insert(0);
        if *c == 0 {
            order.push(w.clone());
        }
        *c += 1;
    }
    let repeated: Vec<String> = order
        .into_iter()
        .filter(|g| g != PLACEHOLDER && counts[g.as_str()] > 1)
        .collect();
    for gene in repeated {
        let positions: Vec<usize> = words
            .iter()
            .enumerate()
            .filter(|(_, w)| **w == gene)
            .map(|(i, _)| i)
            .collect();
        let mean = positions.iter().sum::<usize>() / positions.len();
        words.retain(|w| *w != gene);
        let at = mean.min(words.len());
        words.insert(at, gene);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> GeneVocab {
        GeneVocab::new(&["CD3E", "IL7R", "MALAT1", "B2M"].map(String::from))
    }

    #[test]
    fn compat_matches_the_packages_example() {
        // The worked example of the reference notes (§6).
        let out = post_process(
            "MALAT1 cd3e FOO B2M CD3E IL7R.",
            &vocab(),
            PostProcess::Compat,
        );
        assert_eq!(
            out.genes,
            ["MALAT1", PLACEHOLDER, "CD3E", "B2M", PLACEHOLDER]
        );
        assert_eq!(out.unknown, 2);
        assert_eq!(out.sentence(), "MALAT1 CD3E B2M");
    }

    #[test]
    fn clean_keeps_the_last_gene_and_drops_unknown_words() {
        let out = post_process(
            "MALAT1 cd3e FOO B2M CD3E IL7R.",
            &vocab(),
            PostProcess::Clean,
        );
        assert_eq!(out.genes, ["MALAT1", "B2M", "CD3E", "IL7R"]);
        assert_eq!(out.unknown, 1);
        let empty = post_process("", &vocab(), PostProcess::Clean);
        assert!(empty.genes.is_empty());
    }

    #[test]
    fn repeats_move_in_first_occurrence_order() {
        // B2M (positions 0, 2, 4 → 2) moves first, then MALAT1 in the rearranged list.
        let out = post_process(
            "B2M MALAT1 B2M IL7R B2M MALAT1",
            &vocab(),
            PostProcess::Clean,
        );
        // → [MALAT1, IL7R, B2M, MALAT1]; MALAT1 (0, 3 → 1) → [IL7R, MALAT1, B2M].
        assert_eq!(out.genes, ["IL7R", "MALAT1", "B2M"]);
    }

    #[test]
    fn compat_and_reconstruction_equal_the_package_on_fixture_cases() {
        // Made by tools/sentences/make_prompt_fixtures.py with cell2sentence 1.2.0.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let text = std::fs::read_to_string(dir.join("prompts/postprocess.json")).unwrap();
        let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vocab_text =
            std::fs::read_to_string(dir.join("sentences/pbmc68k_raw_vocab.tsv")).unwrap();
        let genes: Vec<String> = vocab_text
            .lines()
            .skip(1)
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        let vocab = GeneVocab::new(&genes);
        let fit = crate::inverse::InverseFit {
            slope: fixture["slope"].as_f64().unwrap(),
            intercept: fixture["intercept"].as_f64().unwrap(),
            r2: 0.0,
            pearson: 0.0,
            spearman: 0.0,
            log_base: None,
            n_cells: 0,
            n_points: 0,
        };
        let cases = fixture["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 40);
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let out = post_process(text, &vocab, PostProcess::Compat);
            let expected: Vec<&str> = case["compat_genes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap())
                .collect();
            assert_eq!(out.genes, expected, "{text}");
            assert_eq!(
                out.unknown as u64,
                case["compat_replaced"].as_u64().unwrap()
            );
            // The tutorial's join, then the package's reconstruction.
            let joined = out.genes.join(" ").replace(" NOT_A_GENE", "");
            assert_eq!(joined, case["tutorial_sentence"].as_str().unwrap());
            let values = crate::inverse::reconstruct(&joined, &genes, &fit);
            let expected = case["expression"].as_object().unwrap();
            let nonzero = values.iter().filter(|v| **v != 0.0).count();
            assert_eq!(nonzero, expected.len(), "{text}");
            for (gene, value) in expected {
                let j = vocab.column(gene).unwrap();
                assert!(
                    (f64::from(values[j]) - value.as_f64().unwrap()).abs() < 1e-5,
                    "{gene}: {} vs {value}",
                    values[j]
                );
            }
        }
    }
}

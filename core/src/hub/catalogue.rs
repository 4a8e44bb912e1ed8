//! The published C2S checkpoints, for the app to offer new users.

/// One published checkpoint on the Hugging Face hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// The hub id (`org/name`), as [`super::download_model`] takes it.
    pub id: &'static str,
    /// The model family the engine runs it as.
    pub architecture: &'static str,
    /// The approximate number of parameters.
    pub parameters: u64,
    /// The licence, as the model card gives it.
    pub licence: &'static str,
    /// What it was trained to do, in one line.
    pub description: &'static str,
}

/// The published C2S checkpoints, smallest first within each family.
pub const CATALOGUE: [CatalogueEntry; 7] = [
    CatalogueEntry {
        id: "vandijklab/pythia-160m-c2s",
        architecture: "GPT-NeoX (Pythia)",
        parameters: 160_000_000,
        licence: "see the model card",
        description: "The first, small C2S model: cell type prediction and cell generation; \
                      quickest to try on a laptop.",
    },
    CatalogueEntry {
        id: "vandijklab/C2S-Pythia-410m-cell-type-prediction",
        architecture: "GPT-NeoX (Pythia)",
        parameters: 410_000_000,
        licence: "see the model card",
        description: "Predicts a cell's type from its cell sentence.",
    },
    CatalogueEntry {
        id: "vandijklab/C2S-Pythia-410m-cell-type-conditioned-cell-generation",
        architecture: "GPT-NeoX (Pythia)",
        parameters: 410_000_000,
        licence: "cc-by-nc-nd-4.0",
        description: "Generates cell sentences of a given cell type.",
    },
    CatalogueEntry {
        id: "vandijklab/C2S-Pythia-410m-diverse-single-and-multi-cell-tasks",
        architecture: "GPT-NeoX (Pythia)",
        parameters: 410_000_000,
        licence: "see the model card",
        description: "Many single- and multi-cell tasks: cell type prediction, generation, \
                      tissue and abstract-level tasks.",
    },
    CatalogueEntry {
        id: "vandijklab/C2S-Scale-Pythia-1b-pt",
        architecture: "GPT-NeoX (Pythia)",
        parameters: 1_000_000_000,
        licence: "see the model card",
        description: "C2S-Scale pretrained model: a base for fine-tuning on your own tasks.",
    },
    CatalogueEntry {
        id: "vandijklab/C2S-Scale-Gemma-2-2B",
        architecture: "Gemma-2",
        parameters: 2_000_000_000,
        licence: "Gemma licence",
        description: "C2S-Scale on Gemma-2: cell type prediction, generation and biological \
                      questions in natural language.",
    },
    CatalogueEntry {
        id: "vandijklab/C2S-Scale-Gemma-2-27B",
        architecture: "Gemma-2",
        parameters: 27_000_000_000,
        licence: "Gemma licence",
        description: "The largest C2S-Scale model (about 54 GB of bf16 weights): needs a large \
                      GPU.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_ids_are_unique_hub_ids() {
        let mut ids: Vec<&str> = CATALOGUE.iter().map(|e| e.id).collect();
        for e in &CATALOGUE {
            assert!(e.id.starts_with("vandijklab/"), "{}", e.id);
            assert_eq!(e.id.matches('/').count(), 1, "{}", e.id);
            assert!(e.parameters > 0 && !e.description.is_empty() && !e.licence.is_empty());
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CATALOGUE.len());
    }
}

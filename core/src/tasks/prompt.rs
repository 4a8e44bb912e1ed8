//! Building a task's prompts from cell sentences, as the `cell2sentence` package's
//! `C2SPromptFormatter` and `C2SMultiCellPromptFormatter` do: the top `k` words of each
//! sentence, `num_genes` as the requested `k` (not the cell's own count), one template variant
//! per example, and the multi-cell block `"Cell {i}:\n{sentence}.\n"`.

use std::collections::BTreeMap;

use super::Task;
use super::template::{PromptTemplate, TemplateChoice, TemplateError, TemplatePicker, fill};

/// Everything that shapes a task's prompts apart from the cells.
#[derive(Debug, Clone)]
pub struct PromptSettings {
    /// The task (decides which placeholders are filled).
    pub task: Task,
    /// The template (built-in or a user's file).
    pub template: PromptTemplate,
    /// Which variant each example gets.
    pub choice: TemplateChoice,
    /// Seed of [`TemplateChoice::Seeded`].
    pub seed: u64,
    /// Genes kept per cell sentence (`num_genes` in the prompt).
    pub top_k: usize,
    /// `organism` in the prompt, e.g. "Homo sapiens".
    pub organism: String,
}

/// One built example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The text the model reads.
    pub model_input: String,
    /// The expected answer, when the example's answer fields were given (else empty).
    pub response: String,
    /// Which model-input variant was used.
    pub variant: usize,
}

/// Builds prompts in order, drawing template variants as the settings say.
#[derive(Debug, Clone)]
pub struct PromptBuilder {
    settings: PromptSettings,
    picker: TemplatePicker,
}

impl PromptBuilder {
    /// A builder; fails when the template uses placeholders the task does not fill or when
    /// `top_k` is 0.
    pub fn new(settings: PromptSettings) -> Result<Self, TemplateError> {
        settings.task.check(&settings.template)?;
        if settings.top_k == 0 {
            return Err(TemplateError::Invalid {
                what: "prompt settings".into(),
                message: "the number of genes per cell must be at least 1".into(),
            });
        }
        let picker = TemplatePicker::new(settings.choice, settings.seed);
        Ok(Self { settings, picker })
    }

    /// The settings.
    pub fn settings(&self) -> &PromptSettings {
        &self.settings
    }

    /// A single-cell example (cell-type prediction, perturbation prediction, or a generation
    /// prompt with no cell): `sentence` is cut to the top `k` words and fills `cell_sentence`
    /// (or `control_cell_sentence`); `fields` holds the task's other values (`cell_type`,
    /// `perturbation_name`, ...). `key` (a cell id) keys the seeded variant choice.
    pub fn single(
        &mut self,
        key: &str,
        sentence: Option<&str>,
        fields: &BTreeMap<&str, &str>,
    ) -> Result<Prompt, TemplateError> {
        let top = sentence.map(|s| top_k_words(s, self.settings.top_k));
        let sentence_key = match self.settings.task {
            Task::PerturbationPrediction | Task::PerturbationDelta => "control_cell_sentence",
            _ => "cell_sentence",
        };
        let mut values = fields.clone();
        if let Some(top) = &top {
            values.insert(sentence_key, top);
        }
        self.build(key, &values, None)
    }

    /// A multi-cell example (tissue prediction, interpretation, question): the sentences form
    /// the block `"Cell 1:\n...\n"` that fills `multi_cell_sentences`, and `num_cells` is their
    /// count.
    pub fn multi(
        &mut self,
        key: &str,
        sentences: &[&str],
        fields: &BTreeMap<&str, &str>,
    ) -> Result<Prompt, TemplateError> {
        let block = multi_cell_block(sentences, self.settings.top_k);
        let mut values = fields.clone();
        values.insert("multi_cell_sentences", &block);
        self.build(key, &values, Some(sentences.len()))
    }

    fn build(
        &mut self,
        key: &str,
        fields: &BTreeMap<&str, &str>,
        num_cells: Option<usize>,
    ) -> Result<Prompt, TemplateError> {
        let num_genes = self.settings.top_k.to_string();
        let cells = num_cells.map(|n| n.to_string());
        let organism = self.settings.organism.clone();
        let mut values: BTreeMap<&str, &str> = fields.clone();
        values.insert("num_genes", &num_genes);
        values.insert("organism", &organism);
        if let Some(cells) = &cells {
            values.insert("num_cells", cells);
        }
        let variants = &self.settings.template.model_input;
        let variant = self.picker.pick(variants.len(), key_hash(key));
        let model_input = fill(&variants[variant], &values)?;
        let response = match fill(&self.settings.template.response[0], &values) {
            Ok(text) => text,
            Err(TemplateError::Missing(_)) => String::new(),
            Err(e) => return Err(e),
        };
        Ok(Prompt {
            model_input,
            response,
            variant,
        })
    }
}

/// The first `k` space-separated words of `sentence` (the package's `split(" ")[:k]`).
pub fn top_k_words(sentence: &str, k: usize) -> String {
    let mut out = String::with_capacity(sentence.len().min(k * 8));
    for (i, word) in sentence.split(' ').take(k).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The package's multi-cell block: `"Cell {i}:\n{top-k words}.\n"` for i = 1, 2, ...
pub fn multi_cell_block(sentences: &[&str], k: usize) -> String {
    let mut out = String::new();
    for (i, s) in sentences.iter().enumerate() {
        out.push_str(&format!("Cell {}:\n{}.\n", i + 1, top_k_words(s, k)));
    }
    out
}

/// A stable 64-bit FNV-1a hash of an example key.
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(task: Task, choice: TemplateChoice) -> PromptSettings {
        PromptSettings {
            task,
            template: task.builtin_template(),
            choice,
            seed: 0,
            top_k: 3,
            organism: "Homo sapiens".into(),
        }
    }

    #[test]
    fn single_cell_prompts_cut_the_sentence_and_fill_the_answer() {
        let mut b =
            PromptBuilder::new(settings(Task::CellTypePrediction, TemplateChoice::First)).unwrap();
        let fields = BTreeMap::from([("cell_type", "B cell")]);
        let p = b
            .single("c1", Some("MS4A1 CD79A CD74 B2M"), &fields)
            .unwrap();
        assert!(
            p.model_input.contains("MS4A1 CD79A CD74."),
            "{}",
            p.model_input
        );
        assert!(!p.model_input.contains("B2M"));
        assert!(
            p.model_input.contains(" 3 "),
            "num_genes is the requested k"
        );
        assert_eq!(p.response, "B cell.");
        // Without the answer field the response is empty (inference).
        let p = b.single("c1", Some("MS4A1"), &BTreeMap::new()).unwrap();
        assert_eq!(p.response, "");
        assert!(p.model_input.contains("MS4A1."));
    }

    #[test]
    fn multi_cell_block_matches_the_package() {
        assert_eq!(
            multi_cell_block(&["A B C", "D"], 2),
            "Cell 1:\nA B.\nCell 2:\nD.\n"
        );
        let mut b =
            PromptBuilder::new(settings(Task::TissuePrediction, TemplateChoice::First)).unwrap();
        let p = b.multi("g", &["A B C", "D"], &BTreeMap::new()).unwrap();
        assert!(p.model_input.contains("Cell 1:\nA B C.\nCell 2:\nD.\n"));
        assert!(p.model_input.contains(" 2 "), "num_cells");
    }

    #[test]
    fn top_k_splits_on_single_spaces_like_python() {
        assert_eq!(top_k_words("A  B C", 2), "A ");
        assert_eq!(top_k_words("", 5), "");
        assert_eq!(top_k_words("A B", 5), "A B");
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut s = settings(Task::CellTypePrediction, TemplateChoice::First);
        s.top_k = 0;
        assert!(PromptBuilder::new(s).is_err());
        let mut s = settings(Task::CellTypePrediction, TemplateChoice::First);
        s.template = Task::TissuePrediction.builtin_template();
        assert!(
            PromptBuilder::new(s).is_err(),
            "a tissue template is not a cell-type one"
        );
    }
}

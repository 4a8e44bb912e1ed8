//! Cell-type prompts for cells of an open dataset, shared by the model panels (annotate, embed):
//! sentences with the seeded tie-break, as the explorer's hover shows them.

use std::collections::BTreeMap;
use std::path::Path;

use c2s_core::dataset::Dataset;
use c2s_core::sentence::CellSentencer;
use c2s_core::tasks::Task;
use c2s_core::tasks::prompt::{PromptBuilder, PromptSettings};
use c2s_core::tasks::template::{PromptTemplate, TemplateChoice};

/// Cell-type-prediction prompt settings: the built-in template, or `template_file` when given.
pub fn cell_type_settings(
    template_file: &str,
    top_k: usize,
    organism: &str,
) -> Result<PromptSettings, String> {
    let template = match template_file.trim() {
        "" => Task::CellTypePrediction.builtin_template(),
        path => PromptTemplate::from_file(Path::new(path)).map_err(|e| e.to_string())?,
    };
    let settings = PromptSettings {
        task: Task::CellTypePrediction,
        template,
        choice: TemplateChoice::First,
        seed: 0,
        top_k,
        organism: organism.trim().to_string(),
    };
    PromptBuilder::new(settings.clone()).map_err(|e| e.to_string())?;
    Ok(settings)
}

/// The cell sentences (top `top_k` genes, seeded tie-break) of `rows`, and how many of those
/// cells express no gene.
pub fn cell_sentences(dataset: &Dataset, rows: &[usize], top_k: usize) -> (Vec<String>, usize) {
    let sentencer = CellSentencer::new(&dataset.var_names);
    let sentences: Vec<String> = rows
        .iter()
        .map(|&r| {
            sentencer.sentence(
                &dataset.expression,
                r,
                &dataset.obs_names[r],
                0,
                Some(top_k),
            )
        })
        .collect();
    let empty = sentences.iter().filter(|s| s.is_empty()).count();
    (sentences, empty)
}

/// The prompts of `rows`, and how many of those cells express no gene.
pub fn cell_type_prompts(
    dataset: &Dataset,
    rows: &[usize],
    settings: &PromptSettings,
) -> Result<(Vec<String>, usize), String> {
    let (sentences, empty) = cell_sentences(dataset, rows, settings.top_k);
    let mut builder = PromptBuilder::new(settings.clone()).map_err(|e| e.to_string())?;
    let prompts = rows
        .iter()
        .zip(&sentences)
        .map(|(&r, sentence)| {
            builder
                .single(&dataset.obs_names[r], Some(sentence), &BTreeMap::new())
                .map(|p| p.model_input)
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((prompts, empty))
}

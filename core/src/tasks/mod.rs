//! C2S tasks: what a model is asked about cells, and how the prompts are built.
//!
//! Each task has a template in the `cell2sentence` package's JSON format ([`template`]); the
//! built-in ones are ours (`resources/prompts/`, one file per task), and a user's file in that
//! format replaces them.

pub mod annotate;
pub mod delta;
pub mod embed;
pub mod generate;
pub mod perturb;
pub mod postprocess;
pub mod prompt;
pub mod real_cells;
pub mod sample;
pub mod template;

use template::{PromptTemplate, TemplateError};

/// A C2S task, named as the `cell2sentence` package names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// A cell's sentence → its cell type.
    CellTypePrediction,
    /// A cell type → a cell sentence.
    CellTypeGeneration,
    /// Several cells' sentences → their tissue.
    TissuePrediction,
    /// A tissue → several cells' sentences.
    TissueConditionalGeneration,
    /// Several cells' sentences → prose about them.
    NaturalLanguageInterpretation,
    /// A control cell's sentence and a perturbation → the perturbed cell's sentence.
    PerturbationPrediction,
    /// A control cell's sentence and a perturbation → the genes that rise and fall most, a
    /// delta sentence ([`delta`]); ours, not the package's.
    PerturbationDelta,
    /// Several cells' sentences and a question → an answer.
    Question,
}

impl Task {
    /// Every task.
    pub const ALL: [Task; 8] = [
        Task::CellTypePrediction,
        Task::CellTypeGeneration,
        Task::TissuePrediction,
        Task::TissueConditionalGeneration,
        Task::NaturalLanguageInterpretation,
        Task::PerturbationPrediction,
        Task::PerturbationDelta,
        Task::Question,
    ];

    /// The name the package (and our CLI) uses.
    pub fn name(self) -> &'static str {
        match self {
            Task::CellTypePrediction => "cell_type_prediction",
            Task::CellTypeGeneration => "cell_type_generation",
            Task::TissuePrediction => "tissue_prediction",
            Task::TissueConditionalGeneration => "tissue_conditional_generation",
            Task::NaturalLanguageInterpretation => "natural_language_interpretation",
            Task::PerturbationPrediction => "perturbation_prediction",
            Task::PerturbationDelta => "perturbation_delta",
            Task::Question => "question",
        }
    }

    /// Our built-in template for this task.
    pub fn builtin_template(self) -> PromptTemplate {
        let text = match self {
            Task::CellTypePrediction => {
                include_str!("../../../resources/prompts/cell_type_prediction.json")
            }
            Task::CellTypeGeneration => {
                include_str!("../../../resources/prompts/cell_type_generation.json")
            }
            Task::TissuePrediction => {
                include_str!("../../../resources/prompts/tissue_prediction.json")
            }
            Task::TissueConditionalGeneration => {
                include_str!("../../../resources/prompts/tissue_conditional_generation.json")
            }
            Task::NaturalLanguageInterpretation => {
                include_str!("../../../resources/prompts/natural_language_interpretation.json")
            }
            Task::PerturbationPrediction => {
                include_str!("../../../resources/prompts/perturbation_prediction.json")
            }
            Task::PerturbationDelta => {
                include_str!("../../../resources/prompts/perturbation_delta.json")
            }
            Task::Question => include_str!("../../../resources/prompts/question.json"),
        };
        PromptTemplate::from_json(text, self.name()).unwrap_or_else(|e| {
            unreachable!(
                "built-in template {} is checked by a test: {e}",
                self.name()
            )
        })
    }

    /// The placeholders this task fills in the model input and the response.
    pub fn keys(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Task::CellTypePrediction => {
                (&["num_genes", "organism", "cell_sentence"], &["cell_type"])
            }
            Task::CellTypeGeneration => {
                (&["num_genes", "organism", "cell_type"], &["cell_sentence"])
            }
            Task::TissuePrediction => (
                &["num_genes", "num_cells", "organism", "multi_cell_sentences"],
                &["tissue"],
            ),
            Task::TissueConditionalGeneration => (
                &["num_genes", "num_cells", "organism", "tissue"],
                &["multi_cell_sentences"],
            ),
            Task::NaturalLanguageInterpretation => (
                &["num_genes", "num_cells", "organism", "multi_cell_sentences"],
                &["abstract"],
            ),
            Task::PerturbationPrediction => (
                &["num_genes", "perturbation_name", "control_cell_sentence"],
                &["perturbed_cell_sentence"],
            ),
            Task::PerturbationDelta => (
                &["num_genes", "perturbation_name", "control_cell_sentence"],
                &["delta_sentence"],
            ),
            Task::Question => (
                &[
                    "num_genes",
                    "num_cells",
                    "organism",
                    "multi_cell_sentences",
                    "question",
                ],
                &["answer"],
            ),
        }
    }

    /// Checks that `template` uses only placeholders this task fills.
    pub fn check(self, template: &PromptTemplate) -> Result<(), TemplateError> {
        let (inputs, responses) = self.keys();
        let check = |texts: &[String], known: &[&str]| -> Result<(), TemplateError> {
            for text in texts {
                let names =
                    template::placeholders(text).map_err(|message| TemplateError::Invalid {
                        what: self.name().into(),
                        message,
                    })?;
                if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
                    return Err(TemplateError::Missing(unknown.clone()));
                }
            }
            Ok(())
        };
        check(&template.model_input, inputs)?;
        check(&template.response, responses)
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
                format!("unknown task '{s}'; use one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_loads_and_uses_only_its_tasks_keys() {
        for task in Task::ALL {
            let t = task.builtin_template();
            task.check(&t).unwrap();
            assert_eq!(t.response.len(), 1, "{}", task.name());
            assert_eq!(task.name().parse::<Task>().unwrap(), task);
        }
        assert!("cell_typing".parse::<Task>().is_err());
    }
}

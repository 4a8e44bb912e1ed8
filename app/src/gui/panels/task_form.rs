//! Pieces of the forms of the model task tabs (Generate cells, Perturb): labelled rows, the
//! template choice, the "no model yet" notice and the run / cancel row.

use std::ops::RangeInclusive;
use std::path::Path;

use c2s_core::tasks::Task;
use c2s_core::tasks::template::PromptTemplate;
use egui::Ui;

use super::PanelContext;
use crate::gui::actions::Action;
use crate::gui::jobs::JobHandle;

/// A grid row: `label`, then a slider over `range`.
pub fn slider_row(ui: &mut Ui, label: &str, value: &mut f32, range: RangeInclusive<f32>) {
    let label = ui.label(label);
    ui.add(egui::Slider::new(value, range))
        .labelled_by(label.id);
    ui.end_row();
}

/// A grid row: `label`, then a number field over `range`.
pub fn number_row<N: egui::emath::Numeric>(
    ui: &mut Ui,
    label: &str,
    value: &mut N,
    range: RangeInclusive<N>,
) {
    let label = ui.label(label);
    ui.add(egui::DragValue::new(value).range(range))
        .labelled_by(label.id);
    ui.end_row();
}

/// A grid row: the template file field, showing `hint` while empty (the built-in template).
pub fn template_row(ui: &mut Ui, path: &mut String, hint: &str) {
    let label = ui.label("Template file");
    ui.add(
        egui::TextEdit::singleline(path)
            .hint_text(hint)
            .desired_width(260.0),
    )
    .labelled_by(label.id);
    ui.end_row();
}

/// The template of `task`: the built-in one, or the file at `path` when one is named.
pub fn template_for(task: Task, path: &str) -> Result<PromptTemplate, String> {
    match path.trim() {
        "" => Ok(task.builtin_template()),
        path => PromptTemplate::from_file(Path::new(path)).map_err(|e| e.to_string()),
    }
}

/// The names in a comma-separated list, trimmed, blanks left out.
pub fn split_names(text: &str) -> Vec<String> {
    text.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Says that a model must be loaded first (with a way to the Model tab) when none is; returns
/// whether one is.
pub fn model_loaded(ui: &mut Ui, cx: &mut PanelContext<'_>) -> bool {
    if !cx.models.models().is_empty() {
        return true;
    }
    ui.label("No model is loaded: load one in the Model tab.");
    if ui.button("Open the Model tab").clicked() {
        cx.actions.push(Action::OpenPanel("model"));
    }
    false
}

/// While `running` is some: a spinner, `busy` and a Cancel button; otherwise the `start`
/// button. Returns whether the start button was clicked.
pub fn run_row<O, P>(
    ui: &mut Ui,
    running: Option<&JobHandle<O, P>>,
    busy: &str,
    start: &str,
) -> bool {
    ui.horizontal(|ui| match running {
        Some(job) => {
            ui.spinner();
            ui.label(busy);
            if ui.button("Cancel").clicked() {
                job.cancel();
            }
            false
        }
        None => ui.button(start).clicked(),
    })
    .inner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_on_commas_and_trimmed() {
        assert_eq!(
            split_names(" B cell, ,CD14+ Mono ,"),
            ["B cell", "CD14+ Mono"]
        );
        assert!(split_names(" , ").is_empty());
    }
}

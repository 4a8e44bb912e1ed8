//! Choosing one of the loaded models, shared by the panels that run a model.

use egui::Ui;

use crate::gui::models::{LoadedModel, ModelRegistry};

/// Keeps `choice` on a loaded model: the newest one when nothing is chosen or the chosen model
/// was unloaded.
pub fn keep_loaded(choice: &mut Option<u64>, models: &ModelRegistry) {
    if choice.is_none_or(|id| models.get(id).is_none()) {
        *choice = models.models().last().map(|m| m.id);
    }
}

/// A drop-down of the loaded models.
pub fn model_combo(ui: &mut Ui, id_salt: &str, choice: &mut Option<u64>, models: &ModelRegistry) {
    let selected = choice
        .and_then(|id| models.get(id))
        .map(|m| m.name())
        .unwrap_or_default();
    egui::ComboBox::from_id_salt(id_salt)
        .selected_text(selected)
        .show_ui(ui, |ui| {
            for m in models.models() {
                ui.selectable_value(choice, Some(m.id), m.name());
            }
        });
}

/// The chosen loaded model (a copy of its handle), or the message to show when none is.
pub fn chosen_model(choice: Option<u64>, models: &ModelRegistry) -> Result<LoadedModel, String> {
    choice
        .and_then(|id| models.get(id))
        .cloned()
        .ok_or_else(|| "no model is loaded: load one in the Model tab".into())
}

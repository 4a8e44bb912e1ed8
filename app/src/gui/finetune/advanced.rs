//! The Fine-tune form's "Advanced" section: schedule and warmup, clipping, AdamW, which tokens
//! the loss counts, rsLoRA, an initial adapter, shuffling, checkpoint cadence, and full
//! fine-tuning instead of LoRA.

use std::path::PathBuf;

use c2s_core::kernels::WeightFormat;
use c2s_core::train::data::LossMode;
use c2s_core::train::optim::AdamW;
use c2s_core::train::schedule::Schedule;
use c2s_core::train::trainer::TrainSettings;
use egui::Ui;

use super::form::{float_cell, number_row_inline};

/// The settings most runs leave at their defaults (those of [`TrainSettings::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AdvancedSettings {
    /// Learning-rate decay after warmup.
    pub schedule: Schedule,
    /// Warmup as a fraction of the steps.
    pub warmup: f64,
    /// Clip the global gradient norm.
    pub clip: bool,
    /// The norm it is clipped to.
    pub max_grad_norm: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW's `β₁`.
    pub beta1: f64,
    /// AdamW's `β₂`.
    pub beta2: f64,
    /// AdamW's `ε`.
    pub eps: f64,
    /// Loss on every token (else on the response and the end-of-text token).
    pub whole_text: bool,
    /// rsLoRA scaling (`alpha / √r`).
    pub rslora: bool,
    /// A peft adapter folder to start from (empty: peft's initialisation); its rank, alpha and
    /// targets replace the form's.
    pub init_adapter: String,
    /// Shuffle the training examples every epoch.
    pub shuffle: bool,
    /// Checkpoint every N steps (0: only at the end, or on pause and cancel).
    pub save_every: usize,
    /// Checkpoints kept besides the best.
    pub keep: usize,
    /// Train every weight instead of a LoRA adapter (small models); the run writes a full
    /// checkpoint.
    pub full: bool,
    /// Hold LoRA's frozen base weights in 8 bits on the CPU (faster, approximate).
    pub q8_frozen: bool,
}

impl Default for AdvancedSettings {
    fn default() -> Self {
        let adamw = AdamW::default();
        Self {
            schedule: Schedule::Linear,
            warmup: 0.0,
            clip: true,
            max_grad_norm: 1.0,
            weight_decay: adamw.weight_decay,
            beta1: adamw.beta1,
            beta2: adamw.beta2,
            eps: adamw.eps,
            whole_text: false,
            rslora: false,
            init_adapter: String::new(),
            shuffle: true,
            save_every: 0,
            keep: 2,
            full: false,
            q8_frozen: false,
        }
    }
}

impl AdvancedSettings {
    /// Writes these values into `s`.
    pub(super) fn apply(&self, s: &mut TrainSettings) {
        s.schedule = self.schedule;
        s.warmup = self.warmup;
        s.max_grad_norm = self.clip.then_some(self.max_grad_norm);
        s.adamw = AdamW {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        };
        s.loss = if self.whole_text {
            LossMode::WholeText
        } else {
            LossMode::Response
        };
        s.lora.use_rslora = self.rslora;
        s.init_adapter = self.init_path();
        s.shuffle = self.shuffle;
        s.save_every = self.save_every;
        s.keep = self.keep;
        s.full = self.full;
        s.frozen_format = if self.q8_frozen {
            WeightFormat::Q8
        } else {
            WeightFormat::F32
        };
    }

    /// The initial adapter's folder, if one is named.
    pub(super) fn init_path(&self) -> Option<PathBuf> {
        Some(self.init_adapter.trim())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    /// Draws the section.
    pub(super) fn ui(&mut self, ui: &mut Ui) {
        egui::Grid::new("finetune-advanced-grid")
            .num_columns(4)
            .show(ui, |ui| {
                let label = ui.label("Schedule");
                egui::ComboBox::from_id_salt("finetune-schedule")
                    .selected_text(schedule_name(self.schedule))
                    .show_ui(ui, |ui| {
                        for s in [Schedule::Constant, Schedule::Linear, Schedule::Cosine] {
                            ui.selectable_value(&mut self.schedule, s, schedule_name(s));
                        }
                    })
                    .response
                    .labelled_by(label.id);
                float_cell(ui, "Warmup fraction", &mut self.warmup, 0.01, 0.0..=0.99);
                ui.end_row();
                ui.checkbox(&mut self.clip, "Clip gradient norm");
                ui.add_enabled(
                    self.clip,
                    egui::DragValue::new(&mut self.max_grad_norm)
                        .speed(0.05)
                        .range(1e-3..=1e6),
                )
                .on_hover_text("the largest global gradient norm a step may take");
                float_cell(ui, "Weight decay", &mut self.weight_decay, 0.001, 0.0..=1.0);
                ui.end_row();
                float_cell(ui, "Adam β1", &mut self.beta1, 0.001, 0.0..=0.9999);
                float_cell(ui, "Adam β2", &mut self.beta2, 0.0001, 0.0..=0.99999);
                ui.end_row();
                let label = ui.label("Adam ε");
                ui.add(
                    egui::DragValue::new(&mut self.eps)
                        .speed(1e-9)
                        .range(1e-12..=1e-2)
                        .custom_formatter(|v, _| format!("{v:.0e}")),
                )
                .labelled_by(label.id);
                ui.checkbox(&mut self.whole_text, "Loss on the whole text")
                    .on_hover_text(
                        "count every token; by default only the response and the end-of-text \
                         token count, as the cell2sentence package trains",
                    );
                ui.checkbox(&mut self.rslora, "rsLoRA")
                    .on_hover_text("scale adapters by alpha / √rank instead of alpha / rank");
                ui.end_row();
                ui.checkbox(&mut self.shuffle, "Shuffle every epoch")
                    .on_hover_text("off: file order, each epoch from the first example again");
                ui.add_enabled(
                    !self.full,
                    egui::Checkbox::new(&mut self.q8_frozen, "8-bit frozen weights"),
                )
                .on_hover_text(
                    "hold the base model's frozen weights in 8 bits on the CPU: a quarter of \
                     their memory and faster steps, with approximate activations and gradients \
                     (the adapter still trains in f32)",
                );
                ui.checkbox(&mut self.full, "Full fine-tune").on_hover_text(
                    "train every weight instead of a LoRA adapter and write a full \
                         checkpoint; needs about 20 bytes of memory per parameter (small models)",
                );
                ui.end_row();
                number_row_inline(ui, "Checkpoint every", &mut self.save_every, 0..=1_000_000);
                number_row_inline(ui, "Checkpoints kept", &mut self.keep, 1..=100);
                ui.end_row();
            });
        ui.horizontal(|ui| {
            let label = ui.label("Initial adapter");
            ui.add(
                egui::TextEdit::singleline(&mut self.init_adapter)
                    .hint_text("a peft adapter folder to start from (optional)")
                    .desired_width(300.0),
            )
            .labelled_by(label.id)
            .on_hover_text("its rank, alpha and target modules replace the form's");
        });
    }
}

fn schedule_name(s: Schedule) -> &'static str {
    match s {
        Schedule::Constant => "constant",
        Schedule::Linear => "linear decay",
        Schedule::Cosine => "cosine decay",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2s_core::model::config::ModelConfig;

    fn defaults() -> TrainSettings {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models/gpt_neox_parallel/config.json");
        TrainSettings::new(&ModelConfig::from_file(&dir).unwrap())
    }

    #[test]
    fn the_defaults_are_the_trainers() {
        let mut s = defaults();
        AdvancedSettings::default().apply(&mut s);
        let d = defaults();
        assert_eq!(
            (s.schedule, s.warmup, s.max_grad_norm, s.adamw, s.loss),
            (d.schedule, d.warmup, d.max_grad_norm, d.adamw, d.loss)
        );
        assert_eq!(
            (
                s.lora,
                s.init_adapter,
                s.shuffle,
                s.save_every,
                s.keep,
                s.full
            ),
            (
                d.lora,
                d.init_adapter,
                d.shuffle,
                d.save_every,
                d.keep,
                d.full
            )
        );
    }

    #[test]
    fn every_value_reaches_the_settings() {
        let advanced = AdvancedSettings {
            schedule: Schedule::Cosine,
            warmup: 0.1,
            clip: false,
            max_grad_norm: 3.0,
            weight_decay: 0.01,
            beta1: 0.8,
            beta2: 0.95,
            eps: 1e-6,
            whole_text: true,
            rslora: true,
            init_adapter: "  runs/first  ".into(),
            shuffle: false,
            save_every: 50,
            keep: 4,
            full: true,
            q8_frozen: true,
        };
        let mut s = defaults();
        advanced.apply(&mut s);
        assert_eq!(s.schedule, Schedule::Cosine);
        assert_eq!(s.warmup, 0.1);
        assert_eq!(s.max_grad_norm, None, "clipping off");
        assert_eq!(
            s.adamw,
            AdamW {
                beta1: 0.8,
                beta2: 0.95,
                eps: 1e-6,
                weight_decay: 0.01
            }
        );
        assert_eq!(s.loss, LossMode::WholeText);
        assert!(s.lora.use_rslora);
        assert_eq!(s.init_adapter, Some(PathBuf::from("runs/first")));
        assert!(!s.shuffle);
        assert_eq!((s.save_every, s.keep), (50, 4));
        assert!(s.full);
        assert_eq!(s.frozen_format, WeightFormat::Q8);
    }
}

//! A finished run: load the base model with the new adapter (or the fully fine-tuned
//! checkpoint) into the app ("Use this adapter" / "Use this model"), and rank the labels of the
//! held-out cells with it ("Annotate held-out cells"): accuracy, the majority-class rate to
//! beat, and the confusion table.

use egui::Ui;

use super::adapter_load_options;
use super::form::Request;
use super::job::{HeldOut, HeldOutRequest, TrainDone, spawn_heldout};
use crate::gui::jobs::JobHandle;
use crate::gui::panels::PanelContext;
use crate::gui::panels::annotate::confusion_ui;
use c2s_core::train::cells::CellTask;

/// The run that finished and the request it ran.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The core's summary and the examples.
    pub done: &'a TrainDone,
    /// The request (base model, output folder, prompts).
    pub req: &'a Request,
}

/// Draws the actions on a finished run and the held-out result.
pub fn show(
    ui: &mut Ui,
    cx: &mut PanelContext<'_>,
    run: Finished<'_>,
    heldout: &mut Option<JobHandle<HeldOut>>,
    result: &Option<HeldOut>,
    error: &mut Option<String>,
) {
    let req = run.req;
    let full = req.form.advanced.full;
    // A full run's folder is a model of its own; a LoRA run's is an adapter on the base.
    let (source, adapter) = if full {
        (req.out.display().to_string(), None)
    } else {
        (req.model_source.clone(), Some(req.out.clone()))
    };
    ui.strong(format!(
        "{} in {}",
        if full { "Model" } else { "Adapter" },
        req.out.display()
    ));
    let loaded = cx.models.find(&source, adapter.as_deref()).cloned();
    let loading = cx
        .models
        .loading()
        .any(|(loading, _)| loading == source.trim());
    ui.horizontal(|ui| {
        match &loaded {
            Some(m) => {
                ui.label(format!("loaded as {}", m.name()));
            }
            None if loading => {
                ui.spinner();
                ui.label("loading…");
            }
            None => {
                let (label, hover) = if full {
                    (
                        "Use this model",
                        "load the fine-tuned model into the Model tab",
                    )
                } else {
                    (
                        "Use this adapter",
                        "load the base model with this adapter into the Model tab",
                    )
                };
                if ui.button(label).on_hover_text(hover).clicked() {
                    cx.models.start_load_with_adapter(
                        cx.jobs,
                        &source,
                        adapter.clone(),
                        adapter_load_options(req),
                    );
                }
            }
        }
        let rankable = matches!(req.task, CellTask::CellType { .. });
        let busy = heldout.is_some();
        if ui
            .add_enabled(
                rankable && !busy,
                egui::Button::new("Annotate held-out cells"),
            )
            .on_disabled_hover_text(if rankable {
                "running…"
            } else {
                "only for the cell type task: its labels are the candidates"
            })
            .clicked()
        {
            *error = None;
            *heldout = Some(spawn_heldout(
                cx.jobs,
                HeldOutRequest {
                    engine: loaded.map(|m| m.engine.clone()),
                    model_dir: if full {
                        req.out.clone()
                    } else {
                        req.model_dir.clone()
                    },
                    adapter,
                    out: req.out.clone(),
                    options: adapter_load_options(req),
                    built: run.done.built.clone(),
                    response: req.prompts.template.response[0].clone(),
                    top_k: req.prompts.top_k,
                },
            ));
        }
        if busy {
            ui.spinner();
        }
    });
    if let Some(h) = result {
        ui.label(format!(
            "majority-class rate: always answering `{}` (the most common training label) would \
             be right for {:.1} % of the {} held-out cells",
            h.majority,
            100.0 * h.majority_rate,
            h.confusion.total
        ));
        egui::ScrollArea::horizontal()
            .id_salt("finetune-confusion")
            .show(ui, |ui| confusion_ui(ui, "the true labels", &h.confusion));
    }
}

//! The Model embedding tab: embed every cell of the active dataset with a loaded C2S model
//! (mean of the final hidden states over each cell's prompt, or the `cell2sentence` package's
//! pad-inclusive batch mean) into obsm `X_c2s`, then lay out a UMAP of model space
//! (`X_c2s_umap`) that joins the embedding chooser and is shown at once.
//!
//! The work is one accelerator-lane job owned by the dataset's view (closing the view cancels
//! it); its result is applied by the view like a computed embedding.

use std::sync::Arc;

use c2s_core::dataset::{Dataset, Embedding};
use c2s_core::embed::{UmapOptions, umap_of};
use c2s_core::engine::Engine;
use c2s_core::tasks::embed::{EmbedPooling, embed_cells};
use c2s_core::tasks::prompt::PromptSettings;
use egui::Ui;

use super::cell_prompts::{cell_type_prompts, cell_type_settings};
use super::model_choice::{chosen_model, keep_loaded, model_combo};
use super::{Panel, PanelContext};
use crate::gui::actions::Action;
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// Name of the model embedding in `obsm`.
pub const MODEL_EMBEDDING: &str = "X_c2s";
/// Name of its UMAP in `obsm`.
pub const MODEL_UMAP: &str = "X_c2s_umap";

/// The Model embedding tab.
#[derive(Debug)]
pub struct EmbedCellsPanel {
    /// The loaded model to use.
    pub model: Option<u64>,
    /// Genes per cell sentence.
    pub top_k: usize,
    /// A template file in the cell2sentence JSON format (empty: the built-in template).
    pub template_file: String,
    /// How the final hidden states are averaged.
    pub pooling: EmbedPooling,
    /// An error to show.
    pub error: Option<String>,
}

impl Default for EmbedCellsPanel {
    fn default() -> Self {
        Self {
            model: None,
            top_k: 200,
            template_file: String::new(),
            pooling: EmbedPooling::default(),
            error: None,
        }
    }
}

impl Panel for EmbedCellsPanel {
    fn id(&self) -> &'static str {
        "embed_cells"
    }

    fn title(&self) -> &'static str {
        "Model embedding"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        keep_loaded(&mut self.model, cx.models);
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.strong("Embed cells with a model");
        ui.label(
            "Every cell's prompt runs through the model; the mean of its final hidden states \
             becomes obsm 'X_c2s', and a UMAP of it is added to the embeddings.",
        );
        if cx.models.models().is_empty() {
            ui.label("No model is loaded: load one in the Model tab.");
            return;
        }
        egui::Grid::new("embed-cells-form")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Model");
                model_combo(ui, "embed-cells-model", &mut self.model, cx.models);
                ui.end_row();
                let label = ui.label("Genes per cell");
                ui.add(egui::DragValue::new(&mut self.top_k).range(1..=4096))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Template file");
                ui.add(
                    egui::TextEdit::singleline(&mut self.template_file)
                        .hint_text("built-in (cell type prediction)")
                        .desired_width(260.0),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Mean over").on_hover_text(POOLING_HELP);
                pooling_combo(ui, &mut self.pooling).labelled_by(label.id);
                ui.end_row();
            });
        if ui.button("Embed all cells").clicked() {
            self.error = self.start(cx).err();
        }
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    }
}

impl EmbedCellsPanel {
    /// Starts embedding the active dataset.
    pub fn start(&mut self, cx: &mut PanelContext<'_>) -> Result<(), String> {
        let model = chosen_model(self.model, cx.models)?;
        let settings = cell_type_settings(&self.template_file, self.top_k, "Homo sapiens")?;
        let PanelContext {
            views,
            active,
            jobs,
            actions,
            ..
        } = cx;
        let view = (*active)
            .and_then(|a| views.iter_mut().find(|v| v.id == a))
            .ok_or("open a dataset first")?;
        let job = spawn_embed(
            jobs,
            model.engine.clone(),
            &model.name(),
            view.dataset.clone(),
            settings,
            self.pooling,
        );
        view.jobs.embedding = Some(job);
        actions.push(Action::OpenPanel("jobs"));
        Ok(())
    }
}

/// The job: prompts of every cell, their embeddings, then a UMAP of them.
fn spawn_embed(
    jobs: &mut Jobs,
    engine: Arc<Engine>,
    model: &str,
    dataset: Arc<Dataset>,
    settings: PromptSettings,
    pooling: EmbedPooling,
) -> JobHandle<Vec<Embedding>> {
    let n = dataset.n_cells();
    jobs.spawn(
        format!("Embedding {n} cells with {model}"),
        Lane::Accelerator,
        move |job: &JobContext<()>| {
            job.set(0.0, "building prompts");
            let rows: Vec<usize> = (0..n).collect();
            let (prompts, _) =
                cell_type_prompts(&dataset, &rows, &settings).map_err(JobError::Failed)?;
            let batch = pooling.default_batch();
            let out = embed_cells(
                &engine,
                &prompts,
                batch,
                pooling,
                job.cancel_flag(),
                &mut |done| {
                    job.set(
                        0.9 * done as f32 / n.max(1) as f32,
                        format!("{done} of {n} cells"),
                    );
                },
            )
            .map_err(|e| JobError::Failed(e.to_string()))?;
            job.check()?;
            let points = Embedding {
                name: MODEL_EMBEDDING.into(),
                n_cols: out.width,
                data: out.data,
            };
            let mut umap = umap_of(&points, &UmapOptions::default(), job.core())?;
            umap.name = MODEL_UMAP.into();
            Ok(vec![points, umap])
        },
    )
}

/// What the two means are, shown on hover.
const POOLING_HELP: &str = "masked: the mean over the cell's own prompt tokens; a cell gets the \
     same embedding whatever it is batched with.\n\
     compat: the cell2sentence package's mean (embed_cells): 8 consecutive cells are padded to \
     the longest prompt and the mean runs over every position, padding included, so a cell's \
     embedding depends on its neighbours in the file. Use it, with an f32 model, to reproduce the \
     package's numbers.";

/// The pooling choice: a small combo box with the explanation on hover.
fn pooling_combo(ui: &mut Ui, pooling: &mut EmbedPooling) -> egui::Response {
    egui::ComboBox::from_id_salt("embed-cells-pooling")
        .selected_text(pooling_label(*pooling))
        .show_ui(ui, |ui| {
            for p in EmbedPooling::ALL {
                ui.selectable_value(pooling, p, pooling_label(p));
            }
        })
        .response
        .on_hover_text(POOLING_HELP)
}

/// The combo box's words for a pooling mode.
fn pooling_label(pooling: EmbedPooling) -> &'static str {
    match pooling {
        EmbedPooling::Masked => "prompt tokens (masked)",
        EmbedPooling::Compat => "batch with padding (compat)",
    }
}

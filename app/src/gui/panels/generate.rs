//! The Generate tab: a loaded C2S model writes new cells of given cell types. Each sentence is
//! post-processed into genes, turned into expression through the active dataset's rank →
//! expression fit, and placed on the dataset's embeddings (umap-learn's `transform` from the
//! nearest real cells), where the explorer draws the new cells as diamonds in their own colour.
//! The cells can be inspected and exported as a new `.h5ad`.
//!
//! The run is an accelerator-lane job; Cancel keeps the cells already generated.

use std::collections::BTreeMap;
use std::sync::Arc;

use c2s_core::dataset::{ColumnData, Dataset};
use c2s_core::engine::{Engine, GenerateOptions, SamplingParams};
use c2s_core::tasks::Task;
use c2s_core::tasks::postprocess::PostProcess;
use c2s_core::tasks::prompt::{PromptBuilder, PromptSettings};
use c2s_core::tasks::real_cells::real_cells;
use c2s_core::tasks::template::TemplateChoice;
use egui::Ui;

use super::generated_sets::{Inspected, sets_ui};
use super::model_choice::{chosen_model, keep_loaded, model_combo};
use super::task_form::{
    model_loaded, number_row, run_row, slider_row, split_names, template_for, template_row,
};
use super::{Panel, PanelContext};
use crate::gui::generated::{GeneratedSet, GenerationRequest, next_set_id, run_generation};
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// Label of the sets this tab makes.
pub const LABEL: &str = "cell_type";

/// The Generate tab.
#[derive(Debug)]
pub struct GeneratePanel {
    /// The loaded model to use.
    pub model: Option<u64>,
    /// Cell types, comma-separated.
    pub cell_types: String,
    /// Cells per cell type.
    pub n: usize,
    /// Genes asked for per cell.
    pub top_k: usize,
    /// Organism named in the prompt.
    pub organism: String,
    /// A template file in the cell2sentence JSON format (empty: the built-in template).
    pub template_file: String,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// Sampling seed.
    pub seed: u64,
    /// Post-processing of the sentences.
    pub post: PostProcess,
    running: Option<(u64, JobHandle<GeneratedSet>)>,
    inspect: Inspected,
    /// An error to show.
    pub error: Option<String>,
}

impl Default for GeneratePanel {
    fn default() -> Self {
        Self {
            model: None,
            cell_types: String::new(),
            n: 10,
            top_k: 200,
            organism: "Homo sapiens".into(),
            template_file: String::new(),
            temperature: 0.7,
            top_p: 0.95,
            seed: 0,
            post: PostProcess::Clean,
            running: None,
            inspect: None,
            error: None,
        }
    }
}

impl Panel for GeneratePanel {
    fn id(&self) -> &'static str {
        "generate"
    }

    fn title(&self) -> &'static str {
        "Generate cells"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        keep_loaded(&mut self.model, cx.models);
        if let Some(error) = take_finished(&mut self.running, cx) {
            self.error = Some(error);
        }
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                self.form(ui, cx);
                if let Some(e) = &self.error {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                ui.separator();
                let PanelContext {
                    views,
                    active,
                    actions,
                    ..
                } = cx;
                if let Some(view) = active.and_then(|a| views.iter_mut().find(|v| v.id == a)) {
                    sets_ui(ui, view, LABEL, &mut self.inspect, actions);
                }
            });
    }
}

/// Takes a finished job's set into its view; returns the job's error, if any.
fn take_finished(
    running: &mut Option<(u64, JobHandle<GeneratedSet>)>,
    cx: &mut PanelContext<'_>,
) -> Option<String> {
    let (view_id, job) = running.as_mut()?;
    let result = job.poll().result?;
    let view_id = *view_id;
    *running = None;
    match result {
        Ok(set) => {
            if let Some(view) = cx.views.iter_mut().find(|v| v.id == view_id) {
                view.generated.push(set);
            }
            None
        }
        Err(JobError::Cancelled) => None,
        Err(JobError::Failed(e)) => Some(e),
    }
}

impl GeneratePanel {
    fn form(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.strong("Generate cells of a cell type");
        if !model_loaded(ui, cx) {
            return;
        }
        let Some(columns) = cx.active_view().map(|v| label_columns(&v.dataset)) else {
            ui.label("Open a dataset first: new cells take its genes and are placed on its plot.");
            return;
        };
        egui::Grid::new("generate-form")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Model");
                model_combo(ui, "generate-model", &mut self.model, cx.models);
                ui.end_row();
                let label = ui.label("Cell types");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.cell_types)
                            .hint_text("B cell, CD14+ monocyte")
                            .desired_width(240.0),
                    )
                    .labelled_by(label.id);
                    egui::ComboBox::from_id_salt("generate-types-from")
                        .selected_text("from a column")
                        .show_ui(ui, |ui| {
                            for (name, values) in &columns {
                                if ui.selectable_label(false, name).clicked() {
                                    self.cell_types = values.join(", ");
                                }
                            }
                        });
                });
                ui.end_row();
                number_row(ui, "Cells per type", &mut self.n, 1..=10_000);
                number_row(ui, "Genes per cell", &mut self.top_k, 1..=4096);
                let label = ui.label("Organism");
                ui.text_edit_singleline(&mut self.organism)
                    .labelled_by(label.id);
                ui.end_row();
                slider_row(ui, "Temperature", &mut self.temperature, 0.0..=2.0);
                slider_row(ui, "Top-p", &mut self.top_p, 0.05..=1.0);
                number_row(ui, "Seed", &mut self.seed, 0..=u64::MAX);
                ui.label("Post-processing");
                post_process_choice(ui, &mut self.post);
                ui.end_row();
                template_row(
                    ui,
                    &mut self.template_file,
                    "built-in (cell type generation)",
                );
            });
        let running = self.running.as_ref().map(|(_, job)| job);
        if run_row(ui, running, "generating…", "Generate") {
            self.error = self.start(cx).err();
        }
    }

    /// Starts generating for the active view.
    pub fn start(&mut self, cx: &mut PanelContext<'_>) -> Result<(), String> {
        let model = chosen_model(self.model, cx.models)?;
        let types = split_names(&self.cell_types);
        if types.is_empty() {
            return Err("name at least one cell type (comma-separated)".into());
        }
        let template = template_for(Task::CellTypeGeneration, &self.template_file)?;
        let mut builder = PromptBuilder::new(PromptSettings {
            task: Task::CellTypeGeneration,
            template,
            choice: TemplateChoice::Seeded,
            seed: self.seed,
            top_k: self.top_k,
            organism: self.organism.trim().to_string(),
        })
        .map_err(|e| e.to_string())?;
        let (mut prompts, mut labels) = (Vec::new(), Vec::new());
        for t in &types {
            for i in 0..self.n {
                let fields = BTreeMap::from([("cell_type", t.as_str())]);
                let p = builder
                    .single(&format!("{t}#{i}"), None, &fields)
                    .map_err(|e| e.to_string())?;
                prompts.push(p.model_input);
                labels.push(t.clone());
            }
        }
        let options = GenerateOptions {
            max_new_tokens: 4 * self.top_k + 8,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_p: self.top_p,
                seed: Some(self.seed),
                ..Default::default()
            },
            ..Default::default()
        };
        options.sampling.validate()?;
        let view = cx.active_view().ok_or("open a dataset first")?;
        let title = if types.len() == 1 {
            format!("{} × {}", types[0], self.n)
        } else {
            format!("{} cell types × {}", types.len(), self.n)
        };
        let provenance = serde_json::json!({
            "model": model.name(),
            "task": "cell_type_generation",
            "cell_types": types.join(", "),
            "cells_per_type": self.n,
            "genes_per_cell": self.top_k,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "post_process": format!("{:?}", self.post).to_lowercase(),
        });
        let set = GeneratedSet {
            id: next_set_id(),
            title,
            label_name: LABEL,
            labels,
            controls: Vec::new(),
            prompts: Vec::new(),
            cells: Vec::new(),
            expression: Default::default(),
            positions: Default::default(),
            placement_error: None,
            provenance,
            cancelled: false,
            visible: true,
        };
        let request = GenerationRequest {
            prompts,
            options,
            batch: 8,
            post: self.post,
        };
        let (view_id, dataset) = (view.id, view.dataset.clone());
        let job = spawn_generate(cx.jobs, model.engine.clone(), dataset, set, request);
        self.running = Some((view_id, job));
        Ok(())
    }
}

/// The categorical and text obs columns with their values (to fill the cell types from).
fn label_columns(dataset: &Dataset) -> Vec<(String, Vec<String>)> {
    dataset
        .obs
        .iter()
        .filter(|c| matches!(c.data, ColumnData::Categorical { .. }))
        .map(|c| (c.name.clone(), c.data.distinct_values()))
        .collect()
}

/// Clean / compat radio buttons.
pub fn post_process_choice(ui: &mut Ui, post: &mut PostProcess) {
    ui.horizontal(|ui| {
        ui.radio_value(post, PostProcess::Clean, "clean")
            .on_hover_text("Drop the final '.', unknown words and repeated genes");
        ui.radio_value(post, PostProcess::Compat, "compat")
            .on_hover_text("Exactly as the cell2sentence package (keeps its quirks)");
    });
}

/// The job: the real cells on C2S's scale and their fit, the generation, then the placement.
fn spawn_generate(
    jobs: &mut Jobs,
    engine: Arc<Engine>,
    dataset: Arc<Dataset>,
    mut set: GeneratedSet,
    request: GenerationRequest,
) -> JobHandle<GeneratedSet> {
    jobs.spawn(
        format!("Generating {}", set.title),
        Lane::Accelerator,
        move |job: &JobContext<()>| {
            job.set(0.0, "preparing the real cells");
            let real = real_cells(&dataset, job.core())?;
            let (cells, expression, cancelled) =
                run_generation(job, &engine, &dataset.var_names, &real, &request)?;
            job.set(0.9, "placing the new cells on the embeddings");
            // After a cancel the finished cells are still placed (a fresh, uncancelled progress).
            let progress = c2s_core::Progress::new();
            let progress = if cancelled { &progress } else { job.core() };
            set.prompts = request.prompts[..cells.len()].to_vec();
            set.labels.truncate(cells.len());
            set.cells = cells;
            set.expression = expression;
            set.cancelled = cancelled;
            set.place(&dataset, &real, progress);
            Ok(set)
        },
    )
}

//! The Perturb tab: predict how the selected (control) cells respond to named perturbations
//! with a loaded C2S perturbation model. Control cells are drawn from the selection with a
//! seed; each control's sentence and a perturbation name make a prompt; the predicted sentences
//! become expression through the dataset's rank → expression fit; each gene's mean against the
//! controls' is its log-fold change. The tab lists the top genes up and down per perturbation,
//! and the predicted cells appear on the plot (placed from their nearest real cells).
//!
//! The run is an accelerator-lane job; Cancel keeps the cells already predicted.

use std::collections::BTreeMap;
use std::sync::Arc;

use c2s_core::dataset::Dataset;
use c2s_core::engine::{Engine, GenerateOptions, SamplingParams};
use c2s_core::tasks::Task;
use c2s_core::tasks::perturb::gene_changes;
use c2s_core::tasks::postprocess::PostProcess;
use c2s_core::tasks::prompt::{PromptBuilder, PromptSettings};
use c2s_core::tasks::real_cells::real_cells;
use c2s_core::tasks::sample::sample_rows;
use c2s_core::tasks::template::TemplateChoice;
use egui::Ui;

use super::cell_prompts::cell_sentences;
use super::generate::post_process_choice;
use super::generated_sets::{Inspected, sets_ui};
use super::model_choice::{chosen_model, keep_loaded, model_combo};
use super::task_form::{
    model_loaded, number_row, run_row, slider_row, split_names, template_for, template_row,
};
use super::{Panel, PanelContext};
use crate::gui::generated::{GeneratedSet, GenerationRequest, next_set_id, run_generation};
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// Label of the sets this tab makes.
pub const LABEL: &str = "perturbation";

/// Genes listed up and down per perturbation.
const TOP: usize = 10;

/// One gene's predicted change.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneRow {
    /// Gene name.
    pub gene: String,
    /// Mean of the predicted cells minus mean of the controls (log scale).
    pub log_fold_change: f64,
}

/// The genes that move most under one perturbation.
#[derive(Debug, Clone, PartialEq)]
pub struct PerturbationEffect {
    /// The perturbation.
    pub name: String,
    /// Predicted cells.
    pub cells: usize,
    /// Largest increases, largest first.
    pub up: Vec<GeneRow>,
    /// Largest decreases, largest first.
    pub down: Vec<GeneRow>,
}

/// What the job hands back.
#[derive(Debug)]
pub struct PerturbOutput {
    /// The predicted cells.
    pub set: GeneratedSet,
    /// Per perturbation, the top genes.
    pub effects: Vec<PerturbationEffect>,
}

/// The Perturb tab.
#[derive(Debug)]
pub struct PerturbPanel {
    /// The loaded model to use.
    pub model: Option<u64>,
    /// Perturbation names, comma-separated.
    pub perturbations: String,
    /// Control cells drawn from the selection.
    pub n_controls: usize,
    /// Seed of the draw of controls.
    pub sample_seed: u64,
    /// Genes per control sentence.
    pub top_k: usize,
    /// A template file in the cell2sentence JSON format (empty: the built-in template).
    pub template_file: String,
    /// Sampling temperature (the C2S-Scale screen used 0.3).
    pub temperature: f32,
    /// Sampling seed.
    pub seed: u64,
    /// Post-processing of the sentences.
    pub post: PostProcess,
    running: Option<(u64, JobHandle<PerturbOutput>)>,
    /// Effects of the last run, with its set's id.
    pub effects: Option<(u64, Vec<PerturbationEffect>)>,
    inspect: Inspected,
    /// An error to show.
    pub error: Option<String>,
}

impl Default for PerturbPanel {
    fn default() -> Self {
        Self {
            model: None,
            perturbations: String::new(),
            n_controls: 20,
            sample_seed: 0,
            top_k: 200,
            template_file: String::new(),
            temperature: 0.3,
            seed: 0,
            post: PostProcess::Clean,
            running: None,
            effects: None,
            inspect: None,
            error: None,
        }
    }
}

impl Panel for PerturbPanel {
    fn id(&self) -> &'static str {
        "perturb"
    }

    fn title(&self) -> &'static str {
        "Perturb"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        keep_loaded(&mut self.model, cx.models);
        let Some((view_id, job)) = &mut self.running else {
            return;
        };
        let Some(result) = job.poll().result else {
            return;
        };
        let view_id = *view_id;
        self.running = None;
        match result {
            Ok(out) => {
                self.effects = Some((out.set.id, out.effects));
                if let Some(view) = cx.views.iter_mut().find(|v| v.id == view_id) {
                    view.generated.push(out.set);
                }
            }
            Err(JobError::Cancelled) => {}
            Err(JobError::Failed(e)) => self.error = Some(e),
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
                self.effects_ui(ui);
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

impl PerturbPanel {
    fn form(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.strong("Predict perturbation responses of the selected cells");
        if !model_loaded(ui, cx) {
            return;
        }
        let Some(selected) = cx.active_view().map(|v| v.selection.count()) else {
            ui.label("Open a dataset and select control cells first.");
            return;
        };
        egui::Grid::new("perturb-form")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Model");
                model_combo(ui, "perturb-model", &mut self.model, cx.models);
                ui.end_row();
                let label = ui.label("Perturbations");
                ui.add(
                    egui::TextEdit::singleline(&mut self.perturbations)
                        .hint_text("silmitasertib, IFNG")
                        .desired_width(260.0),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Control cells");
                ui.horizontal(|ui| {
                    ui.add(egui::DragValue::new(&mut self.n_controls).range(1..=10_000))
                        .labelled_by(label.id);
                    ui.label(format!("drawn from the selection ({selected})"));
                });
                ui.end_row();
                number_row(ui, "Draw seed", &mut self.sample_seed, 0..=u64::MAX);
                number_row(ui, "Genes per cell", &mut self.top_k, 1..=4096);
                slider_row(ui, "Temperature", &mut self.temperature, 0.0..=2.0);
                number_row(ui, "Sampling seed", &mut self.seed, 0..=u64::MAX);
                ui.label("Post-processing");
                post_process_choice(ui, &mut self.post);
                ui.end_row();
                template_row(
                    ui,
                    &mut self.template_file,
                    "built-in (perturbation prediction)",
                );
            });
        let running = self.running.as_ref().map(|(_, job)| job);
        if run_row(ui, running, "predicting…", "Predict") {
            self.error = self.start(cx).err();
        }
    }

    /// Starts predicting for the selection of the active view.
    pub fn start(&mut self, cx: &mut PanelContext<'_>) -> Result<(), String> {
        let model = chosen_model(self.model, cx.models)?;
        let names = split_names(&self.perturbations);
        if names.is_empty() {
            return Err("name at least one perturbation (comma-separated)".into());
        }
        let template = template_for(Task::PerturbationPrediction, &self.template_file)?;
        let settings = PromptSettings {
            task: Task::PerturbationPrediction,
            template,
            choice: TemplateChoice::First,
            seed: 0,
            top_k: self.top_k,
            organism: String::new(),
        };
        PromptBuilder::new(settings.clone()).map_err(|e| e.to_string())?;
        let options = GenerateOptions {
            max_new_tokens: 4 * self.top_k + 8,
            sampling: SamplingParams {
                temperature: self.temperature,
                seed: Some(self.seed),
                ..Default::default()
            },
            ..Default::default()
        };
        options.sampling.validate()?;
        let view = cx.active_view().ok_or("open a dataset first")?;
        let selection = view.selection.indices();
        if selection.is_empty() {
            return Err("no cell is selected: lasso the control cells first".into());
        }
        let controls = sample_rows(&selection, self.n_controls.max(1), self.sample_seed);
        let title = if names.len() == 1 {
            format!("{} on {} cells", names[0], controls.len())
        } else {
            format!("{} perturbations on {} cells", names.len(), controls.len())
        };
        let provenance = serde_json::json!({
            "model": model.name(),
            "task": "perturbation_prediction",
            "perturbations": names.join(", "),
            "controls": controls
                .iter()
                .map(|&r| view.dataset.obs_names[r].as_str())
                .collect::<Vec<_>>()
                .join(","),
            "genes_per_cell": self.top_k,
            "temperature": self.temperature,
            "seed": self.seed,
            "post_process": format!("{:?}", self.post).to_lowercase(),
        });
        let set = GeneratedSet {
            id: next_set_id(),
            title,
            label_name: LABEL,
            labels: Vec::new(),
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
        let (view_id, dataset) = (view.id, view.dataset.clone());
        let job = spawn_perturb(
            cx.jobs,
            model.engine.clone(),
            dataset,
            set,
            Plan {
                names,
                controls,
                settings,
                options,
                post: self.post,
            },
        );
        self.running = Some((view_id, job));
        Ok(())
    }

    fn effects_ui(&self, ui: &mut Ui) {
        let Some((_, effects)) = &self.effects else {
            ui.weak("The genes each perturbation moves most appear here.");
            return;
        };
        for effect in effects {
            ui.strong(format!(
                "{} ({} predicted cells)",
                effect.name, effect.cells
            ));
            egui::Grid::new(("perturb-effects", &effect.name))
                .striped(true)
                .num_columns(4)
                .show(ui, |ui| {
                    ui.strong("up");
                    ui.strong("log-fold change");
                    ui.strong("down");
                    ui.strong("log-fold change");
                    ui.end_row();
                    for i in 0..effect.up.len().max(effect.down.len()) {
                        for rows in [&effect.up, &effect.down] {
                            match rows.get(i) {
                                Some(g) => {
                                    ui.label(&g.gene);
                                    ui.label(format!("{:+.3}", g.log_fold_change));
                                }
                                None => {
                                    ui.label("");
                                    ui.label("");
                                }
                            }
                        }
                        ui.end_row();
                    }
                });
        }
    }
}

/// What the job predicts.
struct Plan {
    names: Vec<String>,
    controls: Vec<usize>,
    settings: PromptSettings,
    options: GenerateOptions,
    post: PostProcess,
}

/// The job: the real cells and their fit, prompts (perturbation × control), the predictions,
/// their placement and each perturbation's top genes.
fn spawn_perturb(
    jobs: &mut Jobs,
    engine: Arc<Engine>,
    dataset: Arc<Dataset>,
    mut set: GeneratedSet,
    plan: Plan,
) -> JobHandle<PerturbOutput> {
    jobs.spawn(
        format!("Predicting {}", set.title),
        Lane::Accelerator,
        move |job: &JobContext<()>| {
            job.set(0.0, "preparing the real cells");
            let real = real_cells(&dataset, job.core())?;
            let (sentences, empty) = cell_sentences(&dataset, &plan.controls, plan.settings.top_k);
            if empty > 0 {
                return Err(JobError::Failed(format!(
                    "{empty} of the control cells express no gene; leave them out of the selection"
                )));
            }
            let mut builder = PromptBuilder::new(plan.settings.clone())
                .map_err(|e| JobError::Failed(e.to_string()))?;
            let (mut prompts, mut labels, mut controls) = (Vec::new(), Vec::new(), Vec::new());
            for name in &plan.names {
                let fields = BTreeMap::from([("perturbation_name", name.as_str())]);
                for (&r, sentence) in plan.controls.iter().zip(&sentences) {
                    let id = &dataset.obs_names[r];
                    let p = builder
                        .single(id, Some(sentence), &fields)
                        .map_err(|e| JobError::Failed(e.to_string()))?;
                    prompts.push(p.model_input);
                    labels.push(name.clone());
                    controls.push(id.clone());
                }
            }
            let request = GenerationRequest {
                prompts,
                options: plan.options,
                batch: 8,
                post: plan.post,
            };
            let (cells, predicted, cancelled) =
                run_generation(job, &engine, &dataset.var_names, &real, &request)?;
            let n = cells.len();
            let effects = plan
                .names
                .iter()
                .map(|name| {
                    let rows: Vec<usize> = (0..n).filter(|&i| labels[i] == *name).collect();
                    let changes = gene_changes(&predicted, &rows, &real.expression, &plan.controls);
                    let row = |c: &c2s_core::tasks::perturb::GeneChange| GeneRow {
                        gene: dataset.var_names[c.gene].clone(),
                        log_fold_change: c.log_fold_change,
                    };
                    PerturbationEffect {
                        name: name.clone(),
                        cells: rows.len(),
                        up: changes
                            .iter()
                            .take_while(|c| c.log_fold_change > 0.0)
                            .take(TOP)
                            .map(row)
                            .collect(),
                        down: changes
                            .iter()
                            .rev()
                            .take_while(|c| c.log_fold_change < 0.0)
                            .take(TOP)
                            .map(row)
                            .collect(),
                    }
                })
                .collect();
            job.set(0.9, "placing the predicted cells on the embeddings");
            let progress = c2s_core::Progress::new();
            let progress = if cancelled { &progress } else { job.core() };
            set.prompts = request.prompts[..n].to_vec();
            labels.truncate(n);
            controls.truncate(n);
            set.labels = labels;
            set.controls = controls;
            set.cells = cells;
            set.expression = predicted;
            set.cancelled = cancelled;
            set.place(&dataset, &real, progress);
            Ok(PerturbOutput { set, effects })
        },
    )
}

//! The Fine-tune form: which cells, what they teach, the base model, the LoRA and optimizer
//! settings and the output folder; [`FinetuneForm::request`] checks it and hands the jobs a
//! [`Request`] (cheap: the dataset is shared, examples are built in the job).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use c2s_core::dataset::{ColumnData, Dataset};
use c2s_core::engine::DeviceRequest;
use c2s_core::engine::locate::resolve_model;
use c2s_core::tasks::prompt::PromptSettings;
use c2s_core::tasks::template::{PromptTemplate, TemplateChoice};
use c2s_core::train::cells::{CellTask, Pairing};
use c2s_core::train::config::parse_targets;
use c2s_core::train::model::BaseModel;
use c2s_core::train::trainer::{Length, TrainSettings};
use egui::Ui;

use crate::gui::models::ModelRegistry;
use crate::gui::panels::model_choice::{keep_loaded, model_combo};
use crate::gui::screen::form::ModelSource;
use crate::gui::view::DatasetView;

use super::advanced::AdvancedSettings;

/// What the examples teach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Cell sentence → cell type.
    CellType,
    /// Cell type → cell sentence.
    Generation,
    /// Control cell + perturbation → perturbed cell.
    Perturbation,
    /// Control cell + perturbation → the genes that rise and fall most.
    PerturbationDelta,
}

impl TaskKind {
    fn label(self) -> &'static str {
        match self {
            TaskKind::CellType => "cell type prediction",
            TaskKind::Generation => "cell generation from a type",
            TaskKind::Perturbation => "perturbation prediction (pairs)",
            TaskKind::PerturbationDelta => "perturbation changes (delta sentences)",
        }
    }

    fn is_perturbation(self) -> bool {
        matches!(self, TaskKind::Perturbation | TaskKind::PerturbationDelta)
    }
}

/// The form's values.
#[derive(Debug, Clone)]
pub struct FinetuneForm {
    /// The open dataset (view id).
    pub view: Option<u64>,
    /// Every cell instead of the selection.
    pub all_cells: bool,
    /// The task.
    pub task: TaskKind,
    /// obs column with each cell's type (cell type, generation).
    pub label_column: String,
    /// obs column naming each cell's perturbation.
    pub perturbation_column: String,
    /// Its value for control cells.
    pub control_value: String,
    /// obs column of the pairing context (empty: any control).
    pub context_column: String,
    /// Genes per list of a delta sentence.
    pub delta_genes: usize,
    /// Genes per cell sentence.
    pub top_k: usize,
    /// Organism named in the prompts.
    pub organism: String,
    /// A template file (empty: the task's built-in template).
    pub template_file: String,
    /// The base model.
    pub model: ModelSource,
    /// Device to train on.
    pub device: DeviceRequest,
    /// LoRA rank.
    pub rank: usize,
    /// LoRA alpha.
    pub alpha: f64,
    /// LoRA dropout.
    pub dropout: f64,
    /// Target projections, comma-separated, or `default`.
    pub targets: String,
    /// Count optimizer steps (else epochs).
    pub by_steps: bool,
    /// Optimizer steps.
    pub steps: usize,
    /// Epochs.
    pub epochs: f64,
    /// Peak learning rate.
    pub lr: f64,
    /// Examples per micro-batch.
    pub batch: usize,
    /// Micro-batches per step.
    pub grad_accum: usize,
    /// Fraction held out for validation.
    pub val_fraction: f64,
    /// Validation every N steps.
    pub eval_every: usize,
    /// Seed of the split, order, pairs and initialisation.
    pub seed: u64,
    /// Output folder.
    pub out_dir: String,
    /// The optimizer, schedule, loss and checkpoint settings folded under "Advanced".
    pub advanced: AdvancedSettings,
}

impl Default for FinetuneForm {
    fn default() -> Self {
        Self {
            view: None,
            all_cells: true,
            task: TaskKind::CellType,
            label_column: String::new(),
            perturbation_column: String::new(),
            control_value: String::new(),
            context_column: String::new(),
            delta_genes: 50,
            top_k: 200,
            organism: "Homo sapiens".into(),
            template_file: String::new(),
            model: ModelSource::Loaded(None),
            device: DeviceRequest::Auto,
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: "default".into(),
            by_steps: true,
            steps: 100,
            epochs: 1.0,
            lr: 2e-4,
            batch: 8,
            grad_accum: 1,
            val_fraction: 0.1,
            eval_every: 10,
            seed: 0,
            out_dir: String::new(),
            advanced: AdvancedSettings::default(),
        }
    }
}

/// A checked form, for the jobs.
#[derive(Debug, Clone)]
pub struct Request {
    /// The cells' dataset.
    pub dataset: Arc<Dataset>,
    /// The chosen rows.
    pub rows: Vec<usize>,
    /// What the examples teach.
    pub task: CellTask,
    /// How prompts are built.
    pub prompts: PromptSettings,
    /// The base model folder.
    pub model_dir: PathBuf,
    /// What the user named as the model (registry source or folder), to load it again.
    pub model_source: String,
    /// The training device.
    pub device: DeviceRequest,
    /// The output folder.
    pub out: PathBuf,
    /// The form's training values (completed for the model by [`Request::settings`]).
    pub form: FinetuneForm,
}

impl Request {
    /// The run's settings for `base`.
    pub fn settings(&self, base: &BaseModel, resume: bool) -> TrainSettings {
        let f = &self.form;
        let mut s = TrainSettings::new(&base.config);
        s.lora.rank = f.rank;
        s.lora.alpha = f.alpha;
        s.lora.dropout = f.dropout;
        s.lora.targets = parse_targets(&f.targets, &base.config);
        s.length = if f.by_steps {
            Length::Steps(f.steps)
        } else {
            Length::Epochs(f.epochs)
        };
        s.lr = f.lr;
        s.batch = f.batch;
        s.grad_accum = f.grad_accum;
        s.val_fraction = f.val_fraction;
        s.eval_every = f.eval_every;
        s.seed = f.seed;
        f.advanced.apply(&mut s);
        s.resume = resume;
        // Cell types are a classification: every evaluation also ranks the labels.
        s.rank_candidates = matches!(self.task, CellTask::CellType { .. });
        s
    }
}

impl FinetuneForm {
    /// Keeps the dataset and the model choice on things that are still open.
    pub fn update(&mut self, views: &[DatasetView], models: &ModelRegistry) {
        if self.view.is_none_or(|id| !views.iter().any(|v| v.id == id)) {
            self.view = views.last().map(|v| v.id);
        }
        if let ModelSource::Loaded(choice) = &mut self.model {
            keep_loaded(choice, models);
        }
    }

    /// Checks the form; the message names what is missing or wrong.
    pub fn request(
        &self,
        views: &[DatasetView],
        models: &ModelRegistry,
    ) -> Result<Request, String> {
        let view = self
            .view
            .and_then(|id| views.iter().find(|v| v.id == id))
            .ok_or("open a dataset first (File ▸ Open, or drop an .h5ad)")?;
        let rows: Vec<usize> = if self.all_cells {
            (0..view.n_cells()).collect()
        } else {
            view.selection.indices()
        };
        if rows.is_empty() {
            return Err("no cell is selected: lasso some cells, or choose all cells".into());
        }
        let task = self.cell_task()?;
        view.dataset
            .require_obs_columns(&task.columns())
            .map_err(|e| e.to_string())?;
        let template = match self.template_file.trim() {
            "" => task.prompt_task().builtin_template(),
            path => PromptTemplate::from_file(Path::new(path)).map_err(|e| e.to_string())?,
        };
        task.prompt_task()
            .check(&template)
            .map_err(|e| format!("the template does not fit the task: {e}"))?;
        let prompts = PromptSettings {
            task: task.prompt_task(),
            template,
            choice: TemplateChoice::First,
            seed: self.seed,
            top_k: self.top_k,
            organism: self.organism.trim().to_string(),
        };
        let (model_dir, model_source) = match &self.model {
            ModelSource::Loaded(choice) => {
                let model = choice
                    .and_then(|id| models.get(id))
                    .ok_or("no base model: load one in the Model tab, or give a model folder")?;
                if model.adapter.is_some() {
                    return Err(format!(
                        "{} has an adapter on; train on the plain base model (load it without \
                         an adapter, or give its folder)",
                        model.name()
                    ));
                }
                let dir = resolve_model(&model.source).map_err(|e| e.to_string())?;
                (dir, model.source.clone())
            }
            ModelSource::Dir(dir) if dir.trim().is_empty() => {
                return Err("no base model: give a model folder".into());
            }
            ModelSource::Dir(dir) => {
                let dir = PathBuf::from(dir.trim());
                if !dir.join("config.json").is_file() {
                    return Err(format!(
                        "{} is not a model folder (no config.json)",
                        dir.display()
                    ));
                }
                (dir.clone(), dir.display().to_string())
            }
        };
        if let Some(init) = self.advanced.init_path()
            && !init.join("adapter_config.json").is_file()
        {
            return Err(format!(
                "the initial adapter {} is not a peft adapter folder (no adapter_config.json)",
                init.display()
            ));
        }
        let out = match self.out_dir.trim() {
            "" => return Err("choose an output folder for the adapter and its log".into()),
            dir => PathBuf::from(dir),
        };
        Ok(Request {
            dataset: view.dataset.clone(),
            rows,
            task,
            prompts,
            model_dir,
            model_source,
            device: self.device,
            out,
            form: self.clone(),
        })
    }

    fn cell_task(&self) -> Result<CellTask, String> {
        let label = || match self.label_column.trim() {
            "" => Err("choose the label column (the obs column with each cell's type)".to_string()),
            col => Ok(col.to_string()),
        };
        Ok(match self.task {
            TaskKind::CellType => CellTask::CellType { label: label()? },
            TaskKind::Generation => CellTask::Generation { label: label()? },
            TaskKind::Perturbation | TaskKind::PerturbationDelta => {
                let column = match self.perturbation_column.trim() {
                    "" => return Err("choose the perturbation column".into()),
                    c => c.to_string(),
                };
                let control = match self.control_value.trim() {
                    "" => {
                        return Err(
                            "give the control value (what the perturbation column says for \
                             control cells)"
                                .into(),
                        );
                    }
                    c => c.to_string(),
                };
                let pairing = Pairing {
                    column,
                    control,
                    context: Some(self.context_column.trim().to_string()).filter(|c| !c.is_empty()),
                    seed: self.seed,
                };
                if self.task == TaskKind::PerturbationDelta {
                    CellTask::PerturbationDelta {
                        pairing,
                        genes: self.delta_genes,
                    }
                } else {
                    CellTask::Perturbation(pairing)
                }
            }
        })
    }

    /// Draws the form.
    pub fn ui(&mut self, ui: &mut Ui, views: &[DatasetView], models: &ModelRegistry) {
        let view = self.view.and_then(|id| views.iter().find(|v| v.id == id));
        let columns: Vec<String> = view
            .map(|v| {
                v.dataset
                    .obs
                    .iter()
                    .filter(|c| {
                        matches!(c.data, ColumnData::Categorical { .. } | ColumnData::Text(_))
                    })
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        egui::Grid::new("finetune-data")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Dataset");
                let title = view.map(|v| v.title.clone()).unwrap_or_default();
                egui::ComboBox::from_id_salt("finetune-dataset")
                    .selected_text(if views.is_empty() {
                        "open a dataset first".to_string()
                    } else {
                        title
                    })
                    .show_ui(ui, |ui| {
                        for v in views {
                            ui.selectable_value(&mut self.view, Some(v.id), &v.title);
                        }
                    });
                ui.end_row();
                ui.label("Cells");
                ui.horizontal(|ui| {
                    let (selected, total) =
                        view.map_or((0, 0), |v| (v.selection.count(), v.n_cells()));
                    ui.radio_value(
                        &mut self.all_cells,
                        false,
                        format!("selection ({selected})"),
                    );
                    ui.radio_value(&mut self.all_cells, true, format!("all ({total})"));
                });
                ui.end_row();
                ui.label("Task");
                ui.vertical(|ui| {
                    for t in [
                        TaskKind::CellType,
                        TaskKind::Generation,
                        TaskKind::Perturbation,
                        TaskKind::PerturbationDelta,
                    ] {
                        ui.radio_value(&mut self.task, t, t.label());
                    }
                });
                ui.end_row();
                if self.task.is_perturbation() {
                    column_row(
                        ui,
                        "Perturbation column",
                        &mut self.perturbation_column,
                        &columns,
                        false,
                    );
                    let label = ui.label("Control value");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.control_value)
                            .hint_text("e.g. DMSO or control")
                            .desired_width(200.0),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                    column_row(
                        ui,
                        "Context column",
                        &mut self.context_column,
                        &columns,
                        true,
                    );
                    if self.task == TaskKind::PerturbationDelta {
                        number_row(ui, "Genes per list", &mut self.delta_genes, 1..=1000);
                    }
                } else {
                    column_row(ui, "Label column", &mut self.label_column, &columns, false);
                }
                number_row(ui, "Genes per cell", &mut self.top_k, 1..=4096);
                text_row(ui, "Organism", &mut self.organism, "");
                text_row(
                    ui,
                    "Template file",
                    &mut self.template_file,
                    "built-in template of the task",
                );
            });
        ui.separator();
        self.model_row(ui, models);
        egui::CollapsingHeader::new("LoRA and training settings")
            .id_salt("finetune-settings")
            .default_open(true)
            .show(ui, |ui| self.settings_ui(ui));
        egui::CollapsingHeader::new("Advanced")
            .id_salt("finetune-advanced")
            .show(ui, |ui| self.advanced.ui(ui));
        ui.horizontal(|ui| {
            let label = ui.label("Output folder");
            ui.add(
                egui::TextEdit::singleline(&mut self.out_dir)
                    .hint_text("a new folder for the adapter, log.jsonl and checkpoints")
                    .desired_width(360.0),
            )
            .labelled_by(label.id);
        });
    }

    fn model_row(&mut self, ui: &mut Ui, models: &ModelRegistry) {
        ui.horizontal(|ui| {
            ui.label("Base model");
            let loaded = matches!(self.model, ModelSource::Loaded(_));
            if ui.radio(loaded, "loaded in the Model tab").clicked() && !loaded {
                self.model = ModelSource::Loaded(None);
            }
            let folder = ui.radio(!loaded, "model folder");
            if folder.clicked() && loaded {
                self.model = ModelSource::Dir(String::new());
            }
            match &mut self.model {
                ModelSource::Loaded(choice) => {
                    if models.models().is_empty() {
                        ui.weak("none loaded yet");
                    } else {
                        model_combo(ui, "finetune-model", choice, models);
                    }
                }
                ModelSource::Dir(dir) => {
                    ui.add(
                        egui::TextEdit::singleline(dir)
                            .hint_text("a Hugging Face layout folder")
                            .desired_width(260.0),
                    )
                    .labelled_by(folder.id);
                }
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("Train on");
            egui::ComboBox::from_id_salt("finetune-device")
                .selected_text(device_name(self.device))
                .show_ui(ui, |ui| {
                    for d in [
                        DeviceRequest::Auto,
                        DeviceRequest::Cuda,
                        DeviceRequest::Wgpu,
                        DeviceRequest::Cpu,
                    ] {
                        ui.selectable_value(&mut self.device, d, device_name(d));
                    }
                })
                .response
                .labelled_by(label.id);
        });
    }

    fn settings_ui(&mut self, ui: &mut Ui) {
        egui::Grid::new("finetune-settings-grid")
            .num_columns(4)
            .show(ui, |ui| {
                // An initial adapter brings its own rank, alpha and targets.
                let own = self.advanced.init_path().is_none();
                let from_init = "set by the initial adapter (Advanced)";
                let label = ui.label("LoRA rank");
                ui.add_enabled(own, egui::DragValue::new(&mut self.rank).range(1..=256))
                    .labelled_by(label.id)
                    .on_disabled_hover_text(from_init);
                let label = ui.label("LoRA alpha");
                ui.add_enabled(
                    own,
                    egui::DragValue::new(&mut self.alpha)
                        .speed(0.1)
                        .range(0.01..=1024.0),
                )
                .labelled_by(label.id)
                .on_disabled_hover_text(from_init);
                ui.end_row();
                float_cell(ui, "LoRA dropout", &mut self.dropout, 0.01, 0.0..=0.9);
                let label = ui.label("Target modules");
                ui.add_enabled(
                    own,
                    egui::TextEdit::singleline(&mut self.targets).desired_width(160.0),
                )
                .labelled_by(label.id)
                .on_hover_text(
                    "comma-separated projections, or `default` (peft's: query_key_value \
                     for GPT-NeoX, q_proj,v_proj for Gemma)",
                )
                .on_disabled_hover_text(from_init);
                ui.end_row();
                ui.label("Length");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.by_steps, true, "steps");
                    ui.radio_value(&mut self.by_steps, false, "epochs");
                });
                if self.by_steps {
                    number_row_inline(ui, "Steps", &mut self.steps, 1..=1_000_000);
                } else {
                    float_cell(ui, "Epochs", &mut self.epochs, 0.1, 0.01..=1000.0);
                }
                ui.end_row();
                let label = ui.label("Learning rate");
                ui.add(
                    egui::DragValue::new(&mut self.lr)
                        .speed(1e-5)
                        .range(1e-7..=1.0)
                        .custom_formatter(|v, _| format!("{v:.1e}")),
                )
                .labelled_by(label.id);
                number_row_inline(ui, "Batch", &mut self.batch, 1..=4096);
                ui.end_row();
                number_row_inline(ui, "Grad accumulation", &mut self.grad_accum, 1..=1024);
                float_cell(
                    ui,
                    "Validation fraction",
                    &mut self.val_fraction,
                    0.01,
                    0.0..=0.9,
                );
                ui.end_row();
                number_row_inline(ui, "Validate every", &mut self.eval_every, 0..=100_000);
                let label = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut self.seed))
                    .labelled_by(label.id);
                ui.end_row();
            });
    }
}

fn device_name(d: DeviceRequest) -> &'static str {
    match d {
        DeviceRequest::Auto => "automatic (CUDA, GPU, else CPU)",
        DeviceRequest::Cuda => "CUDA",
        DeviceRequest::Wgpu => "GPU (wgpu)",
        DeviceRequest::Cpu => "CPU",
    }
}

/// A labelled drop-down of obs columns; an `optional` one offers "(none: any control)".
fn column_row(ui: &mut Ui, label: &str, value: &mut String, columns: &[String], optional: bool) {
    let l = ui.label(label);
    let shown = if value.is_empty() {
        if optional {
            "(none: any control)"
        } else {
            "choose a column"
        }
    } else {
        value.as_str()
    }
    .to_string();
    egui::ComboBox::from_id_salt(("finetune-column", label))
        .selected_text(shown)
        .show_ui(ui, |ui| {
            if optional {
                ui.selectable_value(value, String::new(), "(none: any control)");
            }
            for c in columns {
                ui.selectable_value(value, c.clone(), c);
            }
        })
        .response
        .labelled_by(l.id);
    ui.end_row();
}

fn number_row(ui: &mut Ui, label: &str, value: &mut usize, range: std::ops::RangeInclusive<usize>) {
    number_row_inline(ui, label, value, range);
    ui.end_row();
}

pub(super) fn number_row_inline(
    ui: &mut Ui,
    label: &str,
    value: &mut usize,
    range: std::ops::RangeInclusive<usize>,
) {
    let l = ui.label(label);
    ui.add(egui::DragValue::new(value).range(range))
        .labelled_by(l.id);
}

pub(super) fn float_cell(
    ui: &mut Ui,
    label: &str,
    value: &mut f64,
    speed: f64,
    range: std::ops::RangeInclusive<f64>,
) {
    let l = ui.label(label);
    ui.add(egui::DragValue::new(value).speed(speed).range(range))
        .labelled_by(l.id);
}

fn text_row(ui: &mut Ui, label: &str, value: &mut String, hint: &str) {
    let l = ui.label(label);
    ui.add(
        egui::TextEdit::singleline(value)
            .hint_text(hint)
            .desired_width(260.0),
    )
    .labelled_by(l.id);
    ui.end_row();
}

//! The screen form: contexts (open datasets or `.h5ad` files, each with an optional obs filter),
//! sampling, the library, the gene sets, the model and the output folder. It builds a validated
//! [`ScreenSpec`] the way the CLI reads one: the form's spec is written as TOML and parsed back
//! by [`ScreenSpec::parse`], so both check the same things.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use c2s_core::bundled::is_bundled;
use c2s_core::engine::Engine;
use c2s_core::engine::locate::resolve_model;
use c2s_core::screen::spec::{
    ContextSpec, ControlSpec, GeneSetSpec, LibrarySpec, ModelSpec, OutputMode, Preprocess,
    SamplingSpec, ScoringMethod, ScreenSpec,
};
use egui::Ui;

use super::dialog::{PendingDialog, take_path};
use super::library::LibraryField;
use super::sets::SetsField;
use crate::gui::jobs::Jobs;
use crate::gui::models::ModelRegistry;
use crate::gui::panels::model_choice::{keep_loaded, model_combo};
use crate::gui::panels::task_form::{number_row, slider_row};
use crate::gui::view::DatasetView;

/// Where a context's cells come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextSource {
    /// An open dataset (its `.h5ad` file), by view id.
    View(u64),
    /// An `.h5ad` file path.
    File(String),
}

/// One context row of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRow {
    /// Name in the results.
    pub name: String,
    /// Its cells.
    pub source: ContextSource,
    /// Optional obs filter `COL=VALUE` (empty: every cell).
    pub filter: String,
    /// Optional obs column whose groups are the samples, each its cells' mean (empty: each
    /// sample is a cell).
    pub pseudobulk: String,
}

/// Which model runs the screen.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A model loaded in the Model tab (registry id).
    Loaded(Option<u64>),
    /// A model directory, loaded by the run.
    Dir(String),
}

/// What [`ScreenForm::build`] gives the run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The validated spec (library read).
    pub spec: ScreenSpec,
    /// The output folder.
    pub out: PathBuf,
    /// The loaded engine when the form names one; else the run loads `spec.model.dir`.
    pub engine: Option<Arc<Engine>>,
    /// Units generated together.
    pub batch: usize,
}

/// The form's state.
#[derive(Debug)]
pub struct ScreenForm {
    /// The contexts, two or more.
    pub contexts: Vec<ContextRow>,
    /// Cells drawn per context.
    pub samples: usize,
    /// Predictions per (perturbation, cell).
    pub replicates: usize,
    /// Seed of the draws and of sampling.
    pub seed: u64,
    /// Sampling temperature.
    pub temperature: f32,
    /// Longest predicted sentence, in tokens.
    pub max_new_tokens: usize,
    /// Genes of each control sentence in the prompt.
    pub top_k: usize,
    /// A perturbation template file (empty: the built-in template).
    pub template_file: String,
    /// Units per batch on the engine.
    pub batch: usize,
    /// Preprocessing of the contexts' matrices before sentences are built.
    pub preprocess: Preprocess,
    /// The perturbation library.
    pub library: LibraryField,
    /// The gene sets.
    pub sets: SetsField,
    /// How predicted sentences are scored.
    pub scoring: ScoringMethod,
    /// ssGSEA weight of reconstructed scoring (and of delta output).
    pub weight: f64,
    /// What the model writes: cell sentences or delta sentences.
    pub output: OutputMode,
    /// For delta output, the fit file of the delta fine-tuning run.
    pub delta_fit: String,
    /// The model.
    pub model: ModelSource,
    /// The output folder.
    pub out_dir: String,
    files: Vec<Option<PendingDialog>>,
    out_dialog: Option<PendingDialog>,
}

impl Default for ScreenForm {
    fn default() -> Self {
        Self {
            contexts: Vec::new(),
            samples: 20,
            replicates: 3,
            seed: 0,
            temperature: c2s_core::screen::spec::DEFAULT_TEMPERATURE,
            max_new_tokens: 4 * 200 + 8,
            top_k: 200,
            template_file: String::new(),
            batch: 8,
            preprocess: Preprocess::C2s,
            library: LibraryField::default(),
            sets: SetsField::default(),
            scoring: ScoringMethod::SentenceRank,
            weight: c2s_core::screen::spec::DEFAULT_RECONSTRUCTED_WEIGHT,
            output: OutputMode::Sentence,
            delta_fit: String::new(),
            model: ModelSource::Loaded(None),
            out_dir: String::new(),
            files: Vec::new(),
            out_dialog: None,
        }
    }
}

impl ScreenForm {
    /// Takes picked files and finished reads; keeps the model choice on a loaded model.
    pub fn update(&mut self, jobs: &mut Jobs, models: &ModelRegistry) {
        self.library.update(jobs);
        self.sets.update(jobs);
        if let ModelSource::Loaded(choice) = &mut self.model {
            keep_loaded(choice, models);
        }
        for (row, slot) in self.contexts.iter_mut().zip(&mut self.files) {
            if let Some(path) = take_path(slot) {
                row.source = ContextSource::File(path.display().to_string());
            }
        }
        if let Some(path) = take_path(&mut self.out_dialog) {
            self.out_dir = path.display().to_string();
        }
    }

    /// Fills the form from a spec (a reopened screen), so the user sees how it was made.
    pub fn fill_from(&mut self, spec: &ScreenSpec, out: &Path) {
        self.contexts = spec
            .contexts
            .iter()
            .map(|c| ContextRow {
                name: c.name.clone(),
                source: ContextSource::File(c.h5ad.display().to_string()),
                filter: c.filter.clone().unwrap_or_default(),
                pseudobulk: c.pseudobulk.clone().unwrap_or_default(),
            })
            .collect();
        self.files = self.contexts.iter().map(|_| None).collect();
        if let Some(first) = spec.contexts.first() {
            self.samples = first.samples;
            self.replicates = first.replicates;
            self.preprocess = first.preprocess;
        }
        self.seed = spec.sampling.seed;
        self.temperature = spec.sampling.temperature;
        self.top_k = spec.model.top_k_genes;
        self.max_new_tokens = spec
            .sampling
            .max_new_tokens
            .unwrap_or(4 * spec.model.top_k_genes + 8);
        self.template_file = spec
            .model
            .template_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        self.library.path = spec.library.path.display().to_string();
        self.library.read = Some(Ok(spec.perturbations.clone()));
        self.sets.path = spec.genesets.gmt.display().to_string();
        self.sets.chosen = spec.genesets.sets.clone();
        self.scoring = spec.genesets.method;
        self.weight = spec.genesets.ssgsea_weight(spec.model.output);
        self.output = spec.model.output;
        self.delta_fit = spec
            .model
            .delta_fit
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        self.model = ModelSource::Dir(spec.model.dir.display().to_string());
        self.out_dir = out.display().to_string();
    }

    /// Draws the form.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        views: &[DatasetView],
        models: &ModelRegistry,
        jobs: &mut Jobs,
    ) {
        ui.strong("Contexts");
        self.contexts_ui(ui, views);
        ui.add_space(4.0);
        egui::Grid::new("screen-sampling")
            .num_columns(2)
            .show(ui, |ui| {
                number_row(ui, "Samples per context", &mut self.samples, 1..=100_000);
                number_row(ui, "Replicates", &mut self.replicates, 1..=1000);
                number_row(ui, "Seed", &mut self.seed, 0..=u64::MAX);
                slider_row(ui, "Temperature", &mut self.temperature, 0.0..=2.0);
                number_row(ui, "Max new tokens", &mut self.max_new_tokens, 1..=65_536);
                number_row(ui, "Genes per prompt", &mut self.top_k, 1..=4096);
                number_row(ui, "Batch size", &mut self.batch, 1..=1024);
                ui.label("Preprocessing");
                ui.horizontal(|ui| {
                    ui.radio_value(
                        &mut self.preprocess,
                        Preprocess::C2s,
                        "C2S (filter, normalise, log10)",
                    )
                    .on_hover_text("200 genes per cell, 3 cells per gene, total 1e4, log10");
                    ui.radio_value(
                        &mut self.preprocess,
                        Preprocess::None,
                        "none (the matrix as stored)",
                    );
                });
                ui.end_row();
                let label = ui.label("Template file");
                ui.add(
                    egui::TextEdit::singleline(&mut self.template_file)
                        .hint_text(match self.output {
                            OutputMode::Sentence => "built-in (perturbation prediction)",
                            OutputMode::Delta => "built-in (perturbation delta)",
                        })
                        .desired_width(300.0),
                )
                .labelled_by(label.id);
                ui.end_row();
            });
        ui.separator();
        self.library.ui(ui, jobs);
        ui.separator();
        self.sets.ui(ui, jobs);
        self.scoring_ui(ui);
        ui.separator();
        self.model_ui(ui, models);
        ui.horizontal(|ui| {
            let label = ui.label("Output folder");
            ui.add(
                egui::TextEdit::singleline(&mut self.out_dir)
                    .hint_text("a new or empty folder, or one holding this screen")
                    .desired_width(300.0),
            )
            .labelled_by(label.id);
            if ui.button("Choose…").clicked() && self.out_dialog.is_none() {
                self.out_dialog =
                    Some(PendingDialog::open(|| rfd::FileDialog::new().pick_folder()));
            }
        });
    }

    fn scoring_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label("Model output");
            ui.radio_value(
                &mut self.output,
                OutputMode::Sentence,
                "perturbed cell sentence",
            );
            ui.radio_value(
                &mut self.output,
                OutputMode::Delta,
                "delta sentence (genes up and down)",
            )
            .on_hover_text(
                "for a model fine-tuned on delta sentences: its predicted changes, sized by \
                 rank from the run's fit, are added to each control profile",
            );
        });
        if self.output == OutputMode::Delta {
            ui.horizontal(|ui| {
                let label = ui.label("Delta fit file");
                ui.add(
                    egui::TextEdit::singleline(&mut self.delta_fit)
                        .hint_text("delta_fit.json of the delta fine-tuning run")
                        .desired_width(300.0),
                )
                .labelled_by(label.id);
                weight_field(ui, &mut self.weight);
            });
            return;
        }
        ui.horizontal(|ui| {
            ui.label("Scoring");
            ui.radio_value(
                &mut self.scoring,
                ScoringMethod::SentenceRank,
                "sentence order (rank-only ssGSEA)",
            );
            ui.radio_value(
                &mut self.scoring,
                ScoringMethod::Reconstructed,
                "reconstructed expression",
            )
            .on_hover_text(
                "ssGSEA on expression rebuilt from each sentence by the context's fitted \
                 rank → expression transform, clipped at 0",
            );
            if self.scoring == ScoringMethod::Reconstructed {
                weight_field(ui, &mut self.weight);
            }
        });
    }

    fn contexts_ui(&mut self, ui: &mut Ui, views: &[DatasetView]) {
        self.files.resize_with(self.contexts.len(), || None);
        let mut remove = None;
        egui::Grid::new("screen-contexts")
            .num_columns(5)
            .striped(true)
            .show(ui, |ui| {
                let name = ui.strong("Name");
                let data = ui.strong("Cells from");
                let filter = ui.strong("Filter (COL=VALUE)");
                let bulk = ui.strong("Pseudo-bulk by").on_hover_text(
                    "An obs column (e.g. donor): each group is one sample, the mean of its cells",
                );
                ui.label("");
                ui.end_row();
                for (k, row) in self.contexts.iter_mut().enumerate() {
                    ui.add(egui::TextEdit::singleline(&mut row.name).desired_width(90.0))
                        .labelled_by(name.id);
                    ui.horizontal(|ui| {
                        source_combo(ui, k, &mut row.source, views);
                        if let ContextSource::File(path) = &mut row.source {
                            ui.add(
                                egui::TextEdit::singleline(path)
                                    .hint_text("cells.h5ad")
                                    .desired_width(180.0),
                            )
                            .labelled_by(data.id);
                            if ui.button("Browse…").clicked() && self.files[k].is_none() {
                                self.files[k] = Some(PendingDialog::open(|| {
                                    rfd::FileDialog::new()
                                        .add_filter("AnnData", &["h5ad"])
                                        .pick_file()
                                }));
                            }
                        }
                    });
                    ui.add(
                        egui::TextEdit::singleline(&mut row.filter)
                            .hint_text("all cells")
                            .desired_width(140.0),
                    )
                    .labelled_by(filter.id);
                    ui.add(
                        egui::TextEdit::singleline(&mut row.pseudobulk)
                            .hint_text("single cells")
                            .desired_width(100.0),
                    )
                    .labelled_by(bulk.id);
                    if ui.button("Remove").clicked() {
                        remove = Some(k);
                    }
                    ui.end_row();
                }
            });
        if let Some(k) = remove {
            self.contexts.remove(k);
            self.files.remove(k);
        }
        if ui.button("Add context").clicked() {
            let k = self.contexts.len();
            let source = views
                .last()
                .map_or(ContextSource::File(String::new()), |v| {
                    ContextSource::View(v.id)
                });
            self.contexts.push(ContextRow {
                name: ((b'A' + (k % 26) as u8) as char).to_string(),
                source,
                filter: String::new(),
                pseudobulk: String::new(),
            });
            self.files.push(None);
        }
    }

    fn model_ui(&mut self, ui: &mut Ui, models: &ModelRegistry) {
        ui.horizontal(|ui| {
            ui.label("Model");
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
                        model_combo(ui, "screen-model", choice, models);
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
    }

    /// The spec, the output folder and the engine of the form, or what is missing or wrong.
    pub fn build(&self, views: &[DatasetView], models: &ModelRegistry) -> Result<Plan, String> {
        if self.contexts.len() < 2 {
            return Err(
                "add two or more contexts: a screen compares drug effects between contexts".into(),
            );
        }
        let out = absolute(self.out_dir.trim(), "the output folder")?;
        let contexts = self
            .contexts
            .iter()
            .map(|row| self.context_spec(row, views))
            .collect::<Result<Vec<_>, String>>()?;
        let library = absolute(self.library.path.trim(), "the library file")?;
        let gmt = absolute(self.sets.path.trim(), "the GMT file")?;
        if self.sets.chosen.is_empty() {
            return Err(
                "choose at least one gene set (load the GMT file, then click a set)".into(),
            );
        }
        let (dir, engine) = match &self.model {
            ModelSource::Loaded(choice) => {
                let model = choice.and_then(|id| models.get(id)).ok_or(
                    "no model is loaded: load one in the Model tab, or give a model folder",
                )?;
                let dir = resolve_model(&model.source).map_err(|e| e.to_string())?;
                (dir, Some(model.engine.clone()))
            }
            ModelSource::Dir(dir) => (absolute(dir.trim(), "the model folder")?, None),
        };
        let template_file = match self.template_file.trim() {
            "" => None,
            t => Some(absolute(t, "the template file")?),
        };
        let delta_fit = match (self.output, self.delta_fit.trim()) {
            (OutputMode::Sentence, _) => None,
            (OutputMode::Delta, "") => {
                return Err(
                    "delta output needs the delta fit file (delta_fit.json of the delta \
                     fine-tuning run)"
                        .into(),
                );
            }
            (OutputMode::Delta, f) => Some(absolute(f, "the delta fit file")?),
        };
        let spec = ScreenSpec {
            contexts,
            library: LibrarySpec {
                path: library,
                known: None,
            },
            model: ModelSpec {
                dir,
                template_file,
                top_k_genes: self.top_k,
                organism: "Homo sapiens".into(),
                output: self.output,
                delta_fit,
            },
            sampling: SamplingSpec {
                temperature: self.temperature,
                seed: self.seed,
                max_new_tokens: Some(self.max_new_tokens),
            },
            genesets: GeneSetSpec {
                gmt,
                sets: self.sets.chosen.clone(),
                method: self.scoring,
                weight: (self.scoring == ScoringMethod::Reconstructed
                    || self.output == OutputMode::Delta)
                    .then_some(self.weight),
            },
            control: ControlSpec::Unperturbed,
            perturbations: Vec::new(),
            delta: None,
        };
        // Through TOML and back: the same validation (and library read) as a spec file.
        let text = spec.to_toml().map_err(|e| e.to_string())?;
        let spec = ScreenSpec::parse(&text, &out).map_err(|e| e.to_string())?;
        Ok(Plan {
            spec,
            out,
            engine,
            batch: self.batch,
        })
    }

    fn context_spec(&self, row: &ContextRow, views: &[DatasetView]) -> Result<ContextSpec, String> {
        let h5ad = match &row.source {
            ContextSource::View(id) => {
                let view = views.iter().find(|v| v.id == *id).ok_or_else(|| {
                    format!(
                        "context {}: its dataset was closed; choose another",
                        row.name
                    )
                })?;
                let columns = row
                    .filter
                    .split_once('=')
                    .map(|(col, _)| col)
                    .into_iter()
                    .chain(Some(row.pseudobulk.as_str()).filter(|c| !c.trim().is_empty()));
                for col in columns {
                    if view.dataset.obs_column(col.trim()).is_none() {
                        return Err(format!(
                            "context {}: {} has no obs column {:?}",
                            row.name,
                            view.title,
                            col.trim()
                        ));
                    }
                }
                view.dataset.source.clone().ok_or_else(|| {
                    format!(
                        "context {}: {} has no file (a screen reads its contexts from .h5ad files); \
                         open a file instead",
                        row.name, view.title
                    )
                })?
            }
            ContextSource::File(path) => absolute(
                path.trim(),
                &format!("the .h5ad file of context {}", row.name),
            )?,
        };
        let filter = match row.filter.trim() {
            "" => None,
            f => Some(f.to_string()),
        };
        let pseudobulk = match row.pseudobulk.trim() {
            "" => None,
            c => Some(c.to_string()),
        };
        Ok(ContextSpec {
            name: row.name.trim().to_string(),
            h5ad,
            filter,
            pseudobulk,
            samples: self.samples,
            replicates: self.replicates,
            seed: self.seed,
            preprocess: self.preprocess,
        })
    }
}

/// The drop-down choosing an open dataset or a file for context `k`.
fn source_combo(ui: &mut Ui, k: usize, source: &mut ContextSource, views: &[DatasetView]) {
    let shown = match source {
        ContextSource::View(id) => views
            .iter()
            .find(|v| v.id == *id)
            .map_or_else(|| "closed dataset".to_string(), |v| v.title.clone()),
        ContextSource::File(_) => "file".into(),
    };
    egui::ComboBox::from_id_salt(("screen-context-source", k))
        .selected_text(shown)
        .show_ui(ui, |ui| {
            for v in views {
                ui.selectable_value(source, ContextSource::View(v.id), v.title.as_str());
            }
            if ui
                .selectable_label(matches!(source, ContextSource::File(_)), "file…")
                .clicked()
                && !matches!(source, ContextSource::File(_))
            {
                *source = ContextSource::File(String::new());
            }
        });
}

/// `path` made absolute (against the working folder), or a message naming `what` when empty.
/// The labelled ssGSEA weight of expression scoring.
fn weight_field(ui: &mut Ui, weight: &mut f64) {
    let label = ui.label("ssGSEA weight");
    ui.add(egui::DragValue::new(weight).range(0.0..=2.0).speed(0.05))
        .labelled_by(label.id);
}

fn absolute(path: &str, what: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err(format!("{what} is not given"));
    }
    if is_bundled(Path::new(path)) {
        return Ok(PathBuf::from(path));
    }
    std::path::absolute(path).map_err(|e| format!("{what} {path:?}: {e}"))
}

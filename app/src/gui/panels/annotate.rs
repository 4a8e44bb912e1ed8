//! The Annotate tab: predict the cell type of the selected cells (or all cells) of the active
//! dataset with a loaded C2S model, by free generation or by ranking candidate labels. The
//! labels land in obs `c2s_cell_type` (with `c2s_cell_type_score`) and colour the plot; each
//! cell's prompt and answer can be inspected, and a label column gives the accuracy.
//!
//! The run is an accelerator-lane job that streams each finished batch; Cancel keeps the cells
//! already done.

use std::sync::Arc;
use std::time::Instant;

use c2s_core::dataset::{ColumnData, Dataset, ObsColumn};
use c2s_core::engine::Engine;
use c2s_core::metrics::Confusion;
use c2s_core::tasks::annotate::{
    AnnotateMode, AnnotateRequest, Annotations, CellAnnotation, annotate, check_labels,
};
use c2s_core::tasks::prompt::PromptSettings;
use egui::Ui;

use super::cell_prompts::{cell_type_prompts, cell_type_settings};
use super::model_choice::{chosen_model, keep_loaded, model_combo};
use super::{Panel, PanelContext};
use crate::gui::actions::Action;
use crate::gui::coloring::ColorSource;
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// The obs column the labels go to.
pub const LABEL_COLUMN: &str = "c2s_cell_type";
/// The obs column the scores go to.
pub const SCORE_COLUMN: &str = "c2s_cell_type_score";

/// Where the candidate labels come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSource {
    /// The model writes the label.
    Generate,
    /// Rank the values of this obs column.
    Column(String),
    /// Rank this comma-separated list.
    List(String),
}

/// A finished (or cancelled) run.
#[derive(Debug, Clone)]
pub struct AnnotateRun {
    /// The view it ran on.
    pub view: u64,
    /// The model's name.
    pub model: String,
    /// The cells, in the order of `cells`.
    pub rows: Vec<usize>,
    /// Each cell's prompt.
    pub prompts: Vec<String>,
    /// The answers so far.
    pub cells: Vec<CellAnnotation>,
    /// Whether the run was cancelled before the end.
    pub cancelled: bool,
}

/// What the job hands back: the prompts it built and the answers.
#[derive(Debug)]
pub struct AnnotateOutput {
    /// One prompt per cell.
    pub prompts: Vec<String>,
    /// The answers (all, or those done before a cancel).
    pub annotations: Annotations,
}

/// What a running job keeps.
#[derive(Debug)]
struct Running {
    job: JobHandle<AnnotateOutput, Vec<CellAnnotation>>,
    run: AnnotateRun,
}

/// The Annotate tab.
#[derive(Debug)]
pub struct AnnotatePanel {
    /// The loaded model to use.
    pub model: Option<u64>,
    /// Generation or ranking.
    pub labels: LabelSource,
    /// Genes per cell sentence.
    pub top_k: usize,
    /// Organism named in the prompt.
    pub organism: String,
    /// A template file in the cell2sentence JSON format (empty: the built-in template).
    pub template_file: String,
    /// Prompts per batch.
    pub batch: usize,
    /// Annotate every cell instead of the selection.
    pub all_cells: bool,
    /// obs column to compare the labels with.
    pub compare: Option<String>,
    running: Option<Running>,
    /// The last run.
    pub last: Option<AnnotateRun>,
    /// Row of `last` shown in the inspector.
    pub inspect: Option<usize>,
    /// An error to show.
    pub error: Option<String>,
}

impl Default for AnnotatePanel {
    fn default() -> Self {
        Self {
            model: None,
            labels: LabelSource::Generate,
            top_k: 200,
            organism: "Homo sapiens".into(),
            template_file: String::new(),
            batch: 16,
            all_cells: false,
            compare: None,
            running: None,
            last: None,
            inspect: None,
            error: None,
        }
    }
}

impl Panel for AnnotatePanel {
    fn id(&self) -> &'static str {
        "annotate"
    }

    fn title(&self) -> &'static str {
        "Annotate"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        keep_loaded(&mut self.model, cx.models);
        let Some(running) = &mut self.running else {
            return;
        };
        let polled = running.job.poll();
        for batch in polled.partials {
            running.run.cells.extend(batch);
        }
        let Some(result) = polled.result else {
            return;
        };
        let Some(Running { mut run, .. }) = self.running.take() else {
            return;
        };
        match result {
            Ok(done) => {
                run.cancelled = done.annotations.cancelled;
                run.cells = done.annotations.cells;
                run.prompts = done.prompts;
            }
            // A failure or cancel keeps the batches that streamed in.
            Err(JobError::Cancelled) => run.cancelled = true,
            Err(JobError::Failed(e)) => self.error = Some(e),
        }
        if let Some(view) = cx.views.iter_mut().find(|v| v.id == run.view)
            && !run.cells.is_empty()
        {
            match write_columns(view.n_cells(), &run)
                .into_iter()
                .try_for_each(|c| view.set_obs_column(c))
            {
                Ok(()) => cx.actions.push(Action::ColorBy(
                    run.view,
                    ColorSource::Obs(LABEL_COLUMN.into()),
                )),
                Err(e) => self.error = Some(e),
            }
        }
        self.inspect = None;
        self.last = Some(run);
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
                self.results(ui, cx);
            });
    }
}

impl AnnotatePanel {
    fn form(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.strong("Annotate cells with a model");
        if cx.models.models().is_empty() {
            ui.label("No model is loaded: load one in the Model tab.");
            if ui.button("Open the Model tab").clicked() {
                cx.actions.push(Action::OpenPanel("model"));
            }
            return;
        }
        let Some((columns, selected, total)) = cx.active_view().map(|view| {
            let columns: Vec<String> = view
                .dataset
                .obs
                .iter()
                .filter(|c| matches!(c.data, ColumnData::Categorical { .. } | ColumnData::Text(_)))
                .map(|c| c.name.clone())
                .collect();
            (columns, view.selection.count(), view.n_cells())
        }) else {
            ui.label("Open a dataset first.");
            return;
        };
        egui::Grid::new("annotate-form")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Model");
                model_combo(ui, "annotate-model", &mut self.model, cx.models);
                ui.end_row();
                ui.label("Cells");
                ui.horizontal(|ui| {
                    ui.radio_value(
                        &mut self.all_cells,
                        false,
                        format!("selection ({selected})"),
                    );
                    ui.radio_value(&mut self.all_cells, true, format!("all ({total})"));
                });
                ui.end_row();
                ui.label("Labels");
                ui.vertical(|ui| {
                    let generate = self.labels == LabelSource::Generate;
                    if ui.radio(generate, "the model writes them").clicked() {
                        self.labels = LabelSource::Generate;
                    }
                    let from_column = matches!(self.labels, LabelSource::Column(_));
                    ui.horizontal(|ui| {
                        if ui.radio(from_column, "rank the values of").clicked() && !from_column {
                            self.labels =
                                LabelSource::Column(columns.first().cloned().unwrap_or_default());
                        }
                        if let LabelSource::Column(col) = &mut self.labels {
                            egui::ComboBox::from_id_salt("annotate-labels-from")
                                .selected_text(col.as_str())
                                .show_ui(ui, |ui| {
                                    for c in &columns {
                                        ui.selectable_value(col, c.clone(), c);
                                    }
                                });
                        }
                    });
                    let from_list = matches!(self.labels, LabelSource::List(_));
                    ui.horizontal(|ui| {
                        if ui.radio(from_list, "rank these:").clicked() && !from_list {
                            self.labels = LabelSource::List(String::new());
                        }
                        if let LabelSource::List(text) = &mut self.labels {
                            ui.add(
                                egui::TextEdit::singleline(text)
                                    .hint_text("B cell, T cell, NK cell")
                                    .desired_width(220.0),
                            );
                        }
                    });
                });
                ui.end_row();
                let label = ui.label("Genes per cell");
                ui.add(egui::DragValue::new(&mut self.top_k).range(1..=4096))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Organism");
                ui.text_edit_singleline(&mut self.organism)
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
                let label = ui.label("Compare with");
                egui::ComboBox::from_id_salt("annotate-compare")
                    .selected_text(self.compare.as_deref().unwrap_or("(none)"))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut self.compare, None, "(none)");
                        for c in columns.iter().filter(|c| c.as_str() != LABEL_COLUMN) {
                            ui.selectable_value(&mut self.compare, Some(c.clone()), c);
                        }
                    })
                    .response
                    .labelled_by(label.id);
                ui.end_row();
            });
        ui.horizontal(|ui| {
            if let Some(running) = &self.running {
                ui.spinner();
                ui.label(format!(
                    "{} of {} cells",
                    running.run.cells.len(),
                    running.run.rows.len()
                ));
                if ui.button("Cancel").clicked() {
                    running.job.cancel();
                }
            } else if ui.button("Annotate").clicked() {
                self.error = None;
                if let Err(e) = self.start(cx) {
                    self.error = Some(e);
                }
            }
        });
    }

    /// Starts a run on the active view.
    pub fn start(&mut self, cx: &mut PanelContext<'_>) -> Result<(), String> {
        let model = chosen_model(self.model, cx.models)?;
        let all = self.all_cells;
        let view = cx.active_view().ok_or("open a dataset first")?;
        let rows: Vec<usize> = if all {
            (0..view.n_cells()).collect()
        } else {
            view.selection.indices()
        };
        if rows.is_empty() {
            return Err("no cell is selected: lasso some cells, or choose all cells".into());
        }
        let mode = match &self.labels {
            LabelSource::Generate => AnnotateMode::greedy(),
            LabelSource::Column(col) => AnnotateMode::Rank {
                labels: view
                    .dataset
                    .obs_column(col)
                    .map(|c| c.data.distinct_values())
                    .ok_or_else(|| format!("obs has no column '{col}'"))?,
            },
            LabelSource::List(text) => AnnotateMode::Rank {
                labels: text
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
            },
        };
        if let AnnotateMode::Rank { labels } = &mode {
            check_labels(labels)?;
        }
        let settings = cell_type_settings(&self.template_file, self.top_k, &self.organism)?;
        let dataset = view.dataset.clone();
        let view_id = view.id;
        let job = spawn_annotate(
            cx.jobs,
            model.engine.clone(),
            &model.name(),
            (dataset, rows.clone()),
            settings,
            mode,
            self.batch,
        );
        self.running = Some(Running {
            job,
            run: AnnotateRun {
                view: view_id,
                model: model.name(),
                rows,
                prompts: Vec::new(),
                cells: Vec::new(),
                cancelled: false,
            },
        });
        Ok(())
    }

    fn results(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        let Some(run) = &self.last else {
            ui.weak("Results appear here and in obs 'c2s_cell_type'.");
            return;
        };
        ui.strong(format!(
            "{} cells annotated with {}{}",
            run.cells.len(),
            run.model,
            if run.cancelled {
                format!(
                    " (cancelled; {} not done)",
                    run.rows.len() - run.cells.len()
                )
            } else {
                String::new()
            }
        ));
        let view = cx.views.iter().find(|v| v.id == run.view);
        if let (Some(col), Some(view)) = (&self.compare, view)
            && let Some(truth) = view.dataset.obs_column(col)
        {
            let truths: Vec<Option<String>> =
                run.rows.iter().map(|&r| truth.data.text_at(r)).collect();
            let pairs = run
                .cells
                .iter()
                .zip(&truths)
                .filter_map(|(a, t)| Some((t.as_deref()?, a.label.as_str())));
            confusion_ui(ui, col, &Confusion::new(pairs));
        }
        let ids = view
            .map(|v| v.dataset.obs_names.clone())
            .unwrap_or_default();
        egui::Grid::new("annotate-results")
            .striped(true)
            .num_columns(3)
            .show(ui, |ui| {
                ui.strong("cell");
                ui.strong("label");
                ui.strong("score");
                ui.end_row();
                for (i, (a, &row)) in run.cells.iter().zip(&run.rows).enumerate().take(200) {
                    let id = ids.get(row).cloned().unwrap_or_else(|| row.to_string());
                    if ui.selectable_label(self.inspect == Some(i), id).clicked() {
                        self.inspect = Some(i);
                    }
                    ui.label(&a.label);
                    ui.label(format!("{:.3}", a.score));
                    ui.end_row();
                }
            });
        if run.cells.len() > 200 {
            ui.weak(format!(
                "{} more in obs '{LABEL_COLUMN}'",
                run.cells.len() - 200
            ));
        }
        if let Some(i) = self.inspect
            && let (Some(a), Some(prompt)) = (run.cells.get(i), run.prompts.get(i))
        {
            ui.separator();
            ui.strong("Prompt");
            ui.label(egui::RichText::new(prompt).monospace());
            ui.strong("Output");
            ui.label(egui::RichText::new(&a.output).monospace());
            for (label, p) in &a.top {
                ui.label(format!("{label}: {:.3}", p));
            }
        }
    }
}

/// Labels shown per side of the confusion table; the rest are summed up in words.
const CONFUSION_MAX: usize = 25;

/// The accuracy against column `col` and the confusion table (true labels as rows, predicted
/// as columns, each row's recall at its end).
pub(crate) fn confusion_ui(ui: &mut Ui, col: &str, c: &Confusion) {
    ui.label(format!(
        "accuracy against {col}: {} of {} ({:.1} %)",
        c.correct,
        c.total,
        100.0 * c.accuracy()
    ));
    if c.truth.len() > CONFUSION_MAX || c.predicted.len() > CONFUSION_MAX {
        ui.weak(format!(
            "{} true and {} predicted labels: too many for a table",
            c.truth.len(),
            c.predicted.len()
        ));
        return;
    }
    egui::CollapsingHeader::new("confusion table")
        .default_open(true)
        .show(ui, |ui| {
            egui::Grid::new("annotate-confusion")
                .striped(true)
                .show(ui, |ui| {
                    ui.weak(format!("rows: {col}; columns: predicted"));
                    for p in &c.predicted {
                        ui.strong(p);
                    }
                    ui.strong("recall");
                    ui.end_row();
                    for (row, t) in c.truth.iter().enumerate() {
                        ui.strong(t);
                        for col in 0..c.predicted.len() {
                            let n = c.count(row, col);
                            let text = egui::RichText::new(n.to_string());
                            ui.label(if row == col && n > 0 {
                                text.strong()
                            } else {
                                text
                            });
                        }
                        ui.label(format!("{:.0} %", 100.0 * c.recall(row)));
                        ui.end_row();
                    }
                });
        });
}

/// Starts the annotation job in the accelerator lane: it builds the prompts of `cells` (a
/// dataset and rows), then annotates them.
fn spawn_annotate(
    jobs: &mut Jobs,
    engine: Arc<Engine>,
    model: &str,
    cells: (Arc<Dataset>, Vec<usize>),
    settings: PromptSettings,
    mode: AnnotateMode,
    batch: usize,
) -> JobHandle<AnnotateOutput, Vec<CellAnnotation>> {
    let total = cells.1.len();
    jobs.spawn(
        format!("Annotating {total} cells with {model}"),
        Lane::Accelerator,
        move |job: &JobContext<Vec<CellAnnotation>>| {
            job.set(0.0, "building prompts");
            let (prompts, empty) =
                cell_type_prompts(&cells.0, &cells.1, &settings).map_err(JobError::Failed)?;
            if empty > 0 {
                return Err(JobError::Failed(format!(
                    "{empty} of the chosen cells express no gene in the loaded matrix; leave \
                     them out of the selection"
                )));
            }
            let response = settings.template.response[0].clone();
            let request = AnnotateRequest {
                prompts: &prompts,
                response: &response,
                key: "cell_type",
                mode: &mode,
                batch,
                genes_per_prompt: settings.top_k,
            };
            let started = Instant::now();
            let annotations = annotate(&engine, &request, job.cancel_flag(), &mut |done, new| {
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                job.set(
                    done as f32 / total as f32,
                    format!("{done} of {total} cells, {rate:.1} cells/s"),
                );
                job.send(new.to_vec());
            })
            .map_err(|e| JobError::Failed(e.to_string()))?;
            Ok(AnnotateOutput {
                prompts,
                annotations,
            })
        },
    )
}

/// The label (categorical) and score columns of a run over a view of `n` cells; cells not
/// annotated are missing.
fn write_columns(n: usize, run: &AnnotateRun) -> Vec<ObsColumn> {
    let mut categories: Vec<String> = Vec::new();
    let mut codes = vec![-1i32; n];
    let mut scores = vec![f64::NAN; n];
    for (a, &row) in run.cells.iter().zip(&run.rows) {
        let code = match categories.iter().position(|c| *c == a.label) {
            Some(c) => c,
            None => {
                categories.push(a.label.clone());
                categories.len() - 1
            }
        };
        codes[row] = code as i32;
        scores[row] = a.score;
    }
    vec![
        ObsColumn {
            name: LABEL_COLUMN.into(),
            data: ColumnData::Categorical { codes, categories },
        },
        ObsColumn {
            name: SCORE_COLUMN.into(),
            data: ColumnData::Numeric(scores),
        },
    ]
}

//! The Ask tab: summarise the selected cells in prose, or ask a free question about them, with
//! a loaded C2S model. A few cells are drawn from the selection with a seed (and named), their
//! sentences form a multi-cell prompt, and the answer streams in token by token. Each answer is
//! kept with its provenance (model, task, cells, seed, sampling, the exact prompt) in the
//! dataset's history, which is written to `uns` when the annotations are exported.

use std::collections::BTreeMap;
use std::sync::Arc;

use c2s_core::engine::{Engine, GenerateOptions, SamplingParams};
use c2s_core::tasks::Task;
use c2s_core::tasks::prompt::{PromptBuilder, PromptSettings};
use c2s_core::tasks::sample::sample_rows;
use c2s_core::tasks::template::{PromptTemplate, TemplateChoice};
use egui::Ui;

use super::model_choice::{chosen_model, keep_loaded, model_combo};
use super::{Panel, PanelContext};
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// Prefix of the `uns` keys of kept answers.
pub const UNS_PREFIX: &str = "c2s_answer_";

/// What the running job was asked.
#[derive(Debug, Clone)]
struct Question {
    view: u64,
    provenance: serde_json::Map<String, serde_json::Value>,
}

/// The Ask tab.
#[derive(Debug)]
pub struct AskPanel {
    /// The loaded model to use.
    pub model: Option<u64>,
    /// The question; empty asks for a summary.
    pub question: String,
    /// Cells drawn from the selection.
    pub n_cells: usize,
    /// Genes per cell.
    pub top_k: usize,
    /// Seed of the draw of cells.
    pub seed: u64,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Longest answer in tokens.
    pub max_new_tokens: usize,
    /// A template file in the cell2sentence JSON format for the task asked (empty: built-in).
    pub template_file: String,
    /// The answer streaming in.
    pub streaming: String,
    running: Option<(Question, JobHandle<String, String>)>,
    /// An error to show.
    pub error: Option<String>,
}

impl Default for AskPanel {
    fn default() -> Self {
        Self {
            model: None,
            question: String::new(),
            n_cells: 5,
            top_k: 50,
            seed: 0,
            temperature: 0.0,
            max_new_tokens: 200,
            template_file: String::new(),
            streaming: String::new(),
            running: None,
            error: None,
        }
    }
}

impl Panel for AskPanel {
    fn id(&self) -> &'static str {
        "ask"
    }

    fn title(&self) -> &'static str {
        "Ask"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        keep_loaded(&mut self.model, cx.models);
        let Some((question, job)) = &mut self.running else {
            return;
        };
        let polled = job.poll();
        for piece in polled.partials {
            self.streaming.push_str(&piece);
        }
        let Some(result) = polled.result else {
            return;
        };
        let (question, answer) = match result {
            Ok(text) => (question.clone(), text),
            Err(JobError::Cancelled) => (question.clone(), self.streaming.clone()),
            Err(JobError::Failed(e)) => {
                self.error = Some(e);
                self.running = None;
                return;
            }
        };
        self.running = None;
        self.streaming.clear();
        if let Some(view) = cx.views.iter_mut().find(|v| v.id == question.view) {
            let mut record = question.provenance;
            record.insert("answer".into(), answer.into());
            let n = view
                .added_uns
                .iter()
                .filter(|(k, _)| k.starts_with(UNS_PREFIX))
                .count();
            view.added_uns
                .push((format!("{UNS_PREFIX}{}", n + 1), record.into()));
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
                if self.running.is_some() || !self.streaming.is_empty() {
                    ui.separator();
                    ui.label(egui::RichText::new(&self.streaming).monospace());
                }
                ui.separator();
                history(ui, cx);
            });
    }
}

impl AskPanel {
    fn form(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.strong("Ask the model about the selected cells");
        if cx.models.models().is_empty() {
            ui.label("No model is loaded: load one in the Model tab.");
            return;
        }
        egui::Grid::new("ask-form").num_columns(2).show(ui, |ui| {
            ui.label("Model");
            model_combo(ui, "ask-model", &mut self.model, cx.models);
            ui.end_row();
            let label = ui.label("Question");
            ui.add(
                egui::TextEdit::multiline(&mut self.question)
                    .hint_text("empty: summarise the cells")
                    .desired_rows(2)
                    .desired_width(320.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            ui.label("Cells in the prompt");
            ui.add(egui::DragValue::new(&mut self.n_cells).range(1..=50));
            ui.end_row();
            ui.label("Genes per cell");
            ui.add(egui::DragValue::new(&mut self.top_k).range(1..=1000));
            ui.end_row();
            ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.seed));
            ui.end_row();
            let label = ui.label("Template file");
            ui.add(
                egui::TextEdit::singleline(&mut self.template_file)
                    .hint_text("built-in")
                    .desired_width(260.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            ui.label("Temperature");
            ui.add(
                egui::DragValue::new(&mut self.temperature)
                    .range(0.0..=2.0)
                    .speed(0.05),
            );
            ui.end_row();
        });
        ui.horizontal(|ui| {
            if let Some((_, job)) = &self.running {
                ui.spinner();
                if ui.button("Stop").clicked() {
                    job.cancel();
                }
            } else {
                let label = if self.question.trim().is_empty() {
                    "Summarise"
                } else {
                    "Ask"
                };
                if ui.button(label).clicked() {
                    self.error = self.start(cx).err();
                }
            }
        });
    }

    /// Builds the prompt from the selection and starts the streamed generation.
    pub fn start(&mut self, cx: &mut PanelContext<'_>) -> Result<(), String> {
        let model = chosen_model(self.model, cx.models)?;
        let view = cx.active_view().ok_or("open a dataset first")?;
        let selected = view.selection.indices();
        if selected.is_empty() {
            return Err("no cell is selected: lasso or pick some cells first".into());
        }
        let question = self.question.trim().to_string();
        let task = if question.is_empty() {
            Task::NaturalLanguageInterpretation
        } else {
            Task::Question
        };
        let rows = sample_rows(&selected, self.n_cells, self.seed);
        let names: Vec<&str> = rows
            .iter()
            .map(|&r| view.dataset.obs_names[r].as_str())
            .collect();
        let sentences: Vec<String> = rows.iter().map(|&r| view.sentence(r, self.top_k)).collect();
        if sentences.iter().any(String::is_empty) {
            return Err(
                "a drawn cell expresses no gene in the loaded matrix; change the seed or the \
                 selection"
                    .into(),
            );
        }
        let template = match self.template_file.trim() {
            "" => task.builtin_template(),
            path => {
                PromptTemplate::from_file(std::path::Path::new(path)).map_err(|e| e.to_string())?
            }
        };
        let settings = PromptSettings {
            task,
            template,
            choice: TemplateChoice::First,
            seed: 0,
            top_k: self.top_k,
            organism: "Homo sapiens".into(),
        };
        let mut builder = PromptBuilder::new(settings).map_err(|e| e.to_string())?;
        let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let fields = BTreeMap::from([("question", question.as_str())]);
        let prompt = builder
            .multi(&names.join(";"), &refs, &fields)
            .map_err(|e| e.to_string())?
            .model_input;
        let mut provenance = serde_json::Map::new();
        for (k, v) in [
            ("task", task.name().to_string()),
            ("question", question.clone()),
            ("model", model.name()),
            ("cells", names.join(",")),
            ("prompt", prompt.clone()),
        ] {
            provenance.insert(k.into(), v.into());
        }
        provenance.insert("seed".into(), self.seed.into());
        provenance.insert("selected_cells".into(), selected.len().into());
        provenance.insert("temperature".into(), f64::from(self.temperature).into());
        provenance.insert("genes_per_cell".into(), self.top_k.into());
        let view_id = view.id;
        let options = GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                seed: Some(self.seed),
                ..Default::default()
            },
            ..Default::default()
        };
        let job = spawn_answer(
            cx.jobs,
            model.engine.clone(),
            &model.name(),
            prompt,
            options,
        );
        self.streaming.clear();
        self.running = Some((
            Question {
                view: view_id,
                provenance,
            },
            job,
        ));
        Ok(())
    }
}

/// The active dataset's kept answers, newest first.
fn history(ui: &mut Ui, cx: &mut PanelContext<'_>) {
    let Some(view) = cx.active_view() else {
        return;
    };
    let answers: Vec<&(String, serde_json::Value)> = view
        .added_uns
        .iter()
        .filter(|(k, _)| k.starts_with(UNS_PREFIX))
        .collect();
    if answers.is_empty() {
        ui.weak("Answers about this dataset are kept here and exported to uns.");
        return;
    }
    for (key, record) in answers.into_iter().rev() {
        let text = |k: &str| record.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let title = match text("question") {
            "" => format!("{key}: summary of {}", text("cells")),
            q => format!("{key}: {q}"),
        };
        egui::CollapsingHeader::new(title)
            .id_salt(key)
            .default_open(true)
            .show(ui, |ui| {
                ui.label(text("answer"));
                ui.weak(format!(
                    "{} · cells {} · seed {}",
                    text("model"),
                    text("cells"),
                    record.get("seed").cloned().unwrap_or_default()
                ));
                ui.collapsing("prompt", |ui| {
                    ui.label(egui::RichText::new(text("prompt")).monospace());
                });
            });
    }
}

/// Streams the answer to `prompt` in the accelerator lane; the job's cancel flag is the
/// engine's.
fn spawn_answer(
    jobs: &mut Jobs,
    engine: Arc<Engine>,
    model: &str,
    prompt: String,
    options: GenerateOptions,
) -> JobHandle<String, String> {
    let max = options.max_new_tokens;
    jobs.spawn(
        format!("Answering with {model}"),
        Lane::Accelerator,
        move |job: &JobContext<String>| {
            let mut n = 0usize;
            let (out, _) = engine
                .generate(
                    &[prompt.as_str()],
                    &options,
                    &mut |event| {
                        n += 1;
                        job.set(n as f32 / max.max(1) as f32, format!("{n} tokens"));
                        if !event.text_delta.is_empty() {
                            job.send(event.text_delta.to_string());
                        }
                    },
                    Some(job.cancel_flag()),
                )
                .map_err(|e| JobError::Failed(e.to_string()))?;
            Ok(out.into_iter().next().map(|g| g.text).unwrap_or_default())
        },
    )
}

//! The Fine-tune tab: LoRA fine-tuning of a C2S model on the cells of an open dataset, from a
//! form ([`form`], its rarely changed settings in [`advanced`]) through a preview with memory and time estimates ([`estimate`]) to a run
//! with live loss curves ([`curves`]) that can be paused, resumed and cancelled, and, once
//! done, the adapter loaded into the app and the held-out cells annotated with it
//! ([`results`]). The jobs are in [`job`]; the examples come from the core
//! (`c2s_core::train::cells`), as the CLI's `finetune` builds them.

pub mod advanced;
pub mod curves;
pub mod estimate;
pub mod form;
pub mod job;
pub mod results;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Instant;

use c2s_core::engine::{DTypeRequest, LoadOptions};
use c2s_core::train::trainer::{StepRecord, read_log};
use egui::Ui;

use self::estimate::{MEMORY_FORMULA, duration_words};
use self::form::{FinetuneForm, Request};
use self::job::{Estimate, HeldOut, TrainDone, spawn_estimate, spawn_train};
use crate::format::human_bytes;
use crate::gui::jobs::{JobError, JobHandle};
use crate::gui::panels::{Panel, PanelContext};

/// A run in progress.
#[derive(Debug)]
struct Running {
    job: JobHandle<TrainDone, StepRecord>,
    /// Pause (rather than cancel) was asked for.
    pausing: bool,
    started: Instant,
    tokens: usize,
    steps_here: usize,
}

/// The Fine-tune tab.
#[derive(Debug, Default)]
pub struct FinetunePanel {
    /// The form.
    pub form: FinetuneForm,
    estimating: Option<JobHandle<Estimate>>,
    estimate: Option<Estimate>,
    run: Option<Running>,
    /// The request of the current (or paused) run: Resume uses it unchanged.
    request: Option<Request>,
    /// Total steps of the current run.
    total: usize,
    /// Every step's record so far.
    pub records: Vec<StepRecord>,
    paused: bool,
    /// A run stopped in (or found in) an output folder, which "Resume the run in this folder"
    /// continues from its checkpoint.
    resumable: Option<Request>,
    done: Option<TrainDone>,
    heldout: Option<JobHandle<HeldOut>>,
    held_result: Option<HeldOut>,
    message: Option<String>,
    error: Option<String>,
}

impl Panel for FinetunePanel {
    fn id(&self) -> &'static str {
        "finetune"
    }

    fn title(&self) -> &'static str {
        "Fine-tune"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        self.form.update(cx.views, cx.models);
        if let Some(job) = &mut self.estimating
            && let Some(result) = job.poll().result
        {
            self.estimating = None;
            match result {
                Ok(e) => self.estimate = Some(e),
                Err(JobError::Cancelled) => {}
                Err(JobError::Failed(e)) => self.error = Some(e),
            }
        }
        self.poll_run();
        if let Some(job) = &mut self.heldout
            && let Some(result) = job.poll().result
        {
            self.heldout = None;
            match result {
                Ok(h) => self.held_result = Some(h),
                Err(JobError::Cancelled) => {}
                Err(JobError::Failed(e)) => self.error = Some(e),
            }
        }
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        egui::ScrollArea::vertical()
            .id_salt("finetune-panel")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.strong("Fine-tune a model on cells (LoRA)");
                egui::CollapsingHeader::new("Setup")
                    .id_salt("finetune-setup")
                    .default_open(true)
                    .show(ui, |ui| self.form.ui(ui, cx.views, cx.models));
                ui.separator();
                self.controls(ui, cx);
                if let Some(e) = &self.error {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                if let Some(m) = &self.message {
                    ui.label(m);
                }
                if let Some(e) = &self.estimate {
                    ui.separator();
                    estimate_ui(ui, e);
                }
                if !self.records.is_empty() || self.run.is_some() {
                    ui.separator();
                    self.progress_ui(ui);
                    curves::show(ui, &self.records);
                }
                if let (Some(done), Some(req)) = (&self.done, &self.request) {
                    ui.separator();
                    results::show(
                        ui,
                        cx,
                        results::Finished { done, req },
                        &mut self.heldout,
                        &self.held_result,
                        &mut self.error,
                    );
                }
            });
    }
}

impl FinetunePanel {
    fn poll_run(&mut self) {
        let Some(run) = &mut self.run else {
            return;
        };
        let polled = run.job.poll();
        for r in polled.partials {
            run.tokens += r.tokens;
            run.steps_here += 1;
            // A resumed run repeats no step: drop any record from this step on.
            self.records.retain(|k| k.step < r.step);
            self.records.push(r);
        }
        let Some(result) = polled.result else {
            return;
        };
        let pausing = run.pausing;
        self.run = None;
        let last = self.records.last().map_or(0, |r| r.step);
        match result {
            Ok(done) => {
                let s = &done.summary;
                let best = s
                    .best
                    .map(|(step, v)| format!("; best validation loss {v:.4} at step {step}"))
                    .unwrap_or_default();
                self.message = Some(format!(
                    "finished: {} steps on {} ({} train / {} held-out examples), final loss \
                     {:.4}{best}",
                    s.steps, done.device, s.split.0, s.split.1, s.final_loss
                ));
                self.done = Some(done);
            }
            Err(JobError::Cancelled) if pausing => {
                self.paused = true;
                self.message = Some(format!(
                    "paused after step {last} (checkpointed); Resume continues from there"
                ));
            }
            Err(JobError::Cancelled) => {
                self.resumable = self.request.clone();
                self.message = Some(format!(
                    "cancelled after step {last}; the output folder keeps its checkpoint, \
                     from which the run can be resumed"
                ));
            }
            Err(JobError::Failed(e)) => self.error = Some(e),
        }
    }

    fn controls(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.horizontal(|ui| {
            let busy = self.run.is_some() || self.estimating.is_some();
            if ui
                .add_enabled(!busy, egui::Button::new("Preview and estimate"))
                .clicked()
            {
                self.error = None;
                match self.form.request(cx.views, cx.models) {
                    Ok(req) => {
                        self.estimate = None;
                        self.estimating = Some(spawn_estimate(cx.jobs, req));
                    }
                    Err(e) => self.error = Some(e),
                }
            }
            if let Some(run) = &mut self.run {
                if ui.button("Pause").clicked() {
                    run.pausing = true;
                    run.job.cancel();
                }
                if ui.button("Cancel training").clicked() {
                    run.pausing = false;
                    run.job.cancel();
                }
                ui.spinner();
            } else {
                if ui
                    .add_enabled(!busy, egui::Button::new("Start training"))
                    .clicked()
                {
                    self.start(cx);
                }
                if let Some(req) = self.folder_run().filter(|_| !self.paused) {
                    let req = req.clone();
                    if ui
                        .add_enabled(!busy, egui::Button::new("Resume the run in this folder"))
                        .on_hover_text("continue from its last checkpoint, with these settings")
                        .clicked()
                    {
                        self.resume_folder(cx, req);
                    }
                }
                if self.paused {
                    if ui.button("Resume").clicked() {
                        self.resume(cx);
                    }
                    if ui.button("Cancel").clicked() {
                        self.paused = false;
                        self.message = Some(
                            "the paused run is dropped; its checkpoint stays in the output folder"
                                .into(),
                        );
                    }
                }
            }
            if self.estimating.is_some() {
                ui.spinner();
                ui.label("previewing…");
            }
        });
    }

    /// Starts a new run from the form.
    fn start(&mut self, cx: &mut PanelContext<'_>) {
        self.error = None;
        self.message = None;
        let req = match self.form.request(cx.views, cx.models) {
            Ok(req) => req,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        if req.out.join("split.json").exists() {
            self.error = Some(format!(
                "{} already holds a run: resume it, or choose a new output folder",
                req.out.display()
            ));
            self.resumable = Some(req);
            return;
        }
        self.records.clear();
        self.done = None;
        self.held_result = None;
        self.paused = false;
        self.resumable = None;
        self.launch(cx, req, false);
    }

    /// The stopped run whose folder the form still names.
    fn folder_run(&self) -> Option<&Request> {
        self.resumable
            .as_ref()
            .filter(|r| r.out == Path::new(self.form.out_dir.trim()))
    }

    /// Continues the run in `req`'s output folder from its checkpoint, its earlier steps
    /// (from `log.jsonl`) back on the curves.
    fn resume_folder(&mut self, cx: &mut PanelContext<'_>, req: Request) {
        self.error = None;
        self.message = None;
        self.done = None;
        self.held_result = None;
        self.resumable = None;
        // An unreadable log only leaves the curves to start at the resumed step.
        self.records = read_log(&req.out.join("log.jsonl")).unwrap_or_default();
        self.launch(cx, req, true);
    }

    /// Continues the paused run with the same settings.
    fn resume(&mut self, cx: &mut PanelContext<'_>) {
        self.error = None;
        self.message = None;
        if let Some(req) = self.request.clone() {
            self.paused = false;
            self.launch(cx, req, true);
        }
    }

    fn launch(&mut self, cx: &mut PanelContext<'_>, req: Request, resume: bool) {
        self.total = match &self.estimate {
            Some(e) => e.steps,
            None if req.form.by_steps => req.form.steps,
            None => 0,
        };
        let job = spawn_train(cx.jobs, req.clone(), resume);
        self.request = Some(req);
        self.run = Some(Running {
            job,
            pausing: false,
            started: Instant::now(),
            tokens: 0,
            steps_here: 0,
        });
    }

    fn progress_ui(&self, ui: &mut Ui) {
        let Some(last) = self.records.last() else {
            ui.label("starting…");
            return;
        };
        let mut line = format!("step {}", last.step);
        if self.total > 0 {
            line.push_str(&format!(" of {}", self.total));
        }
        line.push_str(&format!(", loss {:.4}", last.loss));
        if let Some(v) = self.records.iter().rev().find_map(|r| r.val_loss) {
            line.push_str(&format!(", validation loss {v:.4}"));
        }
        if let Some(a) = self.records.iter().rev().find_map(|r| r.val_accuracy) {
            line.push_str(&format!(", validation accuracy {:.1} %", 100.0 * a));
            if let Some(m) = self.records.iter().find_map(|r| r.majority_rate) {
                line.push_str(&format!(" (majority class {:.1} %)", 100.0 * m));
            }
        }
        if let Some(run) = &self.run
            && run.steps_here > 0
        {
            let secs = run.started.elapsed().as_secs_f64().max(1e-9);
            line.push_str(&format!(", {:.0} tokens/s", run.tokens as f64 / secs));
            if self.total > last.step {
                let per_step = secs / run.steps_here as f64;
                line.push_str(&format!(
                    ", about {} left",
                    duration_words(per_step * (self.total - last.step) as f64)
                ));
            }
        }
        ui.label(line);
    }
}

fn estimate_ui(ui: &mut Ui, e: &Estimate) {
    ui.strong("Preview");
    let p = &e.preview;
    ui.label(format!(
        "{} examples ({} train / {} held out){}; tokens per example: min {}, median {}, p90 {}, \
         max {} (context {}); {} cut to the context",
        p.examples,
        e.split.0,
        e.split.1,
        match e.built.left_out {
            0 => String::new(),
            n => format!("; {n} cells express no gene and are left out"),
        },
        p.length_min,
        p.length_median,
        p.length_p90,
        p.length_max,
        e.context,
        p.cut
    ));
    egui::CollapsingHeader::new("first examples")
        .id_salt("finetune-examples")
        .show(ui, |ui| {
            for ex in e.built.cells.examples.iter().take(3) {
                ui.label(egui::RichText::new(&ex.model_input).monospace());
                ui.label(
                    egui::RichText::new(format!("→ {}", ex.response))
                        .monospace()
                        .strong(),
                );
                ui.add_space(4.0);
            }
        });
    ui.label(format!("Memory: about {}", human_bytes(e.memory)))
        .on_hover_text(MEMORY_FORMULA);
    ui.weak(format!("({MEMORY_FORMULA})"));
    ui.label(format!(
        "Time: about {} per step on {}, so about {} for {} steps (timed: the second of two \
         trial steps)",
        duration_words(e.step_seconds),
        e.device,
        duration_words(e.step_seconds * e.steps as f64),
        e.steps
    ));
}

/// The load options "Use this adapter" and the held-out ranking use.
fn adapter_load_options(req: &Request) -> LoadOptions {
    LoadOptions {
        device: req.device,
        dtype: DTypeRequest::Auto,
        ..LoadOptions::default()
    }
}

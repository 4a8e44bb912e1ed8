//! The Virtual screen tab: a form that builds a screen spec ([`form`]), the jobs that estimate,
//! run, resume and reopen it ([`job`]), and its results ([`results`]): a volcano plot
//! ([`volcano`]), a context-versus-context scatter ([`scatter`]), the selected perturbation in
//! detail ([`detail`]), a sortable and filterable table ([`table`]) and exports ([`export`]).
//!
//! The screen itself is the core's (`c2s_core::screen`): the tab saves the spec as
//! `screen.toml` in the output folder, beside the resumable results store the CLI reads too.

pub mod detail;
pub mod dialog;
pub mod dots;
pub mod export;
pub mod form;
pub mod job;
pub mod library;
pub mod results;
pub mod scatter;
pub mod sets;
pub mod table;
pub mod volcano;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use c2s_core::screen::report::EffectRow;
use c2s_core::screen::run::RunSummary;
use c2s_core::screen::spec::ScreenSpec;
use c2s_core::screen::volcano_svg::{VolcanoStyle, write_volcano_svg};
use egui::Ui;

use self::dialog::{PendingDialog, take_path};
use self::export::{ReportTable, write_report};
use self::form::{Plan, ScreenForm};
use self::job::{Estimate, Opened, RunDone, spawn_estimate, spawn_open, spawn_run};
use self::results::{ResultsView, ScreenResults};
use self::table::TableState;
use crate::gui::jobs::{JobContext, JobError, JobHandle, Lane};
use crate::gui::panels::{Panel, PanelContext};

/// A partly finished screen reopened from its folder.
#[derive(Debug, Clone)]
struct Partial {
    dir: PathBuf,
    spec: ScreenSpec,
    finished: usize,
}

/// The Virtual screen tab.
#[derive(Debug, Default)]
pub struct ScreenPanel {
    form: ScreenForm,
    run: Option<JobHandle<RunDone, RunSummary>>,
    estimating: Option<JobHandle<Estimate>>,
    opening: Option<JobHandle<Opened>>,
    writes: Vec<JobHandle<String>>,
    progress: Option<RunSummary>,
    estimate: Option<Estimate>,
    partial: Option<Partial>,
    results: Option<ScreenResults>,
    view: ResultsView,
    table: TableState,
    volcano_rect: Option<egui::Rect>,
    export_dialog: Option<(ReportTable, PendingDialog)>,
    png_dialog: Option<PendingDialog>,
    svg_dialog: Option<PendingDialog>,
    open_dialog: Option<PendingDialog>,
    message: Option<String>,
    error: Option<String>,
}

impl Panel for ScreenPanel {
    fn id(&self) -> &'static str {
        "screen"
    }

    fn title(&self) -> &'static str {
        "Virtual screen"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        self.form.update(cx.jobs, cx.models);
        self.poll_run();
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
        if let Some(job) = &mut self.opening
            && let Some(result) = job.poll().result
        {
            self.opening = None;
            match result {
                Ok(opened) => self.take_opened(opened),
                Err(JobError::Cancelled) => {}
                Err(JobError::Failed(e)) => self.error = Some(e),
            }
        }
        let (mut message, mut error) = (None, None);
        self.writes.retain_mut(|job| match job.poll().result {
            Some(Ok(m)) => {
                message = Some(m);
                false
            }
            Some(Err(e)) => {
                error = Some(e.to_string());
                false
            }
            None => true,
        });
        self.message = message.or(self.message.take());
        self.error = error.or(self.error.take());
        self.poll_dialogs(cx);
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        self.request_png(ui.ctx());
        egui::ScrollArea::vertical()
            .id_salt("screen-panel")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                egui::CollapsingHeader::new("Screen setup")
                    .id_salt("screen-setup")
                    .default_open(true)
                    .show(ui, |ui| {
                        self.form.ui(ui, cx.views, cx.models, cx.jobs);
                    });
                ui.separator();
                self.run_row(ui, cx);
                if let Some(e) = &self.error {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                if let Some(m) = &self.message {
                    ui.label(m);
                }
                if self.results.is_some() {
                    ui.separator();
                    self.results_ui(ui);
                }
            });
    }
}

impl ScreenPanel {
    fn poll_run(&mut self) {
        let Some(job) = &mut self.run else {
            return;
        };
        let polled = job.poll();
        if let Some(last) = polled.partials.into_iter().last() {
            self.progress = Some(last);
        }
        let Some(result) = polled.result else {
            return;
        };
        self.run = None;
        match result {
            Ok(done) => {
                let s = &done.summary;
                self.message = Some(if s.complete {
                    format!(
                        "screen complete: {} units ({} run now, {} already in the folder)",
                        s.shard_units, s.done_now, s.already_done
                    )
                } else {
                    format!(
                        "{} of {} units finished",
                        s.already_done + s.done_now,
                        s.shard_units
                    )
                });
                self.partial = None;
                if let Some(results) = done.results {
                    self.show_results(results);
                }
            }
            Err(JobError::Cancelled) => {
                let kept = self
                    .progress
                    .as_ref()
                    .map_or(0, |s| s.already_done + s.done_now);
                self.message = Some(format!(
                    "cancelled: the {kept} finished units are kept in the folder; Run or Resume continues"
                ));
            }
            Err(JobError::Failed(e)) => self.error = Some(e),
        }
    }

    fn show_results(&mut self, mut results: ScreenResults) {
        results.apply_thresholds(self.view.thresholds);
        let keep = self.view.thresholds;
        self.view = ResultsView {
            thresholds: keep,
            other: usize::from(results.contexts.len() > 1),
            ..Default::default()
        };
        self.results = Some(results);
    }

    fn take_opened(&mut self, opened: Opened) {
        self.form.fill_from(&opened.spec, &opened.dir);
        self.message = Some(match &opened.results {
            Some(_) => format!("opened the finished screen in {}", opened.dir.display()),
            None => format!(
                "opened a partial screen in {}: {} units finished; Resume continues it",
                opened.dir.display(),
                opened.finished
            ),
        });
        match opened.results {
            Some(results) => {
                self.partial = None;
                self.show_results(results);
            }
            None => {
                self.results = None;
                self.partial = Some(Partial {
                    dir: opened.dir,
                    spec: opened.spec,
                    finished: opened.finished,
                });
            }
        }
    }

    fn poll_dialogs(&mut self, cx: &mut PanelContext<'_>) {
        if let Some(dir) = take_path(&mut self.open_dialog) {
            self.opening = Some(spawn_open(cx.jobs, dir));
        }
        self.save_svg(cx);
        if let Some((table, dialog)) = &self.export_dialog
            && let Some(chosen) = dialog.poll()
        {
            let table = *table;
            self.export_dialog = None;
            if let (Some(path), Some(results)) = (chosen, &self.results) {
                let report = results.report.clone();
                self.writes.push(cx.jobs.spawn(
                    format!("Saving {}", path.display()),
                    Lane::Cpu,
                    move |_: &JobContext<()>| Ok(write_report(&report, table, &path)?),
                ));
            }
        }
    }

    /// Writes the shown volcano as SVG once a path is chosen (a job: the write never blocks).
    fn save_svg(&mut self, cx: &mut PanelContext<'_>) {
        let Some(path) = take_path(&mut self.svg_dialog) else {
            return;
        };
        let Some(results) = &self.results else {
            return;
        };
        let (context, set) = (
            &results.contexts[self.view.context],
            &results.sets[self.view.set],
        );
        let rows: Vec<EffectRow> = results.effects(context, set).into_iter().cloned().collect();
        let style = VolcanoStyle::new(&rows, context, set, self.view.thresholds);
        self.writes.push(cx.jobs.spawn(
            format!("Saving {}", path.display()),
            Lane::Cpu,
            move |_: &JobContext<()>| {
                write_volcano_svg(&path, &rows, &style)?;
                Ok(format!("volcano saved to {}", path.display()))
            },
        ));
    }

    /// Asks for a screenshot once a PNG path is chosen; the shell saves screenshots tagged
    /// `(path, rect)` as PNGs cropped to the rect (as File → Export view as PNG does).
    fn request_png(&mut self, ctx: &egui::Context) {
        if let Some(path) = take_path(&mut self.png_dialog)
            && let Some(rect) = self.volcano_rect
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::UserData::new((
                path, rect,
            ))));
        }
    }

    /// Estimate / Run / Resume / Open, or the progress and Cancel of the running job.
    fn run_row(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        if let Some(job) = &self.run {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(run_progress(cx, job.id(), self.progress.as_ref()));
                if ui.button("Cancel").clicked() {
                    job.cancel();
                }
            });
            return;
        }
        let busy = self.estimating.is_some() || self.opening.is_some();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Estimate time"))
                .on_hover_text("Times two batches of this screen in a scratch folder")
                .clicked()
            {
                self.start(cx, false);
            }
            if ui.add_enabled(!busy, egui::Button::new("Run")).clicked() {
                self.start(cx, true);
            }
            if let Some(partial) = &self.partial
                && ui
                    .add_enabled(!busy, egui::Button::new("Resume"))
                    .on_hover_text(format!("{} units finished", partial.finished))
                    .clicked()
            {
                self.resume(cx);
            }
            if ui
                .add_enabled(!busy, egui::Button::new("Open results folder"))
                .on_hover_text("Reopen a finished or partial screen (the output folder above, or one you choose)")
                .clicked()
            {
                self.open(cx);
            }
            if let Some(job) = &self.estimating {
                ui.spinner();
                ui.label("timing two batches…");
                if ui.button("Cancel").clicked() {
                    job.cancel();
                }
            }
        });
        if let Some(e) = &self.estimate {
            ui.label(format!("Estimated run time: {}", e.describe()));
        }
    }

    /// Builds the form's plan and runs it (`run`) or times it.
    fn start(&mut self, cx: &mut PanelContext<'_>, run: bool) {
        self.error = None;
        self.message = None;
        let plan = match self.form.build(cx.views, cx.models) {
            Ok(plan) => plan,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        if run {
            self.progress = None;
            self.run = Some(spawn_run(cx.jobs, plan));
        } else {
            self.estimate = None;
            self.estimating = Some(spawn_estimate(cx.jobs, plan));
        }
    }

    /// Continues the reopened partial screen with its own spec; the loaded model is used when
    /// it is the spec's model folder, else the run loads that folder.
    fn resume(&mut self, cx: &mut PanelContext<'_>) {
        let Some(partial) = self.partial.clone() else {
            return;
        };
        let engine = cx
            .models
            .models()
            .iter()
            .find(|m| {
                c2s_core::engine::locate::resolve_model(&m.source)
                    .ok()
                    .and_then(|d| std::fs::canonicalize(d).ok())
                    == std::fs::canonicalize(&partial.spec.model.dir).ok()
            })
            .map(|m| m.engine.clone());
        self.error = None;
        self.progress = None;
        self.run = Some(spawn_run(
            cx.jobs,
            Plan {
                spec: partial.spec,
                out: partial.dir,
                engine,
                batch: self.form.batch,
            },
        ));
    }

    /// Opens the output folder of the form, or asks for one when the field is empty.
    fn open(&mut self, cx: &mut PanelContext<'_>) {
        self.error = None;
        match self.form.out_dir.trim() {
            "" => {
                if self.open_dialog.is_none() {
                    self.open_dialog =
                        Some(PendingDialog::open(|| rfd::FileDialog::new().pick_folder()));
                }
            }
            dir => self.opening = Some(spawn_open(cx.jobs, PathBuf::from(dir))),
        }
    }

    fn results_ui(&mut self, ui: &mut Ui) {
        let Some(results) = &self.results else {
            return;
        };
        let view = &mut self.view;
        let mut changed = false;
        ui.horizontal_wrapped(|ui| {
            ui.strong("Results")
                .on_hover_text(results.dir.display().to_string());
            ui.label("context");
            changed |= choice(ui, "screen-context", &mut view.context, &results.contexts);
            ui.label("set");
            changed |= choice(ui, "screen-set", &mut view.set, &results.sets);
        });
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("hit: z ≥");
            changed |= ui
                .add(egui::Slider::new(&mut view.thresholds.min_z, -3.0..=5.0).step_by(0.05))
                .labelled_by(label.id)
                .changed();
            let label = ui.label("p <");
            changed |= ui
                .add(egui::Slider::new(&mut view.thresholds.max_p, 1e-4..=0.5).logarithmic(true))
                .labelled_by(label.id)
                .changed();
        });
        let selected_before = view.selected.clone();
        let width = ui.available_width();
        let plot_h = (width * 0.32).clamp(220.0, 420.0);
        let mut hovered = None;
        ui.columns(2, |cols| {
            let v = volcano::show(&mut cols[0], results, view, plot_h);
            self.volcano_rect = v.rect;
            hovered = v.hovered;
            if results.contexts.len() > 1 {
                cols[1].horizontal_wrapped(|ui| {
                    ui.label("scatter: x");
                    ui.label(&results.contexts[view.context]);
                    ui.label("y");
                    choice(ui, "screen-other", &mut view.other, &results.contexts);
                });
                if let Some(h) = scatter::show(&mut cols[1], results, view, plot_h - 24.0) {
                    hovered = Some(h);
                }
            }
        });
        // A point clicked on a plot brings its row into view.
        self.table.reveal |= view.selected != selected_before;
        if let Some(name) = &hovered {
            let line = hover_line(results, view, name);
            ui.label(line);
        } else {
            ui.weak("Hover a point to name its perturbation; click it to select its row.");
        }
        ui.separator();
        // The table's columns need about 650 points; the detail goes beside it when it fits.
        if ui.available_width() >= 1300.0 {
            ui.columns(2, |cols| {
                table::show(&mut cols[0], results, view, &mut self.table);
                detail::show(&mut cols[1], results, view);
            });
        } else {
            table::show(ui, results, view, &mut self.table);
            ui.separator();
            detail::show(ui, results, view);
        }
        ui.horizontal(|ui| {
            ui.label("Export");
            for (table, text) in [
                (ReportTable::Effects, "effects (CSV/Parquet)…"),
                (ReportTable::Selectivity, "selectivity (CSV/Parquet)…"),
            ] {
                if ui.button(text).clicked() && self.export_dialog.is_none() {
                    self.export_dialog = Some((
                        table,
                        PendingDialog::open(move || {
                            rfd::FileDialog::new()
                                .add_filter("CSV", &["csv"])
                                .add_filter("Parquet", &["parquet"])
                                .set_file_name(table.file_name())
                                .save_file()
                        }),
                    ));
                }
            }
            if ui.button("volcano as PNG…").clicked() && self.png_dialog.is_none() {
                self.png_dialog = Some(PendingDialog::open(|| {
                    rfd::FileDialog::new()
                        .add_filter("PNG", &["png"])
                        .set_file_name("volcano.png")
                        .save_file()
                }));
            }
            if ui.button("volcano as SVG…").clicked() && self.svg_dialog.is_none() {
                self.svg_dialog = Some(PendingDialog::open(|| {
                    rfd::FileDialog::new()
                        .add_filter("SVG", &["svg"])
                        .set_file_name("volcano.svg")
                        .save_file()
                }));
            }
        });
        if changed && let Some(results) = &mut self.results {
            results.apply_thresholds(self.view.thresholds);
        }
    }
}

/// A drop-down over `names`; returns whether the choice changed.
fn choice(ui: &mut Ui, id: &str, index: &mut usize, names: &[String]) -> bool {
    let before = *index;
    egui::ComboBox::from_id_salt(id)
        .selected_text(names.get(*index).cloned().unwrap_or_default())
        .show_ui(ui, |ui| {
            for (k, n) in names.iter().enumerate() {
                ui.selectable_value(index, k, n);
            }
        });
    *index != before
}

/// `DrugB in A: effect +0.0123, z 1.10, p 0.034, q 0.10` for the hovered perturbation.
fn hover_line(results: &ScreenResults, view: &ResultsView, name: &str) -> String {
    let (context, set) = (&results.contexts[view.context], &results.sets[view.set]);
    results
        .effects(context, set)
        .into_iter()
        .find(|r| r.perturbation == name)
        .map_or_else(
            || name.to_string(),
            |r| {
                format!(
                    "{name} in {context}: effect {:+.4}, z {:.2}, p {:.3e}, q {:.3e}{}",
                    r.effect,
                    r.z,
                    r.p,
                    r.q,
                    if r.hit { " (hit)" } else { "" }
                )
            },
        )
}

/// The running job's progress line: units done, units/s and ETA as the core reports them.
fn run_progress(cx: &PanelContext<'_>, id: u64, last: Option<&RunSummary>) -> String {
    let stage = cx
        .jobs
        .records()
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.progress.message())
        .unwrap_or_default();
    match (stage.is_empty(), last) {
        (false, _) => format!("running: {stage}"),
        (true, Some(s)) => format!(
            "running: {}/{} units",
            s.already_done + s.done_now,
            s.shard_units
        ),
        (true, None) => "starting…".into(),
    }
}

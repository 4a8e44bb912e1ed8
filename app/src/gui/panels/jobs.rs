//! The Jobs tab: every job of this run — running, waiting for the accelerator (reorderable), and
//! ended with how it ended.

use egui::Ui;

use super::status::{duration_text, job_row};
use super::{Panel, PanelContext};
use crate::gui::jobs::{Lane, Outcome, Status};

/// The Jobs tab.
#[derive(Debug, Default)]
pub struct JobsPanel;

impl Panel for JobsPanel {
    fn id(&self) -> &'static str {
        "jobs"
    }

    fn title(&self) -> &'static str {
        "Jobs"
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        let jobs = &*cx.jobs;
        let queued = jobs.queued();
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.strong("Running");
                let mut any = false;
                for job in jobs.records() {
                    if matches!(job.status(), Status::Running(_)) {
                        any = true;
                        ui.horizontal(|ui| {
                            ui.weak(lane_name(job.lane));
                            job_row(ui, jobs, job, &queued, "Cancel job");
                        });
                    }
                }
                if !any {
                    ui.weak("nothing");
                }
                ui.add_space(6.0);
                ui.strong("Waiting for the accelerator (one job at a time)");
                if queued.is_empty() {
                    ui.weak("nothing");
                }
                for (k, id) in queued.iter().enumerate() {
                    let Some(job) = jobs.records().iter().find(|r| r.id == *id) else {
                        continue;
                    };
                    ui.horizontal(|ui| {
                        ui.label(format!("{}.", k + 1));
                        ui.label(&job.title);
                        if ui
                            .add_enabled(k > 0, egui::Button::new("⏶").small())
                            .on_hover_text("Run earlier")
                            .clicked()
                        {
                            jobs.move_in_queue(*id, k - 1);
                        }
                        if ui
                            .add_enabled(k + 1 < queued.len(), egui::Button::new("⏷").small())
                            .on_hover_text("Run later")
                            .clicked()
                        {
                            jobs.move_in_queue(*id, k + 1);
                        }
                        if ui.small_button("Remove").clicked() {
                            jobs.cancel(*id);
                        }
                    });
                }
                ui.add_space(6.0);
                ui.strong("Ended");
                for job in jobs.records().iter().rev() {
                    let Status::Ended(outcome, ran) = job.status() else {
                        continue;
                    };
                    ui.horizontal(|ui| {
                        ui.weak(lane_name(job.lane));
                        ui.label(&job.title);
                        let took = duration_text(ran);
                        match outcome {
                            Outcome::Finished => ui.weak(format!("done in {took}")),
                            Outcome::FinishedDespiteCancel => ui.weak(format!(
                                "done in {took} (the cancel came after it had finished)"
                            )),
                            Outcome::Cancelled if job.is_abandoned() => {
                                ui.weak("stopped: its view or request was replaced")
                            }
                            Outcome::Cancelled => ui.weak("cancelled"),
                            Outcome::Failed(m) => ui
                                .colored_label(ui.visuals().error_fg_color, format!("failed: {m}")),
                        };
                    });
                }
            });
    }
}

fn lane_name(lane: Lane) -> &'static str {
    match lane {
        Lane::Cpu => "CPU",
        Lane::Accelerator => "Model",
    }
}

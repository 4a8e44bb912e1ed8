//! The status bar: active jobs with progress, ETA and Cancel, and notices (errors and results)
//! until dismissed.

use egui::Ui;

use crate::gui::jobs::{JobRecord, Jobs, Status};

/// A message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Whether it reports a failure.
    pub is_error: bool,
    /// The text.
    pub text: String,
}

impl Notice {
    /// An informational notice.
    pub fn info(text: impl Into<String>) -> Self {
        Self {
            is_error: false,
            text: text.into(),
        }
    }

    /// An error notice.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            is_error: true,
            text: text.into(),
        }
    }
}

/// Shows active jobs and notices; returns the index of a dismissed notice.
pub fn show(ui: &mut Ui, jobs: &Jobs, notices: &[Notice]) -> Option<usize> {
    let mut dismissed = None;
    let queued = jobs.queued();
    for job in jobs.active() {
        ui.horizontal(|ui| job_row(ui, jobs, job, &queued, "Cancel"));
    }
    for (k, notice) in notices.iter().enumerate() {
        ui.horizontal(|ui| {
            if notice.is_error {
                ui.colored_label(ui.visuals().error_fg_color, "⚠");
                ui.colored_label(ui.visuals().error_fg_color, &notice.text);
            } else {
                ui.label(&notice.text);
            }
            if ui.small_button("Dismiss").clicked() {
                dismissed = Some(k);
            }
        });
    }
    dismissed
}

/// One active job: a cancel button labelled `cancel_label`, then the title, progress bar,
/// message and ETA (or its place in the queue).
pub fn job_row(ui: &mut Ui, jobs: &Jobs, job: &JobRecord, queued: &[u64], cancel_label: &str) {
    // The button comes first, so it stays put while the widgets after it come and go (a job
    // starting, an ETA appearing) and a click aimed at it is never lost; its id is stable for
    // the same reason.
    if ui
        .push_id(("cancel-job", job.id), |ui| ui.button(cancel_label))
        .inner
        .clicked()
    {
        jobs.cancel(job.id);
    }
    match job.status() {
        Status::Queued => {
            ui.label("⏸");
            ui.label(&job.title);
            match queued.iter().position(|&id| id == job.id) {
                Some(k) => ui.weak(format!(
                    "waiting for the accelerator (#{} in the queue)",
                    k + 1
                )),
                None => ui.weak("starting"),
            };
        }
        _ => {
            ui.spinner();
            ui.label(&job.title);
            ui.add(
                egui::ProgressBar::new(job.progress.fraction())
                    .desired_width(180.0)
                    .show_percentage(),
            );
            ui.weak(job.progress.message());
            if let Some(eta) = job.eta() {
                ui.weak(format!("about {} left", duration_text(eta)));
            }
        }
    }
}

/// A duration as "45 s", "3 min 20 s" or "2 h 5 min".
pub fn duration_text(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        use std::time::Duration;
        assert_eq!(duration_text(Duration::from_secs(45)), "45 s");
        assert_eq!(duration_text(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(duration_text(Duration::from_secs(7500)), "2 h 5 min");
    }
}

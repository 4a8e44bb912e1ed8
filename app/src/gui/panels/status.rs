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

/// One active job: title, progress bar, message, ETA (or its place in the queue) and a cancel
/// button labelled `cancel_label`.
pub fn job_row(ui: &mut Ui, jobs: &Jobs, job: &JobRecord, queued: &[u64], cancel_label: &str) {
    match job.status() {
        Status::Queued => {
            let place = queued
                .iter()
                .position(|&id| id == job.id)
                .map_or(0, |k| k + 1);
            ui.label("⏸");
            ui.label(&job.title);
            ui.weak(format!(
                "waiting for the accelerator (#{place} in the queue)"
            ));
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
    // A stable id: the widgets before the button come and go (an ETA, the queue place), and
    // an id counted from them would change between frames and lose a click.
    if ui
        .push_id(("cancel-job", job.id), |ui| ui.button(cancel_label))
        .inner
        .clicked()
    {
        jobs.cancel(job.id);
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

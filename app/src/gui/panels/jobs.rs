//! The status bar: running jobs with progress bars and cancel buttons, and notices (errors and
//! results) until dismissed.

use egui::Ui;

use crate::gui::actions::Action;
use crate::gui::jobs::Jobs;

/// A message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Whether it reports a failure.
    pub is_error: bool,
    /// The text.
    pub text: String,
}

/// Shows running jobs and notices; returns the index of a dismissed notice.
pub fn show(
    ui: &mut Ui,
    jobs: &Jobs,
    notices: &[Notice],
    actions: &mut Vec<Action>,
) -> Option<usize> {
    let mut dismissed = None;
    for job in jobs.running() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(&job.title);
            let fraction = job.progress.fraction();
            ui.add(
                egui::ProgressBar::new(fraction)
                    .desired_width(200.0)
                    .show_percentage(),
            );
            ui.weak(job.progress.message());
            if ui.button("Cancel").clicked() {
                actions.push(Action::CancelJob(job.id));
            }
        });
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

//! The library field of the screen form: a file of perturbation names (text, one per line, or
//! an L1000 GCT's `pert_iname`), read in a CPU job with the core's reader, previewed as a
//! count and the first names; duplicates and unreadable files are shown as the core words them.

use std::path::PathBuf;

use c2s_core::screen::library::DEMO_LIBRARY;
use c2s_core::screen::library::read_library;
use egui::Ui;

use super::dialog::{PendingDialog, take_path};
use crate::gui::jobs::{JobContext, JobHandle, Jobs, Lane};

/// Names shown in the preview.
const PREVIEW: usize = 8;

/// The library file and what reading it gave.
#[derive(Debug, Default)]
pub struct LibraryField {
    /// The path typed or picked.
    pub path: String,
    /// The names read, or the reason they could not be.
    pub read: Option<Result<Vec<String>, String>>,
    reading: Option<JobHandle<Vec<String>>>,
    dialog: Option<PendingDialog>,
}

impl LibraryField {
    /// Takes a finished read or a picked file.
    pub fn update(&mut self, jobs: &mut Jobs) {
        if let Some(path) = take_path(&mut self.dialog) {
            self.path = path.display().to_string();
            self.start(jobs);
        }
        if let Some(job) = &mut self.reading
            && let Some(result) = job.poll().result
        {
            self.reading = None;
            self.read = Some(result.map_err(|e| e.to_string()));
        }
    }

    /// Reads the file named in the field, in a CPU job (a GCT plate can be large).
    pub fn start(&mut self, jobs: &mut Jobs) {
        let path = PathBuf::from(self.path.trim());
        self.read = None;
        self.reading = Some(jobs.spawn(
            "Reading the perturbation library",
            Lane::Cpu,
            move |_: &JobContext<()>| Ok(read_library(&path)?),
        ));
    }

    /// The path row and the preview.
    pub fn ui(&mut self, ui: &mut Ui, jobs: &mut Jobs) {
        ui.horizontal(|ui| {
            let label = ui.label("Library file");
            ui.add(
                egui::TextEdit::singleline(&mut self.path)
                    .hint_text("drugs.txt, or an L1000 .gct")
                    .desired_width(300.0),
            )
            .labelled_by(label.id);
            if ui.button("Browse…").clicked() && self.dialog.is_none() {
                self.dialog = Some(PendingDialog::open(|| {
                    rfd::FileDialog::new()
                        .add_filter("Names or GCT", &["txt", "gct", "gz"])
                        .pick_file()
                }));
            }
            if ui.button("Load library").clicked() {
                self.start(jobs);
            }
            if ui
                .button("Demo library")
                .on_hover_text(
                    "the 59 treated perturbations of a LINCS L1000 plate (A375, 24 h), mostly \
                     kinase inhibitors",
                )
                .clicked()
            {
                self.path = DEMO_LIBRARY.to_string();
                self.start(jobs);
            }
        });
        match &self.read {
            _ if self.reading.is_some() => {
                ui.label("reading…");
            }
            Some(Ok(names)) => {
                ui.label(preview(names));
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            None => {}
        }
    }
}

/// `3 perturbations: a, b, c` (the first few, then `…`).
pub fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(PREVIEW).map(String::as_str).collect();
    let more = if names.len() > PREVIEW { ", …" } else { "" };
    format!(
        "{} perturbation{}: {}{more}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_counts_and_cuts() {
        let names: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
        assert_eq!(
            preview(&names),
            "10 perturbations: d0, d1, d2, d3, d4, d5, d6, d7, …"
        );
        assert_eq!(preview(&names[..1]), "1 perturbation: d0");
    }
}

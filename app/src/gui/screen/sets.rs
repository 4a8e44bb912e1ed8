//! The gene-set field of the screen form: a GMT file read in a CPU job, a search over its set
//! names, and the sets chosen to score every predicted sentence.

use std::path::PathBuf;
use std::sync::Arc;

use c2s_core::genesets::GeneSetLibrary;
use egui::Ui;

use super::dialog::{PendingDialog, take_path};
use crate::gui::jobs::{JobContext, JobHandle, Jobs, Lane};
use crate::gui::panels::gene_sets::builtin_menu;

/// Most sets listed for a search.
const MAX_LISTED: usize = 12;

/// The GMT file, its sets and the chosen ones.
#[derive(Debug, Default)]
pub struct SetsField {
    /// The path typed or picked.
    pub path: String,
    /// The sets read.
    pub library: Option<Arc<GeneSetLibrary>>,
    /// Why the file could not be read.
    pub error: Option<String>,
    /// Set-name search.
    pub query: String,
    /// Names of the chosen sets, in the order chosen.
    pub chosen: Vec<String>,
    reading: Option<JobHandle<GeneSetLibrary>>,
    dialog: Option<PendingDialog>,
}

impl SetsField {
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
            match result {
                Ok(lib) => {
                    self.chosen.retain(|c| lib.get(c).is_some());
                    self.library = Some(Arc::new(lib));
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
    }

    /// Reads the GMT file named in the field, in a CPU job.
    pub fn start(&mut self, jobs: &mut Jobs) {
        let path = PathBuf::from(self.path.trim());
        self.error = None;
        self.library = None;
        self.reading = Some(jobs.spawn(
            "Reading gene sets",
            Lane::Cpu,
            move |_: &JobContext<()>| Ok(GeneSetLibrary::read(&path)?),
        ));
    }

    /// The path row, the search and the list of sets (click to choose or drop one).
    pub fn ui(&mut self, ui: &mut Ui, jobs: &mut Jobs) {
        ui.horizontal(|ui| {
            let label = ui.label("GMT file");
            ui.add(
                egui::TextEdit::singleline(&mut self.path)
                    .hint_text("e.g. h.all.v7.5.1.symbols.gmt")
                    .desired_width(300.0),
            )
            .labelled_by(label.id);
            if ui.button("Browse…").clicked() && self.dialog.is_none() {
                self.dialog = Some(PendingDialog::open(|| {
                    rfd::FileDialog::new()
                        .add_filter("GMT", &["gmt"])
                        .pick_file()
                }));
            }
            if ui.button("Load sets").clicked() {
                self.start(jobs);
            }
            if let Some(source) = builtin_menu(ui) {
                self.path = source;
                self.start(jobs);
            }
        });
        if self.reading.is_some() {
            ui.label("reading…");
        }
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        let Some(lib) = self.library.clone() else {
            return;
        };
        ui.horizontal(|ui| {
            let label = ui.label("Search sets");
            ui.add(
                egui::TextEdit::singleline(&mut self.query)
                    .hint_text("e.g. interferon")
                    .desired_width(200.0),
            )
            .labelled_by(label.id);
            ui.label(format!(
                "{} sets in the file; {} chosen",
                lib.sets.len(),
                self.chosen.len()
            ));
        });
        let hits = lib.search(&self.query);
        egui::ScrollArea::vertical()
            .id_salt("screen-set-list")
            .max_height(140.0)
            .show(ui, |ui| {
                for set in hits.iter().take(MAX_LISTED) {
                    let on = self.chosen.contains(&set.name);
                    let text = format!("{} ({} genes)", set.name, set.genes.len());
                    if ui.selectable_label(on, text).clicked() {
                        if on {
                            self.chosen.retain(|c| *c != set.name);
                        } else {
                            self.chosen.push(set.name.clone());
                        }
                    }
                }
                if hits.len() > MAX_LISTED {
                    ui.label(format!(
                        "… and {} more; refine the search",
                        hits.len() - MAX_LISTED
                    ));
                }
            });
    }
}

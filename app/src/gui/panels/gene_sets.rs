//! The Gene sets tab: load a GMT file, search its sets by name, and score every cell of the
//! active dataset by one set (ssGSEA as gseapy 1.3.1, or scanpy's `score_genes`) into a
//! numeric obs column that colours the embedding.
//!
//! Scoring is a CPU-lane job owned by this panel (progress and cancel in the status bar); its
//! result goes to the view it was started on, as a session annotation that exports with it.

use std::sync::Arc;

use c2s_core::dataset::{ColumnData, Dataset, ObsColumn};
use c2s_core::genesets::builtin::BUILTIN;
use c2s_core::genesets::dataset_scores::{Method, mean_mode, score_dataset};
use c2s_core::genesets::{GeneSetLibrary, ScanpyVersion, ScoreGenesOptions, SsgseaOptions};
use egui::Ui;

use super::{Panel, PanelContext};
use crate::gui::actions::Action;
use crate::gui::coloring::ColorSource;
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// Most sets listed for a search.
const MAX_LISTED: usize = 12;

/// The scoring method chosen in the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    /// ssGSEA (gseapy 1.3.1, rank normalisation).
    Ssgsea,
    /// scanpy's `score_genes`.
    ScoreGenes,
}

/// A finished or running scoring of one set.
#[derive(Debug)]
struct Running {
    view: u64,
    column: String,
    job: JobHandle<(Vec<f64>, String)>,
}

/// The Gene sets tab.
#[derive(Debug)]
pub struct GeneSetsPanel {
    /// Path of the GMT file typed or loaded.
    pub gmt_path: String,
    /// The loaded library.
    pub library: Option<Arc<GeneSetLibrary>>,
    /// Set-name search.
    pub query: String,
    /// The set to score.
    pub chosen: Option<String>,
    /// Scoring method.
    pub method: MethodChoice,
    /// ssGSEA weight (0, 0.25 or 1).
    pub weight: f64,
    /// scanpy release for score_genes.
    pub scanpy: ScanpyVersion,
    running: Option<Running>,
    /// What the last scoring did.
    pub last: Option<String>,
    /// An error to show.
    pub error: Option<String>,
}

impl Default for GeneSetsPanel {
    fn default() -> Self {
        Self {
            gmt_path: String::new(),
            library: None,
            query: String::new(),
            chosen: None,
            method: MethodChoice::Ssgsea,
            weight: SsgseaOptions::default().weight,
            scanpy: ScanpyVersion::V1_11_5,
            running: None,
            last: None,
            error: None,
        }
    }
}

impl Panel for GeneSetsPanel {
    fn id(&self) -> &'static str {
        "gene_sets"
    }

    fn title(&self) -> &'static str {
        "Gene sets"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        let Some(running) = &mut self.running else {
            return;
        };
        let Some(result) = running.job.poll().result else {
            return;
        };
        let Some(Running { view, column, .. }) = self.running.take() else {
            return;
        };
        match result {
            Ok((values, summary)) => {
                let Some(v) = cx.views.iter_mut().find(|v| v.id == view) else {
                    return;
                };
                let added = v.set_obs_column(ObsColumn {
                    name: column.clone(),
                    data: ColumnData::Numeric(values),
                });
                match added {
                    Ok(()) => {
                        cx.actions
                            .push(Action::ColorBy(view, ColorSource::Obs(column)));
                        self.last = Some(summary);
                    }
                    Err(e) => self.error = Some(e),
                }
            }
            Err(JobError::Cancelled) => self.last = Some("scoring cancelled".into()),
            Err(JobError::Failed(e)) => self.error = Some(e),
        }
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.strong("Score cells by a gene set");
                self.library_row(ui);
                if self.library.is_some() {
                    ui.separator();
                    self.set_list(ui);
                    ui.separator();
                    self.method_form(ui);
                    self.score_button(ui, cx);
                }
                if let Some(e) = &self.error {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                if let Some(last) = &self.last {
                    ui.label(last);
                }
            });
    }
}

impl GeneSetsPanel {
    /// The GMT path box and its Load / Browse buttons.
    fn library_row(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            let label = ui.label("GMT file");
            ui.add(
                egui::TextEdit::singleline(&mut self.gmt_path)
                    .hint_text("e.g. h.all.v7.5.1.symbols.gmt")
                    .desired_width(280.0),
            )
            .labelled_by(label.id);
            if ui.button("Browse…").clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .add_filter("GMT", &["gmt"])
                    .pick_file()
            {
                self.gmt_path = path.display().to_string();
                self.load();
            }
            if ui.button("Load sets").clicked() {
                self.load();
            }
            if let Some(source) = builtin_menu(ui) {
                self.gmt_path = source;
                self.load();
            }
        });
        if let Some(lib) = &self.library {
            ui.label(format!("{} sets loaded", lib.sets.len()));
        }
    }

    /// Reads the GMT file (small text: read here, not in a job).
    fn load(&mut self) {
        self.error = None;
        match GeneSetLibrary::read(std::path::Path::new(self.gmt_path.trim())) {
            Ok(lib) => {
                self.library = Some(Arc::new(lib));
                self.chosen = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// The search box and the matching sets; clicking one chooses it.
    fn set_list(&mut self, ui: &mut Ui) {
        let Some(lib) = self.library.clone() else {
            return;
        };
        let label = ui.label("Search sets");
        ui.add(egui::TextEdit::singleline(&mut self.query).hint_text("e.g. interferon"))
            .labelled_by(label.id);
        let hits = lib.search(&self.query);
        for set in hits.iter().take(MAX_LISTED) {
            let chosen = self.chosen.as_deref() == Some(set.name.as_str());
            let text = format!("{} ({} genes)", set.name, set.genes.len());
            if ui.selectable_label(chosen, text).clicked() {
                self.chosen = Some(set.name.clone());
            }
        }
        if hits.len() > MAX_LISTED {
            ui.label(format!(
                "… and {} more; refine the search",
                hits.len() - MAX_LISTED
            ));
        }
    }

    /// Method and its settings.
    fn method_form(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.radio_value(
                &mut self.method,
                MethodChoice::Ssgsea,
                "ssGSEA (gseapy 1.3.1)",
            );
            ui.radio_value(
                &mut self.method,
                MethodChoice::ScoreGenes,
                "score_genes (scanpy)",
            );
        });
        match self.method {
            MethodChoice::Ssgsea => {
                ui.horizontal(|ui| {
                    ui.label("Weight");
                    for w in [0.0, 0.25, 1.0] {
                        ui.radio_value(&mut self.weight, w, w.to_string());
                    }
                });
            }
            MethodChoice::ScoreGenes => {
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.scanpy, ScanpyVersion::V1_11_5, "scanpy 1.11.5");
                    ui.radio_value(
                        &mut self.scanpy,
                        ScanpyVersion::V1_9_8,
                        "scanpy 1.9.8 (C2S-Scale paper)",
                    );
                });
            }
        }
    }

    /// The Score button: starts the job on the active dataset.
    fn score_button(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        let busy = self.running.is_some();
        let ready = self.chosen.is_some() && cx.active.is_some() && !busy;
        if ui
            .add_enabled(ready, egui::Button::new("Score cells"))
            .clicked()
        {
            self.error = None;
            if let Err(e) = self.start(cx) {
                self.error = Some(e);
            }
        }
        if busy {
            ui.label("scoring…");
        } else if cx.active.is_none() {
            ui.label("Open a dataset to score its cells.");
        }
    }

    fn start(&mut self, cx: &mut PanelContext<'_>) -> Result<(), String> {
        let (Some(lib), Some(set)) = (self.library.clone(), self.chosen.clone()) else {
            return Err("choose a gene set first".into());
        };
        let view = cx.active_view().ok_or("open a dataset first")?;
        let (view_id, dataset) = (view.id, view.dataset.clone());
        let (method, prefix) = match self.method {
            // One chosen set: no size filter beyond gseapy's k < n.
            MethodChoice::Ssgsea => (
                Method::Ssgsea(SsgseaOptions {
                    weight: self.weight,
                    min_size: 1,
                    max_size: usize::MAX,
                }),
                "ssgsea",
            ),
            MethodChoice::ScoreGenes => (
                Method::ScoreGenes(ScoreGenesOptions {
                    version: self.scanpy,
                    ..Default::default()
                }),
                "score_genes",
            ),
        };
        let column = format!("{prefix}:{set}");
        let job = spawn_score(cx.jobs, dataset, lib, set, method);
        self.running = Some(Running {
            view: view_id,
            column,
            job,
        });
        Ok(())
    }
}

/// Scores every cell of `dataset` by `set` in the CPU lane; hands back the values and a line
/// saying what was scored.
fn spawn_score(
    jobs: &mut Jobs,
    dataset: Arc<Dataset>,
    library: Arc<GeneSetLibrary>,
    set: String,
    method: Method,
) -> JobHandle<(Vec<f64>, String)> {
    jobs.spawn(
        format!("Scoring {} cells by {set}", dataset.n_cells()),
        Lane::Cpu,
        move |job: &JobContext<()>| {
            let mode = mean_mode(&dataset, false);
            let names = [set.clone()];
            let scores = score_dataset(&dataset, mode, &library, &names, method, job.core())?;
            let column = scores
                .columns
                .into_iter()
                .next()
                .ok_or_else(|| JobError::Failed(format!("'{set}' was not scored")))?;
            let how = match method {
                Method::Ssgsea(o) => format!("ssGSEA ES (gseapy 1.3.1, weight {})", o.weight),
                Method::ScoreGenes(o) => format!("score_genes ({})", o.version),
            };
            let summary = format!(
                "{set}: {how} of {} cells; {} of {} genes in the data",
                dataset.n_cells(),
                column.n_present,
                column.n_listed
            );
            Ok((column.values, summary))
        },
    )
}

/// A "Built-in" drop-down of the bundled gene-set libraries; the `builtin:NAME` of the one
/// picked.
pub fn builtin_menu(ui: &mut Ui) -> Option<String> {
    let mut picked = None;
    let label = ui.label("Built-in");
    egui::ComboBox::from_id_salt(("builtin-gene-sets", label.id))
        .selected_text("choose a library")
        .width(150.0)
        .show_ui(ui, |ui| {
            for library in &BUILTIN {
                ui.selectable_value(&mut picked, Some(library.source()), library.title);
            }
        })
        .response
        .labelled_by(label.id)
        .on_hover_text("gene-set libraries that ship with C2S Studio (MSigDB, CC BY 4.0)");
    picked
}

//! The app shell: menus, panels around the explorer, open datasets, jobs and dialogs.
//!
//! Layout (CELLxGENE-like): datasets and colour-by on the left, legend and selection on the
//! right, the obs table at the bottom, the embedding in the centre, jobs in the status bar.
//! Panels get the active [`DatasetView`] and push [`Action`]s; this file carries them out.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui_wgpu;
use egui::{Context, Ui};

use super::actions::Action;
use super::bench::{Bench, BenchMessage, BenchPlan};
use super::export;
use super::jobs::{JobError, JobOutput, Jobs};
use super::loader::{self, LoadRequest};
use super::panels::gene_search::GeneSearchState;
use super::panels::jobs::Notice;
use super::panels::legend::LegendState;
use super::panels::selection::SelectionPanelState;
use super::panels::table::TableState;
use super::panels::{
    color_by, colorbar, datasets, drop_overlay, explorer, jobs as jobs_panel, legend, selection,
    summary, table, welcome,
};
use super::render::scatter::ScatterRenderer;
use super::state::PersistedState;
use super::view::DatasetView;

/// Result of a native file dialog, run on its own thread.
#[derive(Debug)]
enum DialogResult {
    Open(Vec<PathBuf>),
    SavePng(PathBuf),
    SaveSvg(PathBuf),
    SaveCsv(PathBuf),
    SaveH5ad(PathBuf),
}

/// The C2S Studio desktop app.
pub struct StudioApp {
    /// Persisted preferences, recent files and layout.
    pub state: PersistedState,
    /// Open datasets.
    pub views: Vec<DatasetView>,
    /// Id of the view shown in the explorer.
    pub active: Option<u64>,
    /// Background jobs.
    pub jobs: Jobs,
    /// Messages for the user (errors stay until dismissed).
    pub notices: Vec<Notice>,
    /// Explorer interaction state.
    pub explorer: explorer::ExplorerState,
    /// Legend UI state.
    pub legend: LegendState,
    /// Gene search UI state.
    pub genes: GeneSearchState,
    /// Selection panel UI state.
    pub selection_panel: SelectionPanelState,
    /// Obs table UI state.
    pub table: TableState,
    gpu: Option<egui_wgpu::RenderState>,
    next_view_id: u64,
    /// Load jobs: job id, what it loads, and the view it replaces (matrix reloads).
    load_requests: Vec<(u64, LoadRequest, Option<u64>)>,
    dialogs: (Sender<DialogResult>, Receiver<DialogResult>),
    repaint_set: bool,
    bench: Option<Bench>,
}

impl std::fmt::Debug for StudioApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudioApp")
            .field("views", &self.views.len())
            .field("active", &self.active)
            .field("jobs", &self.jobs.running().len())
            .finish_non_exhaustive()
    }
}

impl StudioApp {
    /// A new app with `state`; `gpu` enables the wgpu scatter (the CPU fallback is used without).
    pub fn new(state: PersistedState, gpu: Option<egui_wgpu::RenderState>) -> Self {
        if let Some(rs) = &gpu {
            ScatterRenderer::install(rs);
        }
        Self {
            state,
            views: Vec::new(),
            active: None,
            jobs: Jobs::default(),
            notices: Vec::new(),
            explorer: Default::default(),
            legend: Default::default(),
            genes: Default::default(),
            selection_panel: Default::default(),
            table: Default::default(),
            gpu,
            next_view_id: 1,
            load_requests: Vec::new(),
            dialogs: channel(),
            repaint_set: false,
            bench: None,
        }
    }

    /// Creates the app from eframe's creation context and opens `paths`.
    pub fn from_creation_context(cc: &eframe::CreationContext<'_>, paths: Vec<PathBuf>) -> Self {
        let mut app = Self::new(
            PersistedState::load(cc.storage),
            cc.wgpu_render_state.clone(),
        );
        app.jobs.set_repaint_context(cc.egui_ctx.clone());
        app.repaint_set = true;
        if !paths.is_empty() {
            app.apply(&cc.egui_ctx, vec![Action::OpenPaths(paths)]);
        }
        app
    }

    /// Creates the app in benchmark mode: default preferences (nothing is saved), and the first
    /// size of `plan` loading; results go to `reports` (see [`super::bench`]).
    pub fn for_benchmark(
        cc: &eframe::CreationContext<'_>,
        plan: BenchPlan,
        reports: std::sync::mpsc::Sender<BenchMessage>,
    ) -> Self {
        let mut app = Self::new(PersistedState::default(), cc.wgpu_render_state.clone());
        app.jobs.set_repaint_context(cc.egui_ctx.clone());
        app.repaint_set = true;
        let bench = Bench::new(plan, reports);
        if let Some(n) = bench.current() {
            app.start_load(LoadRequest::Demo(n));
        }
        app.bench = Some(bench);
        app
    }

    /// The active view.
    pub fn active_view(&self) -> Option<&DatasetView> {
        self.views.iter().find(|v| Some(v.id) == self.active)
    }

    /// Starts loading `request` in a job.
    pub fn start_load(&mut self, request: LoadRequest) -> u64 {
        self.start_load_into(request, None)
    }

    /// Starts loading `request`; the result replaces view `replace` when given.
    fn start_load_into(&mut self, request: LoadRequest, replace: Option<u64>) -> u64 {
        let worker_request = request.clone();
        let id = self.jobs.spawn(request.title(), move |progress| {
            loader::load(&worker_request, progress).map(|d| JobOutput::Dataset(Box::new(d)))
        });
        self.load_requests.push((id, request, replace));
        id
    }

    /// Opens `dataset` as a new, active view.
    pub fn add_dataset(&mut self, title: String, dataset: c2s_core::dataset::Dataset) -> u64 {
        let id = self.next_view_id;
        self.next_view_id += 1;
        self.views.push(DatasetView::new(id, title, dataset));
        self.active = Some(id);
        id
    }

    /// Handles finished jobs.
    pub fn poll_jobs(&mut self) {
        for done in self.jobs.poll() {
            let (request, replace) = self
                .load_requests
                .iter()
                .position(|(id, _, _)| *id == done.id)
                .map(|k| {
                    let (_, r, v) = self.load_requests.remove(k);
                    (Some(r), v)
                })
                .unwrap_or((None, None));
            match done.result {
                Ok(JobOutput::Dataset(dataset)) => {
                    let title = request
                        .as_ref()
                        .map_or_else(|| "dataset".into(), |r| r.dataset_title());
                    if let Some(LoadRequest::File(path, _)) = &request {
                        self.state.add_recent(path);
                    }
                    match replace.and_then(|id| self.views.iter_mut().find(|v| v.id == id)) {
                        Some(view) => view.replace_dataset(*dataset),
                        None => {
                            self.add_dataset(title, *dataset);
                        }
                    }
                }
                Ok(JobOutput::Embeddings {
                    dataset_id,
                    embeddings,
                }) => {
                    if let Some(view) = self.views.iter_mut().find(|v| v.id == dataset_id) {
                        let shown = embeddings.last().map(|e| e.name.clone());
                        for embedding in embeddings {
                            let name = embedding.name.clone();
                            let obsm = &mut std::sync::Arc::make_mut(&mut view.dataset).obsm;
                            obsm.retain(|e| e.name != name);
                            obsm.push(embedding);
                            if !view.added_obsm.contains(&name) {
                                view.added_obsm.push(name);
                            }
                        }
                        if let Some(name) = shown {
                            view.set_embedding(&name);
                        }
                    }
                }
                Ok(JobOutput::GeneValues {
                    dataset_id,
                    gene,
                    values,
                }) => {
                    if let Some(view) = self.views.iter_mut().find(|v| v.id == dataset_id) {
                        view.set_gene_values(gene, values);
                    }
                }
                Ok(JobOutput::Written(message)) => self.notices.push(Notice {
                    is_error: false,
                    text: message,
                }),
                Err(JobError::Cancelled) => self.notices.push(Notice {
                    is_error: false,
                    text: format!("{}: cancelled", done.title),
                }),
                Err(JobError::Failed(message)) => {
                    let text = format!("{} failed: {message}", done.title);
                    if let Some(bench) = &mut self.bench {
                        bench.fail(text.clone());
                    }
                    self.notices.push(Notice {
                        is_error: true,
                        text,
                    });
                }
            }
        }
    }

    fn poll_dialogs(&mut self, ctx: &Context) {
        let results: Vec<DialogResult> = self.dialogs.1.try_iter().collect();
        for result in results {
            match result {
                DialogResult::Open(paths) => self.apply(ctx, vec![Action::OpenPaths(paths)]),
                DialogResult::SavePng(path) => {
                    if let Some(rect) = self.explorer.canvas_rect {
                        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
                            egui::UserData::new((path, rect)),
                        ));
                    }
                }
                DialogResult::SaveSvg(path) => self.export_svg(path),
                DialogResult::SaveCsv(path) => self.export_csv(path),
                DialogResult::SaveH5ad(path) => self.export_h5ad(path),
            }
        }
    }

    /// Saves screenshots requested for PNG export (cropped to the scatter).
    fn handle_screenshots(&mut self, ctx: &Context) {
        let shots: Vec<(std::sync::Arc<egui::ColorImage>, (PathBuf, egui::Rect))> =
            ctx.input(|i| {
                i.raw
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        egui::Event::Screenshot {
                            user_data, image, ..
                        } => user_data
                            .data
                            .as_ref()
                            .and_then(|d| d.downcast_ref::<(PathBuf, egui::Rect)>())
                            .map(|t| (image.clone(), t.clone())),
                        _ => None,
                    })
                    .collect()
            });
        let ppp = ctx.pixels_per_point();
        for (image, (path, rect)) in shots {
            self.jobs.spawn(
                format!("Saving {}", loader::display_name(&path)),
                move |_| {
                    let cropped = image.region(&rect, Some(ppp));
                    export::write_png(&cropped, &path)?;
                    Ok(JobOutput::Written(format!(
                        "view saved to {}",
                        path.display()
                    )))
                },
            );
        }
    }

    fn export_svg(&mut self, path: PathBuf) {
        let (Some(view), Some(rect)) = (self.active_view(), self.explorer.canvas_rect) else {
            return;
        };
        let (Some(camera), data) = (view.camera, view.points.clone()) else {
            return;
        };
        let n = view.n_cells();
        let radius = explorer::default_diameter(n, rect.size()) * self.state.point_scale / 2.0;
        let opacity = self.state.opacity;
        self.jobs.spawn(
            format!("Saving {}", loader::display_name(&path)),
            move |progress| {
                export::write_svg(&data, &camera, rect, radius, opacity, &path, progress)?;
                Ok(JobOutput::Written(format!(
                    "view saved to {}",
                    path.display()
                )))
            },
        );
    }

    /// Writes the selected cells' ids and obs rows as CSV (in a job).
    pub fn export_csv(&mut self, path: PathBuf) {
        let Some(view) = self.active_view() else {
            return;
        };
        let dataset = view.dataset.clone();
        let cells = view.selection.indices();
        self.jobs.spawn(
            format!("Saving {}", loader::display_name(&path)),
            move |progress| {
                export::write_selection_csv(&dataset, &cells, &path, progress)?;
                Ok(JobOutput::Written(format!(
                    "{} cells saved to {}",
                    cells.len(),
                    path.display()
                )))
            },
        );
    }

    /// Writes the session's annotations into a copy of the active dataset's file.
    pub fn export_h5ad(&mut self, output: PathBuf) {
        let Some(view) = self.active_view() else {
            return;
        };
        let Some(input) = view.dataset.source.clone() else {
            self.notices.push(Notice {
                is_error: true,
                text: "this dataset has no source file to copy (the demo); export the selection as CSV instead".into(),
            });
            return;
        };
        let d = &view.dataset;
        let additions = c2s_core::io::h5ad::Additions {
            obs: view
                .added_obs
                .iter()
                .filter_map(|n| d.obs_column(n).cloned())
                .collect(),
            obsm: view
                .added_obsm
                .iter()
                .filter_map(|n| d.embedding(n).cloned())
                .collect(),
            uns: Vec::new(),
        };
        let what = format!(
            "{} obs column(s), {} embedding(s)",
            additions.obs.len(),
            additions.obsm.len()
        );
        self.jobs.spawn(
            format!("Saving {}", loader::display_name(&output)),
            move |progress| {
                progress.set(0.0, "copying and annotating");
                c2s_core::io::h5ad::write_annotated_h5ad(&input, &output, &additions)?;
                Ok(JobOutput::Written(format!(
                    "{what} saved to {}",
                    output.display()
                )))
            },
        );
    }

    /// Runs a native dialog on its own thread (the UI keeps running).
    fn dialog(&self, make: impl FnOnce() -> Option<DialogResult> + Send + 'static) {
        let sender = self.dialogs.0.clone();
        let _ = std::thread::Builder::new()
            .name("file dialog".into())
            .spawn(move || {
                if let Some(result) = make() {
                    let _ = sender.send(result);
                }
            });
    }

    fn save_dialog(&self, name: &str, ext: &'static str, wrap: fn(PathBuf) -> DialogResult) {
        let name = name.to_string();
        self.dialog(move || {
            rfd::FileDialog::new()
                .add_filter(ext.to_uppercase(), &[ext])
                .set_file_name(name)
                .save_file()
                .map(wrap)
        });
    }

    /// Carries out panel requests.
    pub fn apply(&mut self, ctx: &Context, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        for action in actions {
            match action {
                Action::OpenDialog => self.dialog(|| {
                    rfd::FileDialog::new()
                        .add_filter("AnnData", &["h5ad"])
                        .pick_files()
                        .map(DialogResult::Open)
                }),
                Action::OpenPaths(paths) => {
                    for path in paths {
                        self.start_load(LoadRequest::File(path, None));
                    }
                }
                Action::OpenDemo(n) => {
                    self.start_load(LoadRequest::Demo(n));
                }
                Action::Activate(id) => self.active = Some(id),
                Action::Close(id) => {
                    self.views.retain(|v| v.id != id);
                    if self.active == Some(id) {
                        self.active = self.views.last().map(|v| v.id);
                    }
                    if let Some(rs) = &self.gpu {
                        let keep: Vec<u64> = self.views.iter().map(|v| v.id).collect();
                        ScatterRenderer::retain_views(rs, &keep);
                    }
                }
                Action::ExportPng => self.save_dialog("view.png", "png", DialogResult::SavePng),
                Action::ExportSvg => self.save_dialog("view.svg", "svg", DialogResult::SaveSvg),
                Action::ExportSelectionCsv => {
                    self.save_dialog("selection.csv", "csv", DialogResult::SaveCsv)
                }
                Action::ExportH5ad => {
                    self.save_dialog("annotated.h5ad", "h5ad", DialogResult::SaveH5ad)
                }
                Action::ReloadMatrix(id, matrix) => {
                    let source = self
                        .views
                        .iter()
                        .find(|v| v.id == id)
                        .and_then(|v| v.dataset.source.clone());
                    if let Some(path) = source {
                        self.start_load_into(LoadRequest::File(path, Some(matrix)), Some(id));
                    }
                }
                Action::ColorByGene(id, gene) => {
                    if let Some(view) = self.views.iter().find(|v| v.id == id) {
                        let dataset = view.dataset.clone();
                        self.jobs.spawn(format!("Reading {gene}"), move |progress| {
                            let j = dataset
                                .var_names
                                .iter()
                                .position(|g| *g == gene)
                                .ok_or_else(|| {
                                    format!("gene '{gene}' is not in the loaded matrix")
                                })?;
                            let values = super::coloring::gene_values(&dataset, j, progress)?;
                            Ok(JobOutput::GeneValues {
                                dataset_id: id,
                                gene,
                                values,
                            })
                        });
                    }
                }
                Action::ComputeEmbedding => {
                    if let Some(view) = self.active_view() {
                        let (dataset, dataset_id) = (view.dataset.clone(), view.id);
                        self.jobs
                            .spawn(format!("Computing UMAP of {}", view.title), move |p| {
                                let embeddings = super::embedding::pca_and_umap(&dataset, p)?;
                                Ok(JobOutput::Embeddings {
                                    dataset_id,
                                    embeddings,
                                })
                            });
                    }
                }
                Action::CancelJob(id) => self.jobs.cancel(id),
            }
        }
        ctx.request_repaint();
    }

    /// Draws the whole app into `ui` (the root of the window).
    pub fn show(&mut self, ui: &mut Ui) {
        let started = std::time::Instant::now();
        self.show_frame(ui);
        self.bench_frame(ui.ctx(), started.elapsed());
    }

    /// Benchmark mode: pan a little every frame and keep redrawing; once a size is measured,
    /// close its view and load the next, and close the window after the last one.
    fn bench_frame(&mut self, ctx: &Context, ui_pass: std::time::Duration) {
        let Some(bench) = &mut self.bench else {
            return;
        };
        ctx.request_repaint();
        let Some(n) = bench.current() else {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        };
        let Some(view) = self
            .views
            .iter_mut()
            .find(|v| Some(v.id) == self.active && v.n_cells() == n)
        else {
            return;
        };
        if let Some(camera) = &mut view.camera {
            camera.pan(egui::vec2(0.5, 0.0));
        }
        if self.table.is_busy() || !bench.frame(ui_pass) {
            return;
        }
        let id = view.id;
        let next = bench.current();
        self.apply(ctx, vec![Action::Close(id)]);
        if let Some(n) = next {
            self.start_load(LoadRequest::Demo(n));
        }
    }

    fn show_frame(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        if !self.repaint_set {
            self.jobs.set_repaint_context(ctx.clone());
            self.repaint_set = true;
        }
        self.poll_jobs();
        self.poll_dialogs(&ctx);
        self.handle_screenshots(&ctx);
        if self.jobs.is_busy() {
            // Keep progress bars moving even when a job reports nothing for a while.
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        let mut actions = Vec::new();
        let dropped = drop_overlay::show(&ctx);
        if !dropped.is_empty() {
            actions.push(Action::OpenPaths(dropped));
        }

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui, &mut actions));
        if self.jobs.is_busy() || !self.notices.is_empty() {
            egui::Panel::bottom("status").show(ui, |ui| {
                if let Some(k) = jobs_panel::show(ui, &self.jobs, &self.notices, &mut actions) {
                    self.notices.remove(k);
                }
            });
        }

        let gpu = self.gpu.is_some();
        let Self {
            views,
            active,
            state,
            explorer: explorer_state,
            legend: legend_state,
            genes,
            selection_panel,
            table: table_state,
            ..
        } = self;
        let active_id = *active;
        if state.layout.show_left {
            egui::Panel::left("left")
                .resizable(true)
                .default_size(250.0)
                .show(ui, |ui| {
                    datasets::show(ui, views, active_id, &mut actions);
                    ui.separator();
                    if let Some(view) = views.iter_mut().find(|v| Some(v.id) == active_id) {
                        color_by::show(ui, view, genes, &mut actions);
                    }
                });
        }
        let view = views.iter_mut().find(|v| Some(v.id) == active_id);
        let Some(view) = view else {
            egui::CentralPanel::default().show(ui, |ui| {
                welcome::show(ui, &state.recent_files, self.jobs.is_busy(), &mut actions);
            });
            self.apply(&ctx, actions);
            return;
        };
        if state.layout.show_right {
            egui::Panel::right("right")
                .resizable(true)
                .default_size(240.0)
                .show(ui, |ui| {
                    ui.heading(format!("Legend: {}", view.color_source.label()));
                    legend::show(ui, view, legend_state);
                    colorbar::show(ui, view, &mut state.continuous);
                    ui.separator();
                    selection::show(ui, view, selection_panel, &mut actions);
                });
        }
        if state.layout.show_table {
            egui::Panel::bottom("table")
                .resizable(true)
                .default_size(200.0)
                .show(ui, |ui| table::show(ui, view, table_state));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            explorer::show(ui, view, explorer_state, state, gpu, &mut actions);
        });
        let mut open = state.layout.show_summary;
        egui::Window::new(format!("Summary: {}", view.title))
            .open(&mut open)
            .default_width(520.0)
            .vscroll(true)
            .show(&ctx, |ui| summary::show(ui, &view.dataset));
        state.layout.show_summary = open;
        self.apply(&ctx, actions);
    }

    fn menu_bar(&mut self, ui: &mut Ui, actions: &mut Vec<Action>) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open…").clicked() {
                    actions.push(Action::OpenDialog);
                }
                if ui.button("Open demo dataset").clicked() {
                    actions.push(Action::OpenDemo(super::demo::DEFAULT_CELLS));
                }
                ui.menu_button("Open recent", |ui| {
                    if self.state.recent_files.is_empty() {
                        ui.weak("no recent files");
                    }
                    for path in &self.state.recent_files {
                        if ui.button(path.display().to_string()).clicked() {
                            actions.push(Action::OpenPaths(vec![path.clone()]));
                        }
                    }
                });
                ui.separator();
                let has_view = self.active.is_some();
                let has_selection = self.active_view().is_some_and(|v| !v.selection.is_empty());
                if ui
                    .add_enabled(has_view, egui::Button::new("Export view as PNG…"))
                    .clicked()
                {
                    actions.push(Action::ExportPng);
                }
                if ui
                    .add_enabled(has_view, egui::Button::new("Export view as SVG…"))
                    .clicked()
                {
                    actions.push(Action::ExportSvg);
                }
                if ui
                    .add_enabled(has_selection, egui::Button::new("Export selection as CSV…"))
                    .clicked()
                {
                    actions.push(Action::ExportSelectionCsv);
                }
                let can_annotate = self.active_view().is_some_and(|v| {
                    v.dataset.source.is_some()
                        && !(v.added_obs.is_empty() && v.added_obsm.is_empty())
                });
                if ui
                    .add_enabled(
                        can_annotate,
                        egui::Button::new("Export annotations to new .h5ad…"),
                    )
                    .on_disabled_hover_text(
                        "Save a selection as a label (or compute an embedding) in a dataset opened from a file first",
                    )
                    .clicked()
                {
                    actions.push(Action::ExportH5ad);
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                let l = &mut self.state.layout;
                ui.checkbox(&mut l.show_left, "Datasets & colour-by panel");
                ui.checkbox(&mut l.show_right, "Legend & selection panel");
                ui.checkbox(&mut l.show_table, "Cell table");
                ui.checkbox(&mut l.show_summary, "Dataset summary");
            });
            if let Some(view) = self.active_view() {
                ui.separator();
                ui.weak(format!(
                    "{} — {} cells × {} genes",
                    view.title,
                    view.n_cells(),
                    view.dataset.var_names.len()
                ));
            }
        });
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A benchmark runs with default preferences and leaves the saved ones alone.
        if self.bench.is_none() {
            self.state.save(storage);
        }
    }
}

//! Panels of the app, one per file.
//!
//! Two kinds: the pieces the shell places itself (the explorer of each dataset, the side bars,
//! the status bar, the start page), and the *tool panels* that users open as tabs: each a type
//! implementing [`Panel`], listed once in [`registry`]. A tool panel gets one [`PanelContext`]
//! (open views, the active one, jobs, models, preferences, the action queue), keeps its own
//! state, and starts long work as jobs; it never reaches into another panel.
//!
//! Adding a panel: write `panels/<name>.rs` with a type implementing [`Panel`], and add one line
//! to [`registry`].

pub mod annotate;
pub mod ask;
pub mod cell_prompts;
pub mod color_by;
pub mod colorbar;
pub mod datasets;
pub mod drop_overlay;
pub mod embed_cells;
pub mod explorer;
pub mod gene_search;
pub mod gene_sets;
pub mod generate;
pub mod generated_sets;
pub mod hover;
pub mod jobs;
pub mod legend;
pub mod model;
pub mod model_catalogue;
pub mod model_choice;
pub mod perturb;
pub mod selection;
pub mod status;
pub mod summary;
pub mod table;
pub mod task_form;
pub mod welcome;

use egui::Ui;

use crate::gui::actions::Action;
use crate::gui::jobs::Jobs;
use crate::gui::models::ModelRegistry;
use crate::gui::state::PersistedState;
use crate::gui::view::DatasetView;

/// Everything a tool panel may read and change.
#[derive(Debug)]
pub struct PanelContext<'a> {
    /// Open datasets.
    pub views: &'a mut [DatasetView],
    /// Id of the active view (the explorer tab used last).
    pub active: Option<u64>,
    /// Background jobs (start work here; never run it in `ui`).
    pub jobs: &'a mut Jobs,
    /// Loaded models.
    pub models: &'a mut ModelRegistry,
    /// Persisted preferences.
    pub prefs: &'a mut PersistedState,
    /// Requests to the shell (open files, close views, exports, ...).
    pub actions: &'a mut Vec<Action>,
}

impl PanelContext<'_> {
    /// The active view.
    pub fn active_view(&mut self) -> Option<&mut DatasetView> {
        let active = self.active?;
        self.views.iter_mut().find(|v| v.id == active)
    }
}

/// A tool panel, shown as a tab of the workbench.
pub trait Panel {
    /// Stable id, stored in the saved layout (never change it once released).
    fn id(&self) -> &'static str;

    /// The tab's title.
    fn title(&self) -> &'static str;

    /// Takes job results and other updates; called every frame, also while the tab is hidden.
    /// Actions queued here run in the same frame.
    fn update(&mut self, _cx: &mut PanelContext<'_>) {}

    /// Draws the panel. Long work is started as a job, never done here.
    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>);
}

/// Every tool panel, in the order the View menu lists them.
pub fn registry() -> Vec<Box<dyn Panel>> {
    vec![
        Box::new(table::TablePanel),
        Box::new(summary::SummaryPanel::default()),
        Box::new(model::ModelPanel::default()),
        Box::new(annotate::AnnotatePanel::default()),
        Box::new(ask::AskPanel::default()),
        Box::new(embed_cells::EmbedCellsPanel::default()),
        Box::new(generate::GeneratePanel::default()),
        Box::new(perturb::PerturbPanel::default()),
        Box::new(gene_sets::GeneSetsPanel::default()),
        Box::new(crate::gui::screen::ScreenPanel::default()),
        Box::new(crate::gui::finetune::FinetunePanel::default()),
        Box::new(jobs::JobsPanel),
    ]
}

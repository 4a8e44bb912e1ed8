//! Panels of the app, one per file. Each takes the state it shows (usually the active
//! [`crate::gui::view::DatasetView`]) and pushes [`crate::gui::actions::Action`]s for anything
//! beyond it.

pub mod color_by;
pub mod colorbar;
pub mod datasets;
pub mod drop_overlay;
pub mod explorer;
pub mod gene_search;
pub mod hover;
pub mod jobs;
pub mod legend;
pub mod selection;
pub mod summary;
pub mod table;
pub mod welcome;

//! Requests from panels to the app shell. Panels push actions; the app carries them out after
//! the frame's UI pass, so no panel reaches into another or into the job system.

use std::path::PathBuf;

/// Something a panel asks the app to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show the File → Open dialog.
    OpenDialog,
    /// Open these files (each in its own job).
    OpenPaths(Vec<PathBuf>),
    /// Generate and open the demo dataset with this many cells.
    OpenDemo(usize),
    /// Make this view the active one (and show its explorer tab).
    Activate(u64),
    /// Show this view's explorer beside the others instead of behind them.
    SplitRight(u64),
    /// Show the tool panel with this id, opening its tab if it is closed.
    OpenPanel(&'static str),
    /// Go back to the first-run layout of tabs.
    ResetLayout,
    /// Show embedding `.1` of view `.0` (positions and spatial index are built in a job).
    ShowEmbedding(u64, String),
    /// Close this view.
    Close(u64),
    /// Export the current view as a PNG (asks for a path).
    ExportPng,
    /// Export the current view as an SVG (asks for a path).
    ExportSvg,
    /// Export the selected cells' ids and obs rows as CSV (asks for a path).
    ExportSelectionCsv,
    /// Write the session's annotations (saved labels, computed embeddings) into a copy of the
    /// active dataset's `.h5ad` (asks for a path).
    ExportH5ad,
    /// Export generated set `.1` of view `.0` as a new `.h5ad` (asks for a path).
    ExportGenerated(u64, u64),
    /// Reload view `.0` with another matrix of its file (X, raw, a layer).
    ReloadMatrix(u64, c2s_core::dataset::MatrixChoice),
    /// Colour view `.0` by `.1` (the legend is built in a job: a text column of a million
    /// cells takes a while).
    ColorBy(u64, crate::gui::coloring::ColorSource),
    /// Colour view `.0` by gene `.1` (its values are read from the matrix in a job).
    ColorByGene(u64, String),
    /// Compute a PCA and a UMAP of the active dataset in a job.
    ComputeEmbedding,
}

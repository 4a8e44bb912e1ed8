//! App state that persists across runs (recent files, panel layout, preferences), versioned.
//!
//! Stored by eframe as RON under the key [`STATE_KEY`]. A state written by another version of
//! the app is replaced by the defaults (eframe would otherwise fail silently on a format change).

use std::path::{Path, PathBuf};

use super::coloring::ContinuousStyle;

/// Storage key of the persisted state.
pub const STATE_KEY: &str = "c2s-studio-state";

/// Bump when [`PersistedState`] changes incompatibly.
pub const STATE_VERSION: u32 = 1;

/// How many recent files are remembered.
pub const MAX_RECENT: usize = 10;

/// Which side panels are shown.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PanelLayout {
    /// Left: datasets, colour-by and gene search.
    pub show_left: bool,
    /// Right: legend / colour bar and selection.
    pub show_right: bool,
    /// Bottom: obs table.
    pub show_table: bool,
    /// Dataset summary window.
    pub show_summary: bool,
}

impl Default for PanelLayout {
    fn default() -> Self {
        Self {
            show_left: true,
            show_right: true,
            show_table: true,
            show_summary: false,
        }
    }
}

/// Everything saved between runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PersistedState {
    /// Format version (see [`STATE_VERSION`]).
    pub version: u32,
    /// Recently opened files, newest first.
    pub recent_files: Vec<PathBuf>,
    /// Panel visibility.
    pub layout: PanelLayout,
    /// Point size multiplier on top of the density-aware default.
    pub point_scale: f32,
    /// Point opacity in `[0.05, 1]`.
    pub opacity: f32,
    /// Colour map and clipping for continuous values.
    pub continuous: ContinuousStyle,
}

impl Default for PersistedState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            recent_files: Vec::new(),
            layout: PanelLayout::default(),
            point_scale: 1.0,
            opacity: 0.85,
            continuous: ContinuousStyle::default(),
        }
    }
}

impl PersistedState {
    /// Reads the state from eframe storage; defaults when absent, unreadable or of another version.
    pub fn load(storage: Option<&dyn eframe::Storage>) -> Self {
        storage
            .and_then(|s| s.get_string(STATE_KEY))
            .map(|text| Self::from_ron(&text))
            .unwrap_or_default()
    }

    /// Parses RON text; defaults when it is unreadable or of another version.
    pub fn from_ron(text: &str) -> Self {
        #[derive(serde::Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        match ron::from_str::<VersionOnly>(text) {
            Ok(v) if v.version == STATE_VERSION => ron::from_str(text).unwrap_or_default(),
            _ => Self::default(),
        }
    }

    /// Serialises to RON.
    pub fn to_ron(&self) -> String {
        ron::to_string(self).unwrap_or_default()
    }

    /// Writes the state to eframe storage.
    pub fn save(&self, storage: &mut dyn eframe::Storage) {
        storage.set_string(STATE_KEY, self.to_ron());
    }

    /// Puts `path` first in the recent files.
    pub fn add_recent(&mut self, path: &Path) {
        self.recent_files.retain(|p| p != path);
        self.recent_files.insert(0, path.to_path_buf());
        self.recent_files.truncate(MAX_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_guard() {
        let mut s = PersistedState::default();
        s.add_recent(Path::new("/a.h5ad"));
        s.add_recent(Path::new("/b.h5ad"));
        s.add_recent(Path::new("/a.h5ad"));
        assert_eq!(
            s.recent_files,
            vec![PathBuf::from("/a.h5ad"), PathBuf::from("/b.h5ad")]
        );
        s.opacity = 0.5;
        assert_eq!(PersistedState::from_ron(&s.to_ron()), s);
        // Another version, or garbage, resets to defaults instead of failing.
        let other = s.to_ron().replace("version:1", "version:99");
        assert_eq!(PersistedState::from_ron(&other), PersistedState::default());
        assert_eq!(
            PersistedState::from_ron("not ron"),
            PersistedState::default()
        );
    }

    #[test]
    fn recent_files_are_capped() {
        let mut s = PersistedState::default();
        for i in 0..20 {
            s.add_recent(Path::new(&format!("/f{i}.h5ad")));
        }
        assert_eq!(s.recent_files.len(), MAX_RECENT);
        assert_eq!(s.recent_files[0], PathBuf::from("/f19.h5ad"));
    }
}

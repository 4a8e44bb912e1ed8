//! App state that persists across runs (recent files, side bars, preferences).
//!
//! Stored by eframe as RON under the key [`STATE_KEY`] (the dock layout is kept apart, see
//! `app::LAYOUT_KEY`). State loads forward: a field missing from an older file takes its
//! default, a field this version does not know is ignored, and a file that cannot be read as a
//! whole still gives back its recent files.

use std::path::{Path, PathBuf};

use super::coloring::ContinuousStyle;

/// Storage key of the persisted state.
pub const STATE_KEY: &str = "c2s-studio-state";

/// Version written with the state (2: the dock layout moved to its own key, fields default).
pub const STATE_VERSION: u32 = 2;

/// How many recent files are remembered.
pub const MAX_RECENT: usize = 10;

/// Which side bars are shown.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PanelLayout {
    /// Left: datasets, colour-by and gene search.
    pub show_left: bool,
    /// Right: legend / colour bar and selection.
    pub show_right: bool,
}

impl Default for PanelLayout {
    fn default() -> Self {
        Self {
            show_left: true,
            show_right: true,
        }
    }
}

/// Everything saved between runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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
    /// Reads the state from eframe storage (see [`PersistedState::from_ron`]).
    pub fn load(storage: Option<&dyn eframe::Storage>) -> Self {
        storage
            .and_then(|s| s.get_string(STATE_KEY))
            .map(|text| Self::from_ron(&text))
            .unwrap_or_default()
    }

    /// Parses RON text written by this or any earlier version: missing fields take their
    /// defaults and unknown ones are ignored. When the text cannot be read as a whole (a field
    /// changed type), the recent files are still recovered.
    pub fn from_ron(text: &str) -> Self {
        if let Ok(mut state) = ron::from_str::<Self>(text) {
            state.version = STATE_VERSION;
            return state;
        }
        #[derive(serde::Deserialize)]
        struct RecentOnly {
            #[serde(default)]
            recent_files: Vec<PathBuf>,
        }
        let recent_files = ron::from_str::<RecentOnly>(text)
            .map(|r| r.recent_files)
            .unwrap_or_default();
        Self {
            recent_files,
            ..Self::default()
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
    fn round_trip() {
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
        assert_eq!(
            PersistedState::from_ron("not ron"),
            PersistedState::default()
        );
    }

    /// The exact text version 1 of the app wrote (before the dock): its recent files and
    /// preferences load, and the side-bar fields it had are taken, the others ignored.
    #[test]
    fn a_version_1_state_loads_without_losing_recent_files() {
        let v1 = r#"(version:1,recent_files:["/data/pbmc.h5ad","/data/lung.h5ad"],layout:(show_left:false,show_right:true,show_table:true,show_summary:false),point_scale:2.0,opacity:0.5,continuous:(colormap:Magma,clip_low:1.0,clip_high:99.0))"#;
        let s = PersistedState::from_ron(v1);
        assert_eq!(
            s.recent_files,
            vec![
                PathBuf::from("/data/pbmc.h5ad"),
                PathBuf::from("/data/lung.h5ad")
            ]
        );
        assert!(!s.layout.show_left);
        assert_eq!(s.point_scale, 2.0);
        assert_eq!(s.opacity, 0.5);
        assert_eq!(s.version, STATE_VERSION);
    }

    #[test]
    fn missing_fields_take_defaults_and_a_broken_field_keeps_recent_files() {
        let s = PersistedState::from_ron(r#"(recent_files:["/x.h5ad"])"#);
        assert_eq!(s.recent_files, vec![PathBuf::from("/x.h5ad")]);
        assert_eq!(s.opacity, PersistedState::default().opacity);
        let broken = PersistedState::from_ron(r#"(recent_files:["/y.h5ad"],opacity:"high")"#);
        assert_eq!(broken.recent_files, vec![PathBuf::from("/y.h5ad")]);
        assert_eq!(broken.opacity, PersistedState::default().opacity);
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

//! The workbench: a docking layout of tabs (egui_dock) that users drag, split and close, and
//! that persists between runs.
//!
//! Tabs are the start page, one explorer per open dataset, and the tool panels of
//! [`panels::registry`]. The explorer tab used last decides the *active* view, which the side
//! bars and the dataset-wide panels (Table, Summary) show.

use egui::{Id, Ui, WidgetText};
use egui_dock::tab_viewer::OnCloseResponse;
use egui_dock::{DockArea, DockState, NodeIndex, Split, Style, TabViewer};

use super::actions::Action;
use super::panels::{self, Panel, PanelContext, explorer, welcome};

/// One tab of the workbench.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    /// The start page (open a file, the demo, a recent file); the first dataset opened takes
    /// its place.
    Welcome,
    /// The embedding view of the open dataset with this view id.
    Explorer(u64),
    /// A tool panel, by its [`Panel::id`].
    Panel(String),
}

/// The dock layout and the tool panels it shows.
pub struct Workbench {
    /// The layout.
    pub dock: DockState<Tab>,
    panels: Vec<Box<dyn Panel>>,
}

impl std::fmt::Debug for Workbench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tabs: Vec<&Tab> = self.dock.iter_all_tabs().map(|(_, t)| t).collect();
        f.debug_struct("Workbench").field("tabs", &tabs).finish()
    }
}

impl Default for Workbench {
    fn default() -> Self {
        Self::new(default_layout())
    }
}

/// The first-run layout: the start page (later the explorers) above, the tool panels below.
pub fn default_layout() -> DockState<Tab> {
    let mut dock = DockState::new(vec![Tab::Welcome]);
    let below = [
        "table",
        "summary",
        "model",
        "annotate",
        "ask",
        "embed_cells",
        "generate",
        "perturb",
        "jobs",
    ]
    .map(|id| Tab::Panel(id.into()))
    .to_vec();
    dock.main_surface_mut()
        .split_below(NodeIndex::root(), 0.68, below);
    dock
}

impl Workbench {
    /// A workbench with `dock` as its layout, cleaned of tabs this version does not know.
    pub fn new(dock: DockState<Tab>) -> Self {
        let panels = panels::registry();
        let known: Vec<&'static str> = panels.iter().map(|p| p.id()).collect();
        let mut dock = dock.filter_tabs(|t| match t {
            Tab::Panel(id) => known.contains(&id.as_str()),
            Tab::Explorer(_) => false,
            Tab::Welcome => true,
        });
        if dock.find_tab(&Tab::Welcome).is_none() {
            dock.push_to_first_leaf(Tab::Welcome);
        }
        Self { dock, panels }
    }

    /// Restores a layout saved by [`Workbench::to_ron`]; the default layout when it is
    /// missing or unreadable.
    pub fn from_ron(text: Option<&str>) -> Self {
        let dock = text
            .and_then(|t| ron::from_str::<DockState<Tab>>(t).ok())
            .filter(|d| d.iter_all_tabs().next().is_some())
            .unwrap_or_else(default_layout);
        Self::new(dock)
    }

    /// The layout as RON. Explorer tabs are saved as the start page (datasets are not reopened
    /// on the next run): the first keeps its place, the others are dropped.
    pub fn to_ron(&self) -> String {
        let mut placed = false;
        let saved = self.dock.filter_map_tabs(|t| match t {
            Tab::Explorer(_) | Tab::Welcome if placed => None,
            Tab::Explorer(_) | Tab::Welcome => {
                placed = true;
                Some(Tab::Welcome)
            }
            other => Some(other.clone()),
        });
        ron::to_string(&saved).unwrap_or_default()
    }

    /// Whether a tab is open.
    pub fn has_tab(&self, tab: &Tab) -> bool {
        self.dock.find_tab(tab).is_some()
    }

    /// Shows a newly opened dataset: in place of the start page, else beside the explorers.
    pub fn open_view(&mut self, id: u64) {
        let new = Tab::Explorer(id);
        if let Some(path) = self.dock.find_tab(&Tab::Welcome) {
            if let Some(tab) = self.tab_mut(path) {
                *tab = new.clone();
            }
        } else if let Some(path) = self.dock.find_tab_from(|t| matches!(t, Tab::Explorer(_))) {
            if let Ok(leaf) = self.dock.leaf_mut(path.node_path()) {
                leaf.append_tab(new.clone());
            }
        } else {
            self.dock.push_to_first_leaf(new.clone());
        }
        self.focus(&new);
    }

    /// Removes dataset `id`'s explorer; the start page comes back when no explorer is left.
    pub fn close_view(&mut self, id: u64) {
        let Some(path) = self.dock.find_tab(&Tab::Explorer(id)) else {
            return;
        };
        let last = self
            .dock
            .iter_all_tabs()
            .all(|(_, t)| !matches!(t, Tab::Explorer(other) if *other != id));
        if last {
            if let Some(tab) = self.tab_mut(path) {
                *tab = Tab::Welcome;
            }
        } else {
            self.dock.remove_tab(path);
        }
    }

    /// Makes `tab` the shown and focused tab of its leaf.
    pub fn focus(&mut self, tab: &Tab) {
        if let Some(path) = self.dock.find_tab(tab) {
            let _ = self.dock.set_active_tab(path);
            self.dock.set_focused_node_and_surface(path.node_path());
        }
    }

    /// Focuses tool panel `id`, opening it in the focused leaf when it is closed.
    pub fn open_panel(&mut self, id: &str) {
        let tab = Tab::Panel(id.to_string());
        if !self.has_tab(&tab) {
            self.dock.push_to_focused_leaf(tab.clone());
        }
        self.focus(&tab);
    }

    /// Moves dataset `id`'s explorer into a new leaf right of the leaf it shares with other
    /// tabs, so two datasets show side by side.
    pub fn split_right(&mut self, id: u64) {
        let tab = Tab::Explorer(id);
        let Some(path) = self.dock.find_tab(&tab) else {
            return;
        };
        let alone = self
            .dock
            .leaf(path.node_path())
            .is_ok_and(|leaf| leaf.tabs.len() == 1);
        if alone {
            return;
        }
        let Some(removed) = self.dock.remove_tab(path) else {
            return;
        };
        self.dock.split(
            path.node_path(),
            Split::Right,
            0.5,
            egui_dock::Node::leaf(removed),
        );
        self.focus(&tab);
    }

    /// The view of the focused explorer tab, if an explorer has focus.
    pub fn focused_view(&mut self) -> Option<u64> {
        match self.dock.find_active_focused() {
            Some((_, Tab::Explorer(id))) => Some(*id),
            _ => None,
        }
    }

    /// The title of tool panel `id`.
    pub fn panel_titles(&self) -> Vec<(&'static str, &'static str)> {
        self.panels.iter().map(|p| (p.id(), p.title())).collect()
    }

    /// Lets every tool panel take its job results (also those whose tab is hidden).
    pub fn update_panels(&mut self, cx: &mut PanelContext<'_>) {
        for panel in &mut self.panels {
            panel.update(cx);
        }
    }

    /// Draws the dock into `ui`.
    pub fn show(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>, gpu: bool) {
        let mut viewer = Viewer {
            panels: &mut self.panels,
            cx,
            gpu,
        };
        DockArea::new(&mut self.dock)
            .id(Id::new("workbench dock"))
            .style(Style::from_egui(ui.style().as_ref()))
            .show_leaf_collapse_buttons(false)
            .show_leaf_close_all_buttons(false)
            .show_inside(ui, &mut viewer);
    }

    fn tab_mut(&mut self, path: egui_dock::TabPath) -> Option<&mut Tab> {
        self.dock
            .leaf_mut(path.node_path())
            .ok()
            .and_then(|leaf| leaf.tabs.get_mut(path.tab.0))
    }
}

/// Draws each tab: the shell's own (start page, explorers) and the registered panels.
struct Viewer<'a, 'c> {
    panels: &'a mut [Box<dyn Panel>],
    cx: &'a mut PanelContext<'c>,
    gpu: bool,
}

impl TabViewer for Viewer<'_, '_> {
    type Tab = Tab;

    fn title(&mut self, tab: &mut Tab) -> WidgetText {
        match tab {
            Tab::Welcome => "Start".into(),
            Tab::Explorer(id) => self
                .cx
                .views
                .iter()
                .find(|v| v.id == *id)
                .map_or_else(|| "closed".into(), |v| v.title.clone().into()),
            Tab::Panel(id) => self
                .panels
                .iter()
                .find(|p| p.id() == id)
                .map_or("?", |p| p.title())
                .into(),
        }
    }

    fn id(&mut self, tab: &mut Tab) -> Id {
        Id::new(("workbench tab", &*tab))
    }

    fn ui(&mut self, ui: &mut Ui, tab: &mut Tab) {
        let cx = &mut *self.cx;
        match tab {
            Tab::Welcome => {
                welcome::show(ui, &cx.prefs.recent_files, cx.jobs.is_busy(), cx.actions)
            }
            Tab::Explorer(id) => {
                let Some(view) = cx.views.iter_mut().find(|v| v.id == *id) else {
                    ui.weak("This dataset was closed.");
                    return;
                };
                let mut state = std::mem::take(&mut view.panels.explorer);
                explorer::show(ui, view, &mut state, cx.prefs, self.gpu, cx.actions);
                view.panels.explorer = state;
                // A press anywhere in an explorer makes its dataset the active one.
                if cx.active != Some(*id)
                    && ui.ui_contains_pointer()
                    && ui.input(|i| i.pointer.any_pressed())
                {
                    cx.actions.push(Action::Activate(*id));
                }
            }
            Tab::Panel(id) => match self.panels.iter_mut().find(|p| p.id() == id) {
                Some(panel) => panel.ui(ui, cx),
                None => {
                    ui.weak("This panel does not exist in this version.");
                }
            },
        }
    }

    fn context_menu(&mut self, ui: &mut Ui, tab: &mut Tab, _path: egui_dock::NodePath) {
        if let Tab::Explorer(id) = tab {
            if ui.button("Show side by side").clicked() {
                self.cx.actions.push(Action::SplitRight(*id));
                ui.close();
            }
            if ui.button("Close dataset").clicked() {
                self.cx.actions.push(Action::Close(*id));
                ui.close();
            }
        }
    }

    fn on_close(&mut self, tab: &mut Tab) -> OnCloseResponse {
        match tab {
            // The shell removes the tab with the view (and brings back the start page when it
            // was the last one).
            Tab::Explorer(id) => {
                self.cx.actions.push(Action::Close(*id));
                OnCloseResponse::Ignore
            }
            _ => OnCloseResponse::Close,
        }
    }

    fn scroll_bars(&self, _tab: &Tab) -> [bool; 2] {
        [false, false]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_reopen_and_explorers_take_the_start_page() {
        let jobs = Tab::Panel("jobs".into());
        let mut wb = Workbench::default();
        let path = wb.dock.find_tab(&jobs).unwrap();
        wb.dock.remove_tab(path);
        assert!(!wb.has_tab(&jobs));
        wb.open_panel("jobs");
        assert!(wb.has_tab(&jobs), "View → Jobs reopens a closed tab");
        wb.open_view(1);
        assert!(!wb.has_tab(&Tab::Welcome) && wb.has_tab(&Tab::Explorer(1)));
        wb.open_view(2);
        assert_eq!(wb.focused_view(), Some(2));
        wb.close_view(1);
        assert!(!wb.has_tab(&Tab::Explorer(1)));
        wb.close_view(2);
        assert!(
            wb.has_tab(&Tab::Welcome),
            "the last explorer gives way to the start page"
        );
        // A saved layout keeps no explorer, and a panel this version lacks is dropped.
        wb.open_view(3);
        let saved = wb.to_ron().replace("\"jobs\"", "\"retired\"");
        let restored = Workbench::from_ron(Some(&saved));
        assert!(!restored.has_tab(&Tab::Panel("retired".into())));
        assert!(!restored.has_tab(&Tab::Explorer(3)) && restored.has_tab(&Tab::Welcome));
        assert!(restored.has_tab(&Tab::Panel("model".into())));
    }
}

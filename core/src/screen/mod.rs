//! Virtual perturbation screens: a spec (contexts × library × model × gene sets), the work
//! units it expands to, a resumable and shardable results store, the runner and the report.

pub mod context;
pub mod genes;
pub mod library;
pub mod report;
pub mod run;
pub mod spec;
pub mod store;
pub mod table;
pub mod units;
pub mod volcano_svg;

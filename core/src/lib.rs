//! C2S Studio core: everything but the GUI.
//!
//! Follow one dataset through the modules in order: [`io`] reads an `.h5ad` into a
//! [`dataset::Dataset`], [`preprocess`] filters and normalises its matrix, [`sentence`] turns
//! cells into cell sentences, [`inverse`] fits and applies the rank → expression transform, and
//! [`io::export`] writes results back out.

pub mod dataset;
pub mod engine;
pub mod matrix;
pub mod model;

//! C2S Studio core: everything but the GUI.
//!
//! Follow one dataset through the modules in order: [`io`] reads an `.h5ad` into a
//! [`dataset::Dataset`], [`preprocess`] filters and normalises its matrix, [`sentence`] turns
//! cells into cell sentences, [`inverse`] fits and applies the rank → expression transform, and
//! [`io`] writes results back out.

pub mod bundled;
pub mod convert;
pub mod dataset;
pub mod embed;
pub mod engine;
pub mod error;
pub mod genesets;
pub mod hub;
pub mod inverse;
pub mod io;
pub mod kernels;
pub mod matrix;
pub mod metrics;
pub mod model;
pub mod preprocess;
pub mod progress;
pub mod rng;
pub mod screen;
pub mod sentence;
pub mod statistics;
pub mod tasks;
pub mod test_support;
pub mod train;

pub use error::{Error, Result};
pub use progress::Progress;

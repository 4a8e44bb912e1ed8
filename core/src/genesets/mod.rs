//! Gene-set scoring: GMT libraries ([`gmt`], the bundled ones in [`builtin`]), ssGSEA as gseapy 1.3.1 computes it ([`ssgsea`]),
//! scanpy's `score_genes` ([`score_genes`]), and scoring a dataset's cells with either
//! ([`dataset_scores`]). Each scorer is proven equal to its Python
//! reference by fixtures from `tools/genesets/`.

pub mod builtin;
pub mod dataset_scores;
pub mod gmt;
pub mod score_genes;
pub mod ssgsea;

pub use gmt::{GeneIndex, GeneSet, GeneSetLibrary, SetMatch};
pub use score_genes::{MeanMode, ScanpyVersion, ScoreGenes, ScoreGenesOptions};
pub use ssgsea::{Ssgsea, SsgseaOptions, SsgseaScores};

#[cfg(test)]
mod reference_tests;

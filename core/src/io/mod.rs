//! Reading and writing files: `.h5ad` in, Parquet/CSV/`.h5ad` out. Every output is written
//! atomically to a new file; inputs are never modified.

pub mod atomic;
pub mod export;
pub mod h5ad;
pub mod parquet;

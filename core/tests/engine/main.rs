//! The engine's integration tests, in one binary (one link, one build of the shared helpers):
//! parity with `transformers` on the CPU and wgpu, batching, generation controls, tokenization,
//! bad input, and cell embeddings against the `cell2sentence` package.

mod common;

mod annotate;
mod batching;
mod compat;
mod errors;
mod generation;
mod parity_cpu;
mod tokenizer;
mod wgpu;

//! Drawing the embedding: the camera, the wgpu scatter callback and a CPU fallback.

pub mod camera;
pub mod cpu;
pub mod scatter;

//! Drawing the embedding: the camera, the wgpu scatter callback, a CPU fallback, and the paint
//! order they share (selected points on top).

pub mod camera;
pub mod cpu;
pub mod order;
pub mod scatter;

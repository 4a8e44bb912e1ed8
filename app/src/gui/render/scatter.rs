//! The GPU embedding scatter: an `egui_wgpu` paint callback drawing instanced quads.
//!
//! Positions are uploaded once per embedding; colours and flags only when they change (each
//! upload is keyed by a generation number); the camera is a small uniform written every frame.
//! GPU resources live in the renderer's `callback_resources`, one [`GpuView`] per open view.
//!
//! Selected points are drawn on top (see [`super::order`]): the first draw skips them while a
//! selection exists, and a second draw paints a compact copy of just the selected points, which
//! is gathered and uploaded only when the selection, the colours or the positions change.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use eframe::wgpu;

use super::order;

/// Flag bit set only in the on-top copy of the selected points (must match the shader).
const FLAG_ON_TOP: u32 = 4;

/// A fresh generation number: data tagged with it is uploaded once.
pub fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Data shared with the GPU, each part with the generation it was last changed at.
#[derive(Debug, Clone, Default)]
pub struct PointData {
    /// Positions in data coordinates.
    pub positions: (u64, Arc<Vec<[f32; 2]>>),
    /// RGBA8 colours.
    pub colors: (u64, Arc<Vec<u32>>),
    /// Flags (see `coloring::FLAG_*`).
    pub flags: (u64, Arc<Vec<u32>>),
}

/// The camera uniform (must match `Camera` in `shaders/scatter.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CameraUniform {
    /// Data coordinates at the view centre.
    pub center: [f32; 2],
    /// Data → clip scale.
    pub scale: [f32; 2],
    /// Point radius in clip units.
    pub radius: [f32; 2],
    /// Global opacity.
    pub opacity: f32,
    /// Bit 0: selection active; bit 1: sRGB target (set by the renderer).
    pub mode: u32,
}

impl CameraUniform {
    fn bytes(&self) -> [u8; 32] {
        let words: [u32; 8] = [
            self.center[0].to_bits(),
            self.center[1].to_bits(),
            self.scale[0].to_bits(),
            self.scale[1].to_bits(),
            self.radius[0].to_bits(),
            self.radius[1].to_bits(),
            self.opacity.to_bits(),
            self.mode,
        ];
        bytemuck::cast(words)
    }
}

/// One paint of one view.
#[derive(Debug)]
pub struct ScatterCallback {
    /// Which view (an open dataset) this is.
    pub view_id: u64,
    /// What to draw.
    pub data: PointData,
    /// Camera for this frame.
    pub camera: CameraUniform,
}

/// Pipeline and per-view buffers, stored in `callback_resources`.
#[derive(Debug)]
pub struct ScatterRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    srgb_target: bool,
    views: HashMap<u64, GpuView>,
}

#[derive(Debug)]
struct GpuView {
    positions: wgpu::Buffer,
    colors: wgpu::Buffer,
    flags: wgpu::Buffer,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    len: usize,
    generations: [u64; 3],
    top: TopLayer,
}

/// The compact copy of the selected points, drawn in the second call.
#[derive(Debug)]
struct TopLayer {
    positions: wgpu::Buffer,
    colors: wgpu::Buffer,
    flags: wgpu::Buffer,
    /// Points in the layer.
    len: usize,
    /// Points the buffers have room for.
    capacity: usize,
    /// Generations of positions, colours and flags it was gathered from.
    generations: [u64; 3],
}

impl TopLayer {
    fn new(device: &wgpu::Device, capacity: usize) -> Self {
        let vertex = wgpu::BufferUsages::VERTEX;
        Self {
            positions: buffer(device, "scatter top positions", capacity * 8, vertex),
            colors: buffer(device, "scatter top colours", capacity * 4, vertex),
            flags: buffer(device, "scatter top flags", capacity * 4, vertex),
            len: 0,
            capacity,
            generations: [0; 3],
        }
    }

    /// Gathers the selected points of `d` and uploads them when any input changed.
    fn update(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, d: &PointData) {
        let generations = [d.positions.0, d.colors.0, d.flags.0];
        let n = d.positions.1.len();
        if self.generations == generations || d.colors.1.len() != n || d.flags.1.len() != n {
            return;
        }
        let top = order::on_top(&d.flags.1);
        if top.len() > self.capacity {
            *self = Self::new(device, top.len().next_power_of_two());
        }
        let positions: Vec<[f32; 2]> = top.iter().map(|&i| d.positions.1[i as usize]).collect();
        let colors: Vec<u32> = top.iter().map(|&i| d.colors.1[i as usize]).collect();
        let flags: Vec<u32> = top
            .iter()
            .map(|&i| d.flags.1[i as usize] | FLAG_ON_TOP)
            .collect();
        if !top.is_empty() {
            queue.write_buffer(&self.positions, 0, bytemuck::cast_slice(&positions));
            queue.write_buffer(&self.colors, 0, bytemuck::cast_slice(&colors));
            queue.write_buffer(&self.flags, 0, bytemuck::cast_slice(&flags));
        }
        self.len = top.len();
        self.generations = generations;
    }
}

impl ScatterRenderer {
    /// Builds the pipeline for `render_state`'s target format and stores it in the renderer.
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let device = &render_state.device;
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("scatter"),
            source: wgpu::ShaderSource::Wgsl(
                include_str!("../../../../shaders/scatter.wgsl").into(),
            ),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("scatter camera"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("scatter"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        const POSITION: [wgpu::VertexAttribute; 1] = wgpu::vertex_attr_array![0 => Float32x2];
        const COLOR: [wgpu::VertexAttribute; 1] = wgpu::vertex_attr_array![1 => Unorm8x4];
        const FLAGS: [wgpu::VertexAttribute; 1] = wgpu::vertex_attr_array![2 => Uint32];
        let instance =
            |stride: u64, attributes: &'static [wgpu::VertexAttribute]| wgpu::VertexBufferLayout {
                array_stride: stride,
                step_mode: wgpu::VertexStepMode::Instance,
                attributes,
            };
        let buffers = [
            instance(8, &POSITION),
            instance(4, &COLOR),
            instance(4, &FLAGS),
        ];
        let target = render_state.target_format;
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("scatter"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                buffers: &buffers,
                compilation_options: Default::default(),
            },
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                targets: &[Some(wgpu::ColorTargetState {
                    format: target,
                    blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: Default::default(),
            }),
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            multiview_mask: None,
            cache: None,
        });
        render_state
            .renderer
            .write()
            .callback_resources
            .insert(ScatterRenderer {
                pipeline,
                layout,
                srgb_target: target.is_srgb(),
                views: HashMap::new(),
            });
    }

    /// Frees the GPU buffers of views not in `keep`.
    pub fn retain_views(render_state: &egui_wgpu::RenderState, keep: &[u64]) {
        if let Some(r) = render_state
            .renderer
            .write()
            .callback_resources
            .get_mut::<ScatterRenderer>()
        {
            r.views.retain(|id, _| keep.contains(id));
        }
    }
}

fn buffer(
    device: &wgpu::Device,
    label: &str,
    size: usize,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(16) as u64,
        usage: usage | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

impl CallbackTrait for ScatterCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(renderer) = resources.get_mut::<ScatterRenderer>() else {
            return Vec::new();
        };
        let n = self.data.positions.1.len();
        let srgb = renderer.srgb_target;
        let layout = &renderer.layout;
        let view = renderer.views.entry(self.view_id);
        let view = match view {
            std::collections::hash_map::Entry::Occupied(o) if o.get().len == n => o.into_mut(),
            entry => {
                let vertex = wgpu::BufferUsages::VERTEX;
                let uniform = buffer(device, "scatter camera", 32, wgpu::BufferUsages::UNIFORM);
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("scatter camera"),
                    layout,
                    entries: &[wgpu::BindGroupEntry {
                        binding: 0,
                        resource: uniform.as_entire_binding(),
                    }],
                });
                let fresh = GpuView {
                    positions: buffer(device, "scatter positions", n * 8, vertex),
                    colors: buffer(device, "scatter colours", n * 4, vertex),
                    flags: buffer(device, "scatter flags", n * 4, vertex),
                    uniform,
                    bind_group,
                    len: n,
                    generations: [0; 3],
                    top: TopLayer::new(device, 0),
                };
                match entry {
                    std::collections::hash_map::Entry::Occupied(mut o) => {
                        o.insert(fresh);
                        o.into_mut()
                    }
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(fresh),
                }
            }
        };
        let d = &self.data;
        if view.generations[0] != d.positions.0 {
            queue.write_buffer(&view.positions, 0, bytemuck::cast_slice(&d.positions.1));
            view.generations[0] = d.positions.0;
        }
        if view.generations[1] != d.colors.0 && d.colors.1.len() == n {
            queue.write_buffer(&view.colors, 0, bytemuck::cast_slice(&d.colors.1));
            view.generations[1] = d.colors.0;
        }
        if view.generations[2] != d.flags.0 && d.flags.1.len() == n {
            queue.write_buffer(&view.flags, 0, bytemuck::cast_slice(&d.flags.1));
            view.generations[2] = d.flags.0;
        }
        view.top.update(device, queue, d);
        let mut camera = self.camera;
        if srgb {
            camera.mode |= 2;
        }
        queue.write_buffer(&view.uniform, 0, &camera.bytes());
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(renderer) = resources.get::<ScatterRenderer>() else {
            return;
        };
        let Some(view) = renderer.views.get(&self.view_id) else {
            return;
        };
        if view.len == 0 {
            return;
        }
        render_pass.set_pipeline(&renderer.pipeline);
        render_pass.set_bind_group(0, &view.bind_group, &[]);
        render_pass.set_vertex_buffer(0, view.positions.slice(..));
        render_pass.set_vertex_buffer(1, view.colors.slice(..));
        render_pass.set_vertex_buffer(2, view.flags.slice(..));
        render_pass.draw(0..6, 0..view.len as u32);
        let top = &view.top;
        if top.len > 0 {
            render_pass.set_vertex_buffer(0, top.positions.slice(..));
            render_pass.set_vertex_buffer(1, top.colors.slice(..));
            render_pass.set_vertex_buffer(2, top.flags.slice(..));
            render_pass.draw(0..6, 0..top.len as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_uniform_layout_is_32_bytes_in_field_order() {
        let u = CameraUniform {
            center: [1.0, 2.0],
            scale: [3.0, 4.0],
            radius: [5.0, 6.0],
            opacity: 0.5,
            mode: 1,
        };
        let b = u.bytes();
        assert_eq!(f32::from_le_bytes(b[0..4].try_into().unwrap()), 1.0);
        assert_eq!(f32::from_le_bytes(b[24..28].try_into().unwrap()), 0.5);
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 1);
    }

    #[test]
    fn shader_parses_and_validates() {
        let source = include_str!("../../../../shaders/scatter.wgsl");
        let module = naga_check(source);
        assert!(module.is_ok(), "{module:?}");
    }

    fn naga_check(source: &str) -> Result<(), String> {
        let module =
            wgpu::naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
        wgpu::naga::valid::Validator::new(
            wgpu::naga::valid::ValidationFlags::all(),
            wgpu::naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
    }
}

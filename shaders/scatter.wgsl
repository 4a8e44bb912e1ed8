// Embedding scatter: one instanced quad per cell, cut to a circle in the fragment shader.
//
// Per-instance inputs: position (data coordinates), colour (RGBA8) and flags
// (bit 0: hidden by the legend, bit 1: selected, bit 2: this is the on-top copy of a selected
// point). The camera uniform maps data coordinates to clip space of the callback's viewport.
//
// Selected points are drawn on top: while a selection exists, the first draw (all points) skips
// them and a second draw over a compact copy of the selected points (bit 2 set) paints them last.

struct Camera {
    // Data coordinates at the centre of the view.
    center: vec2<f32>,
    // Data units -> clip units, per axis.
    scale: vec2<f32>,
    // Point radius in clip units, per axis.
    radius: vec2<f32>,
    // Global opacity in [0, 1].
    opacity: f32,
    // Bit 0: a selection exists (dim the rest). Bit 1: the target is sRGB (linearise output).
    mode: u32,
};

@group(0) @binding(0) var<uniform> camera: Camera;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
    @location(1) color: vec4<f32>,
};

@vertex
fn vs_main(
    @builtin(vertex_index) vertex: u32,
    @location(0) position: vec2<f32>,
    @location(1) color: vec4<f32>,
    @location(2) flags: u32,
) -> VertexOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, 1.0), vec2<f32>(-1.0, 1.0),
    );
    var out: VertexOut;
    let corner = corners[vertex];
    out.uv = corner;
    let selection_active = (camera.mode & 1u) != 0u;
    let selected = (flags & 2u) != 0u;
    let on_top = (flags & 4u) != 0u;
    if ((flags & 1u) != 0u || (selection_active && selected && !on_top)) {
        // Hidden, or drawn later on top: a degenerate quad outside the clip volume.
        out.position = vec4<f32>(2.0, 2.0, 2.0, 1.0);
        out.color = vec4<f32>(0.0);
        return out;
    }
    var rgb = color.rgb;
    var alpha = color.a * camera.opacity;
    var radius = camera.radius;
    if (selection_active) {
        if (selected) {
            radius = radius * 1.25;
            alpha = max(alpha, 0.9);
        } else {
            rgb = mix(rgb, vec3<f32>(0.8, 0.8, 0.8), 0.7);
            alpha = alpha * 0.4;
        }
    }
    let center = (position - camera.center) * camera.scale;
    out.position = vec4<f32>(center + corner * radius, 0.0, 1.0);
    out.color = vec4<f32>(rgb, alpha);
    return out;
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let d = length(in.uv);
    if (d > 1.0) {
        discard;
    }
    // Soft edge about one pixel wide.
    let edge = clamp((1.0 - d) / max(fwidth(d), 1e-4), 0.0, 1.0);
    let alpha = in.color.a * edge;
    var rgb = in.color.rgb;
    if ((camera.mode & 2u) != 0u) {
        rgb = srgb_to_linear(rgb);
    }
    // Premultiplied alpha, like the rest of egui.
    return vec4<f32>(rgb * alpha, alpha);
}

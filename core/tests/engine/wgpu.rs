//! Parity with `transformers` on the wgpu backend, with Burn's fusion on and off. Runs on any
//! adapter, including Mesa's software Vulkan (lavapipe, Debian `mesa-vulkan-drivers`); skips with
//! a message when no adapter exists.

use crate::common::{FIXTURES, assert_f32_parity, parity};
use burn::backend::Wgpu;
use burn::backend::wgpu::WgpuDevice;
use burn::tensor::DType;
use c2s_core::engine::WgpuNoFusion;
use c2s_core::engine::device::probe_wgpu;

fn adapter() -> Option<String> {
    match probe_wgpu() {
        Ok(adapter) => Some(adapter.name),
        Err(why) => {
            c2s_core::test_support::skip(&format!("no wgpu adapter for the parity check ({why})"));
            None
        }
    }
}

#[test]
fn wgpu_with_fusion_matches_transformers() {
    let Some(name) = adapter() else { return };
    eprintln!("wgpu adapter: {name}");
    for fixture in FIXTURES {
        let p = parity::<Wgpu>(fixture, &WgpuDevice::DefaultDevice, DType::F32);
        assert_f32_parity(fixture, "wgpu+fusion", &p);
    }
}

#[test]
fn wgpu_without_fusion_matches_transformers() {
    let Some(_) = adapter() else { return };
    for fixture in FIXTURES {
        let p = parity::<WgpuNoFusion>(fixture, &WgpuDevice::DefaultDevice, DType::F32);
        assert_f32_parity(fixture, "wgpu-nofusion", &p);
    }
}

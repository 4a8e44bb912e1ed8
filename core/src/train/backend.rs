//! Runs a training job on the backend the user asked for: CUDA, wgpu or the Flex CPU backend,
//! each wrapped in Burn's `Autodiff` (f32). The training code itself stays generic.

use super::TrainError;
use super::data::Example;
use super::trainer::{StepRecord, TrainSettings, TrainSummary, train};
use crate::engine::device::{DeviceKind, DeviceRequest, DeviceSelection, select_device};
use crate::progress::Progress;
use burn::backend::cuda::CudaDevice;
use burn::backend::flex::FlexDevice;
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, Cuda, Flex, Wgpu};
use std::path::Path;

/// Selects a backend for `request` and trains there (see [`train`]); returns the summary and
/// the backend used.
pub fn train_on(
    request: DeviceRequest,
    model_dir: &Path,
    examples: &[Example],
    out: &Path,
    settings: &TrainSettings,
    progress: &Progress,
    on_step: &mut dyn FnMut(&StepRecord),
) -> Result<(TrainSummary, DeviceSelection), TrainError> {
    let selection = select_device(request);
    let summary = match selection.kind {
        DeviceKind::Cpu => train::<Autodiff<Flex>>(
            model_dir,
            examples,
            out,
            settings,
            &FlexDevice,
            progress,
            on_step,
        ),
        DeviceKind::Wgpu => train::<Autodiff<Wgpu>>(
            model_dir,
            examples,
            out,
            settings,
            &WgpuDevice::DefaultDevice,
            progress,
            on_step,
        ),
        DeviceKind::Cuda => train::<Autodiff<Cuda>>(
            model_dir,
            examples,
            out,
            settings,
            &CudaDevice { index: 0 },
            progress,
            on_step,
        ),
    }?;
    Ok((summary, selection))
}

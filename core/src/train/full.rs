//! Full fine-tuning: every weight of the base model is trainable. The weights live on the host
//! in the checkpoint's names and layout (the optimizer updates them there, checkpoints store
//! them as they are) and are uploaded into the model's slots before every pass, tracking
//! gradients while training.

use super::TrainError;
use super::model::TrainableModel;
use super::model::layers::Slot;
use crate::model::linear::host_f32;
use crate::model::weights::{Weights, transpose};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// Bytes of memory per parameter that full fine-tuning holds besides activations: the f32
/// weights on the host and on the device, their gradients and AdamW's two moments.
pub const BYTES_PER_PARAM: usize = 20;

/// Every weight of a model, `[out, in]` for linear weights as on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct FullParams {
    /// Hugging Face names, in the model's slot order.
    pub names: Vec<String>,
    /// Shapes as on disk.
    pub shapes: Vec<Vec<usize>>,
    /// Values, row-major.
    pub values: Vec<Vec<f32>>,
}

impl FullParams {
    /// The base model's weights for every slot of `model`.
    pub fn from_base<B: Backend>(
        model: &mut TrainableModel<B>,
        weights: &Weights,
    ) -> Result<Self, TrainError> {
        let names: Vec<String> = model.slots()?.into_iter().map(|(n, _)| n).collect();
        let mut shapes = Vec::with_capacity(names.len());
        let mut values = Vec::with_capacity(names.len());
        for name in &names {
            let shape = weights.shape(name).unwrap_or_default().to_vec();
            values.push(weights.read_f32(name, &shape)?);
            shapes.push(shape);
        }
        Ok(Self {
            names,
            shapes,
            values,
        })
    }

    /// Every tensor, in slot order (the order of gradients and optimizer state).
    pub fn tensors(&self) -> Vec<&[f32]> {
        self.values.iter().map(Vec::as_slice).collect()
    }

    /// [`Self::tensors`], mutable.
    pub fn tensors_mut(&mut self) -> Vec<&mut Vec<f32>> {
        self.values.iter_mut().collect()
    }

    /// Puts the weights into `model` on `device`; with `track` they are the tensors gradients
    /// are taken for.
    pub fn upload<B: Backend>(
        &self,
        model: &mut TrainableModel<B>,
        device: &B::Device,
        track: bool,
    ) -> Result<(), TrainError> {
        for ((_, slot), (values, shape)) in model
            .slots()?
            .into_iter()
            .zip(self.values.iter().zip(&self.shapes))
        {
            match slot {
                Slot::Matrix(t) => {
                    *t = Tensor::from_data(
                        TensorData::new(values.clone(), [shape[0], shape[1]]),
                        device,
                    )
                    .set_require_grad(track);
                }
                Slot::Transposed(t) => {
                    *t = Tensor::from_data(
                        TensorData::new(
                            transpose(values, shape[0], shape[1]),
                            [shape[1], shape[0]],
                        ),
                        device,
                    )
                    .set_require_grad(track);
                }
                Slot::Vector(t) => {
                    *t = Tensor::from_data(TensorData::new(values.clone(), [shape[0]]), device)
                        .set_require_grad(track);
                }
            }
        }
        Ok(())
    }
}

/// The gradients of every weight of `model` (uploaded with tracking), in slot order and the
/// on-disk layout; zeros for a weight the loss does not reach.
pub fn gradients<B: AutodiffBackend>(
    model: &mut TrainableModel<B>,
    grads: &B::Gradients,
) -> Result<Vec<Vec<f32>>, TrainError> {
    Ok(model
        .slots()?
        .into_iter()
        .map(|(_, slot)| match slot {
            Slot::Matrix(t) => grad_or_zeros(t, grads),
            Slot::Transposed(t) => {
                let [rows, cols] = t.dims();
                transpose(&grad_or_zeros(t, grads), rows, cols)
            }
            Slot::Vector(t) => grad_or_zeros(t, grads),
        })
        .collect())
}

fn grad_or_zeros<B: AutodiffBackend, const D: usize>(
    t: &Tensor<B, D>,
    grads: &B::Gradients,
) -> Vec<f32> {
    match t.grad(grads) {
        Some(g) => host_f32(g),
        None => vec![0.0; t.shape().num_elements()],
    }
}

/// Refuses full fine-tuning of a model with `params` parameters when it would not fit in
/// `available` bytes of memory ([`BYTES_PER_PARAM`] per parameter; unknown memory passes).
pub fn check_memory(params: usize, available: Option<u64>) -> Result<(), TrainError> {
    let need = (params * BYTES_PER_PARAM) as u64;
    match available {
        Some(have) if need > have => Err(TrainError::InvalidConfig(format!(
            "full fine-tuning of this model's {:.1} M parameters needs about {:.1} GiB \
             ({BYTES_PER_PARAM} bytes per parameter: weights on host and device, gradients, \
             AdamW moments; activations extra), but {:.1} GiB of memory is available; use LoRA \
             (leave out --full) or a smaller model",
            params as f64 / 1e6,
            need as f64 / (1u64 << 30) as f64,
            have as f64 / (1u64 << 30) as f64
        ))),
        _ => Ok(()),
    }
}

/// Memory available to this process (Linux `MemAvailable`), when known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }

    #[test]
    fn memory_check_refuses_what_does_not_fit() {
        assert!(check_memory(1000, Some(20_000)).is_ok());
        assert!(check_memory(1000, None).is_ok());
        let e = check_memory(1000, Some(19_999)).unwrap_err().to_string();
        assert!(
            e.contains("20 bytes per parameter") && e.contains("LoRA"),
            "{e}"
        );
    }
}

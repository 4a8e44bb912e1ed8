//! A dense layer. On GPU backends the weight is a Burn tensor (PyTorch's `[out, in]` transposed
//! to `[in, out]` at load) multiplied by Burn. On the Flex CPU backend it is packed in host memory
//! for [`crate::kernels`] (f32 or 8-bit), which multiply on every core with AVX-512 where the
//! processor has it: Flex's own matmul runs a single decoded token on one core.

use super::config::Activation;
use super::weights::Weights;
use super::{ModelError, Precision, activate_chunk, activate_rows};
use crate::kernels::PackedMatrix;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use std::ops::Range;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Weight<B: Backend> {
    /// `[in, out]` on the device, multiplied by Burn.
    Device {
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    },
    /// Packed in host memory for the CPU kernels.
    Host {
        weight: Arc<PackedMatrix>,
        bias: Option<Arc<[f32]>>,
    },
}

/// `y = x·Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear<B: Backend> {
    weight: Weight<B>,
}

/// True when dense layers on `device` run on the CPU kernels (the Flex backend).
pub fn uses_host_kernels<B: Backend>(device: &B::Device) -> bool {
    B::name(device) == "flex"
}

impl<B: Backend> Linear<B> {
    /// Loads `{prefix}.weight` (`[out, in]` on disk) and, when `bias`, `{prefix}.bias`.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        precision: Precision,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let name = format!("{prefix}.weight");
        let bias_name = format!("{prefix}.bias");
        let weight = if uses_host_kernels::<B>(device) {
            let packed = weights.packed(&name, out_features, in_features, precision.cpu_weights)?;
            let bias = if bias {
                Some(weights.read_f32(&bias_name, &[out_features])?.into())
            } else {
                None
            };
            Weight::Host {
                weight: Arc::new(packed),
                bias,
            }
        } else {
            Weight::Device {
                weight: weights.linear_weight::<B>(
                    &name,
                    out_features,
                    in_features,
                    precision.dtype,
                    device,
                )?,
                bias: if bias {
                    Some(weights.tensor::<B, 1>(
                        &bias_name,
                        [out_features],
                        precision.dtype,
                        device,
                    )?)
                } else {
                    None
                },
            }
        };
        Ok(Self { weight })
    }

    /// Bytes the weights take (host memory for packed layers, device memory otherwise).
    pub fn bytes(&self) -> usize {
        match &self.weight {
            Weight::Device { weight, bias } => {
                let elems = |t: &Tensor<B, 2>| t.dims().iter().product::<usize>();
                (elems(weight) + bias.as_ref().map_or(0, |b| b.dims()[0])) * weight.dtype().size()
            }
            Weight::Host { weight, bias } => {
                weight.bytes() + bias.as_ref().map_or(0, |b| b.len() * 4)
            }
        }
    }

    /// Applies the layer to `m` host rows of `in` values (row-major); returns `m × out` values.
    /// Packed layers multiply on the CPU kernels; device weights take a round trip through a
    /// tensor.
    pub fn forward_rows(&self, x: &[f32], m: usize) -> Vec<f32> {
        match &self.weight {
            Weight::Host { weight, bias } => packed_forward(x, m, weight, bias.as_deref()),
            Weight::Device { weight, .. } => {
                let input = TensorData::new(x.to_vec(), [m, x.len() / m.max(1)]);
                let input = Tensor::<B, 2>::from_data(input, (&weight.device(), weight.dtype()));
                host_f32(self.forward(input))
            }
        }
    }

    /// [`Self::forward_rows`] followed by `act` on every output. Packed layers apply the bias
    /// and the activation to each tile of the product while it is in cache.
    pub fn forward_rows_activated(&self, x: &[f32], m: usize, act: Activation) -> Vec<f32> {
        match &self.weight {
            Weight::Host { weight, bias } => {
                let bias = bias.as_deref();
                weight.matmul_then(x, m, &|cells: &mut [f32], columns: Range<usize>| {
                    if let Some(bias) = bias {
                        add_bias(cells, &bias[columns]);
                    }
                    activate_chunk(cells, act);
                })
            }
            Weight::Device { .. } => {
                let mut y = self.forward_rows(x, m);
                activate_rows(&mut y, act);
                y
            }
        }
    }

    /// Applies the layer to `[..., in]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match &self.weight {
            Weight::Device { weight, bias } => {
                burn::tensor::module::linear(x, weight.clone(), bias.clone())
            }
            Weight::Host { weight, bias } => host_forward(x, weight, bias.as_deref()),
        }
    }
}

/// A host tensor's values as f32, row-major (moved out without a copy when already f32 and
/// contiguous).
pub(crate) fn host_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    let data = x.into_data();
    if data.dtype == DType::F32 {
        data.into_vec::<f32>()
            .expect("f32 tensor data converts to Vec<f32>")
    } else {
        data.iter::<f32>().collect()
    }
}

/// Runs a packed layer on a host tensor: its values in f32, the product, the bias, and a tensor
/// of the input's dtype back.
fn host_forward<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: &PackedMatrix,
    bias: Option<&[f32]>,
) -> Tensor<B, D> {
    let mut dims = x.dims();
    let m = dims[..D - 1].iter().product::<usize>();
    let (device, dtype) = (x.device(), x.dtype());
    let y = packed_forward(&host_f32(x), m, weight, bias);
    dims[D - 1] = weight.rows();
    Tensor::from_data(TensorData::new(y, dims), (&device, dtype))
}

/// `x·Wᵀ + b` for `m` host rows on the packed kernels (inference and training's frozen
/// layers); the bias is added to each tile of the product while it is in cache.
pub(crate) fn packed_forward(
    x: &[f32],
    m: usize,
    weight: &PackedMatrix,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    match bias {
        Some(bias) => weight.matmul_then(x, m, &|cells: &mut [f32], columns: Range<usize>| {
            add_bias(cells, &bias[columns]);
        }),
        None => weight.matmul(x, m),
    }
}

/// `cells += bias`, element by element.
fn add_bias(cells: &mut [f32], bias: &[f32]) {
    for (v, b) in cells.iter_mut().zip(bias) {
        *v += b;
    }
}

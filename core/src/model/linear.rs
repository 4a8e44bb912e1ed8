//! A dense layer holding Burn-layout weights (PyTorch's `[out, in]` transposed at load). On the
//! Flex CPU backend the weight is stored as `[chunks, in, out / chunks]` column blocks so that
//! even a single decoded token is multiplied on all cores (Flex parallelises a batched matmul
//! across its batch, but runs a small single matmul on one thread).

use super::ModelError;
use super::weights::Weights;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

/// Column blocks used on the CPU backend.
const CPU_CHUNKS: usize = 4;

#[derive(Debug, Clone)]
enum Weight<B: Backend> {
    /// `[in, out]`.
    Plain(Tensor<B, 2>),
    /// `[chunks, in, out / chunks]`.
    Chunked(Tensor<B, 3>),
}

/// `y = x·W + b`.
#[derive(Debug, Clone)]
pub struct Linear<B: Backend> {
    weight: Weight<B>,
    bias: Option<Tensor<B, 1>>,
    out_features: usize,
}

impl<B: Backend> Linear<B> {
    /// Loads `{prefix}.weight` (`[out, in]` on disk) and, when `bias`, `{prefix}.bias`.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        let name = format!("{prefix}.weight");
        let chunked = B::name(device) == "flex" && out_features.is_multiple_of(CPU_CHUNKS);
        let weight = if chunked {
            Weight::Chunked(weights.linear_weight_chunked::<B>(
                &name,
                out_features,
                in_features,
                CPU_CHUNKS,
                dtype,
                device,
            )?)
        } else {
            Weight::Plain(weights.linear_weight::<B>(
                &name,
                out_features,
                in_features,
                dtype,
                device,
            )?)
        };
        let bias = if bias {
            Some(weights.tensor::<B, 1>(
                &format!("{prefix}.bias"),
                [out_features],
                dtype,
                device,
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            out_features,
        })
    }

    /// Applies the layer to `[..., in]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match &self.weight {
            Weight::Plain(w) => burn::tensor::module::linear(x, w.clone(), self.bias.clone()),
            Weight::Chunked(w) => {
                let dims = x.dims();
                let k = dims[D - 1];
                let m = dims[..D - 1].iter().product::<usize>();
                let [chunks, _, per] = w.dims();
                // [1, M, K] · [C, K, N/C] → [C, M, N/C] → [M, C, N/C] → [..., N]
                let y = x
                    .reshape([1, m, k])
                    .matmul(w.clone())
                    .swap_dims(0, 1)
                    .reshape([m, chunks * per]);
                let y = match &self.bias {
                    Some(b) => y + b.clone().unsqueeze::<2>(),
                    None => y,
                };
                let mut out = dims;
                out[D - 1] = self.out_features;
                y.reshape(out)
            }
        }
    }
}

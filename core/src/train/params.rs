//! The trainable LoRA factors, kept on the host in peft's layout (`lora_A` `[r, in]`,
//! `lora_B` `[out, r]`): the optimizer updates them there, checkpoints and adapters serialise
//! them as they are, and every step uploads them to the device as the only tensors that track
//! gradients.

use crate::model::linear::host_f32;
use crate::rng::{SplitMix64, mix64};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// A projection that carries an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    /// The Hugging Face module path, e.g. `gpt_neox.layers.0.attention.query_key_value`.
    pub path: String,
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
}

/// One adapter: `y += scale · B·A·x`.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// Which projection.
    pub spec: ModuleSpec,
    /// `lora_A`, `[r, in]` row-major.
    pub a: Vec<f32>,
    /// `lora_B`, `[out, r]` row-major.
    pub b: Vec<f32>,
}

/// All adapters of a model, in the model's module order.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraParams {
    /// Rank `r`.
    pub rank: usize,
    /// The adapters.
    pub factors: Vec<Factor>,
}

impl LoraParams {
    /// peft's default initialisation: `A` Kaiming-uniform with `a = √5` (uniform in
    /// `±1/√in`), `B` zero, so training starts from the base model. Seeded.
    pub fn init(specs: &[ModuleSpec], rank: usize, seed: u64) -> Self {
        let factors = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut rng = SplitMix64::new(mix64(seed ^ (i as u64).wrapping_mul(0x9e37)));
                let bound = 1.0 / (spec.in_features as f64).sqrt();
                let a = (0..rank * spec.in_features)
                    .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                    .collect();
                Factor {
                    spec: spec.clone(),
                    a,
                    b: vec![0.0; spec.out_features * rank],
                }
            })
            .collect();
        Self { rank, factors }
    }

    /// Every trainable tensor in a fixed order (`A₀, B₀, A₁, B₁, …`): the order of gradients
    /// and optimizer state.
    pub fn tensors(&self) -> Vec<&[f32]> {
        self.factors
            .iter()
            .flat_map(|f| [f.a.as_slice(), f.b.as_slice()])
            .collect()
    }

    /// [`Self::tensors`], mutable.
    pub fn tensors_mut(&mut self) -> Vec<&mut Vec<f32>> {
        self.factors
            .iter_mut()
            .flat_map(|f| [&mut f.a, &mut f.b])
            .collect()
    }

    /// Number of trainable values.
    pub fn len(&self) -> usize {
        self.factors.iter().map(|f| f.a.len() + f.b.len()).sum()
    }

    /// Whether there are no adapters.
    pub fn is_empty(&self) -> bool {
        self.factors.is_empty()
    }

    /// Uploads the factors to `device`; with `track` they are the tensors gradients are taken
    /// for.
    pub fn to_device<B: Backend>(&self, device: &B::Device, track: bool) -> LoraTensors<B> {
        let r = self.rank;
        let pairs = self
            .factors
            .iter()
            .map(|f| {
                let a = Tensor::<B, 2>::from_data(
                    TensorData::new(f.a.clone(), [r, f.spec.in_features]),
                    device,
                )
                .set_require_grad(track);
                let b = Tensor::<B, 2>::from_data(
                    TensorData::new(f.b.clone(), [f.spec.out_features, r]),
                    device,
                )
                .set_require_grad(track);
                (a, b)
            })
            .collect();
        LoraTensors { pairs }
    }
}

/// The factors on the device for one forward / backward pass.
#[derive(Debug, Clone)]
pub struct LoraTensors<B: Backend> {
    /// `(A [r, in], B [out, r])` per adapter, in module order.
    pub pairs: Vec<(Tensor<B, 2>, Tensor<B, 2>)>,
}

impl<B: AutodiffBackend> LoraTensors<B> {
    /// The gradients of every factor (zeros for a factor the loss does not reach), in the
    /// order of [`LoraParams::tensors`].
    pub fn gradients(&self, grads: &B::Gradients) -> Vec<Vec<f32>> {
        self.pairs
            .iter()
            .flat_map(|(a, b)| [a, b])
            .map(|t| match t.grad(grads) {
                Some(g) => host_f32(g),
                None => vec![0.0; t.shape().num_elements()],
            })
            .collect()
    }
}

/// What a run trains: LoRA factors, or every weight of the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Trainable {
    /// LoRA adapters on a frozen base.
    Lora(LoraParams),
    /// Full fine-tuning.
    Full(super::full::FullParams),
}

impl Trainable {
    /// Every trainable tensor in a fixed order: the order of gradients and optimizer state.
    pub fn tensors(&self) -> Vec<&[f32]> {
        match self {
            Self::Lora(p) => p.tensors(),
            Self::Full(p) => p.tensors(),
        }
    }

    /// [`Self::tensors`], mutable.
    pub fn tensors_mut(&mut self) -> Vec<&mut Vec<f32>> {
        match self {
            Self::Lora(p) => p.tensors_mut(),
            Self::Full(p) => p.tensors_mut(),
        }
    }
}

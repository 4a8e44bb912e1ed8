//! Training's fast paths on the Flex CPU backend (Burn's `Autodiff<Flex>`): a frozen dense layer
//! and the language-model head fused with its cross-entropy, multiplied on the packed CPU
//! kernels ([`crate::kernels`]: every core, AVX-512 where the processor has it) with hand-written
//! backward passes. Flex's own matmul takes the gemm crate's AVX2 path, and the unfused head
//! materialises `[rows, seq, vocab]` logits, their log-softmax and its gradient (over 1 GB for a
//! batch of 8 × 256 tokens on a 50k vocabulary).
//!
//! GELU (`gelu`) uses the fast error function of the inference kernels. Attention (`attention`)
//! splits and rotates the heads of the fused projection in one copy and keeps each head's
//! scores in one buffer instead of Burn's twenty-odd `[rows, heads, seq, seq]` tensors per
//! layer. The frozen norms (`norm`) take one pass per row each way, and a frozen layer with an
//! adapter (`lora_linear`) adds its low-rank branch inside the same operation.
//!
//! Other backends, and full fine-tuning's dense layers (whose weights take gradients), use the
//! plain Burn operations of [`super::model::layers`]. The functions here are generic so the
//! models stay generic; they apply only where [`serves`] holds and the caller checks it.

use crate::kernels::{PackedMatrix, WeightFormat};
use crate::model::ModelError;
use crate::model::linear::packed_forward;
use crate::model::weights::{Weights, transpose};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape, Tensor, TensorData, TensorPrimitive};
use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

mod activation;
mod attention;
mod head;
mod heads;
mod lora;
mod norm;

pub use activation::gelu;
pub use attention::attention;
pub use head::{Targets, head_nll};
pub use heads::QkvLayout;
pub use lora::lora_linear;
pub use norm::{HostNorm, norm};

/// The backend these paths serve.
type Cpu = Autodiff<Flex>;

/// True when `B` is the backend these paths serve (the CPU training backend).
pub fn serves<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<Cpu>()
}

/// A frozen dense layer packed for the CPU kernels both ways: `W` for the forward product and
/// `Wᵀ` for the input's gradient.
pub struct HostWeight {
    /// `W` (`[out, in]`): `y = x·Wᵀ`.
    forward: PackedMatrix,
    /// `Wᵀ` (`[in, out]`): `dx = dy·W`.
    backward: PackedMatrix,
    bias: Option<Vec<f32>>,
}

impl std::fmt::Debug for HostWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HostWeight({}×{}, bias: {})",
            self.forward.rows(),
            self.forward.cols(),
            self.bias.is_some()
        )
    }
}

impl HostWeight {
    /// Packs row-major `weight` (`[out, in]`, PyTorch's layout) and an optional bias as f32.
    pub fn new(weight: &[f32], out: usize, inp: usize, bias: Option<Vec<f32>>) -> Self {
        Self::packed(weight, out, inp, bias, WeightFormat::F32)
    }

    /// [`Self::new`] with the weights packed in `format` both ways. 8-bit weights
    /// ([`WeightFormat::Q8`]) quantise each product's input too (the inference kernels'
    /// scheme): faster products whose results, and so the gradients, are approximate.
    pub fn packed(
        weight: &[f32],
        out: usize,
        inp: usize,
        bias: Option<Vec<f32>>,
        format: WeightFormat,
    ) -> Self {
        Self {
            forward: PackedMatrix::pack(weight, out, inp, format),
            backward: PackedMatrix::pack(&transpose(weight, out, inp), inp, out, format),
            bias,
        }
    }

    /// Loads `{prefix}.weight` (`[out, in]`) and, when `bias`, `{prefix}.bias`, packed in
    /// `format`.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        inp: usize,
        out: usize,
        bias: bool,
        format: WeightFormat,
    ) -> Result<Self, ModelError> {
        let weight = weights.read_f32(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias {
            Some(weights.read_f32(&format!("{prefix}.bias"), &[out])?)
        } else {
            None
        };
        Ok(Self::packed(&weight, out, inp, bias, format))
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.forward.rows()
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.forward.cols()
    }

    /// `x·Wᵀ + b` for `m` row-major rows.
    fn apply(&self, x: &[f32], m: usize) -> Vec<f32> {
        packed_forward(x, m, &self.forward, self.bias.as_deref())
    }
}

/// `x·Wᵀ + b` for `x` `[m, in]` on the CPU kernels; the backward pass gives `x` the gradient
/// `dy·W` (the weight is frozen).
///
/// # Panics
/// When `B` is not the backend these paths serve (callers check [`serves`]).
pub fn linear<B: Backend>(x: Tensor<B, 2>, weight: &Arc<HostWeight>) -> Tensor<B, 2> {
    cast(linear_cpu(cast(x), weight.clone()))
}

fn linear_cpu(x: Tensor<Cpu, 2>, weight: Arc<HostWeight>) -> Tensor<Cpu, 2> {
    let [m, _] = x.dims();
    let x = x.into_primitive().tensor();
    let out = flex_tensor(
        weight.apply(&host_values(&x.primitive), m),
        [m, weight.out_features()],
    );
    Unary::new(&x).finish(out, || LinearGrad(weight))
}

/// A frozen layer's backward pass: `dx = dy·W`.
#[derive(Debug, Clone)]
struct LinearGrad(Arc<HostWeight>);

impl InputGrad for LinearGrad {
    fn input_grad(self, grad: FlexTensor) -> FlexTensor {
        let m = grad.layout().shape()[0];
        let dx = self.0.backward.matmul(&host_values(&grad), m);
        flex_tensor(dx, [m, self.0.in_features()])
    }
}

/// The backward pass of an operation with one input: the input's gradient from the output's,
/// computed from what the forward pass kept (`self`).
pub(super) trait InputGrad: Clone + Send + std::fmt::Debug + 'static {
    /// The input's gradient given the output's.
    fn input_grad(self, grad: FlexTensor) -> FlexTensor;
}

/// The autodiff record of a one-input operation whose backward pass is `S`.
#[derive(Debug)]
struct OneInput<S>(PhantomData<S>);

impl<S: InputGrad> Backward<Flex, 1> for OneInput<S> {
    type State = S;

    fn backward(self, ops: Ops<S, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Ops {
            parents,
            node,
            state,
        } = ops;
        unary::<Flex, _>(parents, node, grads, |grad| state.input_grad(grad));
    }
}

/// A one-input operation on the CPU training backend being recorded: prepared from its input,
/// finished with its output and, when the input takes a gradient, the state of its backward
/// pass.
pub(super) struct Unary<S: InputGrad>(OpsKind<OneInput<S>, Flex, S, NoCheckpointing, 1>);

impl<S: InputGrad> Unary<S> {
    /// Prepares the record of an operation on `input`.
    pub(super) fn new(input: &FloatTensor<Cpu>) -> Self {
        Self(
            OneInput(PhantomData)
                .prepare::<NoCheckpointing>([input.node.clone()])
                .compute_bound()
                .stateful(),
        )
    }

    /// Whether the input takes a gradient (the backward pass will run).
    pub(super) fn tracked(&self) -> bool {
        matches!(self.0, OpsKind::Tracked(_))
    }

    /// The operation's result `output`; `state` is called only when the input is tracked.
    pub(super) fn finish<const D: usize>(
        self,
        output: FlexTensor,
        state: impl FnOnce() -> S,
    ) -> Tensor<Cpu, D> {
        let result = match self.0 {
            OpsKind::Tracked(prep) => prep.finish(state(), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        Tensor::from_primitive(TensorPrimitive::Float(result))
    }
}

/// A Flex tensor's values as contiguous f32: borrowed when they already are; otherwise copied
/// a run of the last dimension at a time (Flex's own copy walks views of more than two
/// dimensions, such as a head split's transpose, one element at a time).
pub(super) fn host_values(t: &FlexTensor) -> Cow<'_, [f32]> {
    if let Some(values) = t.as_slice::<f32>() {
        return Cow::Borrowed(values);
    }
    let layout = t.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    let dims = shape.num_dims();
    if t.dtype() != DType::F32 || dims == 0 || strides.iter().any(|&s| s < 0) {
        return Cow::Owned(
            t.to_contiguous()
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("converted to f32"),
        );
    }
    let src: &[f32] = t.storage::<f32>();
    let n = layout.num_elements();
    let last = shape[dims - 1];
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return Cow::Owned(out);
    }
    let step = strides[dims - 1] as usize;
    let mut index = vec![0usize; dims - 1];
    for _ in 0..n / last {
        let start = layout.start_offset()
            + index
                .iter()
                .zip(strides)
                .map(|(&i, &s)| i * s as usize)
                .sum::<usize>();
        if step == 1 {
            out.extend_from_slice(&src[start..start + last]);
        } else {
            out.extend((0..last).map(|j| src[start + j * step]));
        }
        for d in (0..dims - 1).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Cow::Owned(out)
}

pub(super) fn flex_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Moves `value` to the type the caller proved it has (`B` is [`Cpu`]).
pub(super) fn cast<T: 'static, U: 'static>(value: T) -> U {
    *(Box::new(value) as Box<dyn Any>)
        .downcast::<U>()
        .expect("host training paths run only on the backend they serve")
}

/// Values and comparisons the tests of these paths share.
#[cfg(test)]
mod testing {
    use super::Cpu;
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;
    use burn::tensor::{Tensor, TensorData};

    pub(super) fn values(n: usize, seed: u64) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f64 * 0.7 + seed as f64 * 1.3).sin() * 0.9) as f32)
            .collect()
    }

    pub(super) fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<Cpu, D> {
        Tensor::from_data(TensorData::new(values, shape), &FlexDevice)
    }

    pub(super) fn host<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
        t.into_data().into_vec::<f32>().unwrap()
    }

    pub(super) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{host, max_diff, tensor, values};
    use super::*;

    #[test]
    fn the_host_paths_serve_only_the_cpu_training_backend() {
        assert!(serves::<Cpu>());
        assert!(!serves::<Flex>());
    }

    #[test]
    fn linear_equals_burns_product_and_its_gradient() {
        let (m, inp, out) = (37, 20, 33);
        let (w, b, x) = (values(out * inp, 1), values(out, 2), values(m * inp, 3));
        let packed = Arc::new(HostWeight::new(&w, out, inp, Some(b.clone())));
        let upstream = tensor(values(m * out, 4), [m, out]);

        let x1 = tensor(x.clone(), [m, inp]).require_grad();
        let y1 = linear(x1.clone(), &packed);
        let grads = (y1.clone() * upstream.clone()).sum().backward();
        let dx1 = host(x1.grad(&grads).unwrap());

        let x2 = tensor(x, [m, inp]).require_grad();
        let y2 = x2.clone().matmul(tensor(w, [out, inp]).transpose())
            + tensor(b, [out]).unsqueeze::<2>();
        let grads = (y2.clone() * upstream).sum().backward();
        let dx2 = host(x2.grad(&grads).unwrap());

        let (y1, y2) = (host(y1.inner()), host(y2.inner()));
        assert!(max_diff(&y1, &y2) < 1e-5, "{}", max_diff(&y1, &y2));
        assert!(max_diff(&dx1, &dx2) < 1e-5, "{}", max_diff(&dx1, &dx2));
    }
}

//! Scaled dot-product attention over the cache: host-built masks (causal + padding + sliding
//! window), grouped-query head sharing, optional soft-capping.

use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, TensorData};

/// Builds the `[B, 1, Tq, Tk]` mask (true = masked) for `tq` queries that follow `past` cached
/// tokens. A key `j` is visible to query `i` when `j <= past + i`, it is not padding, and, for a
/// sliding layer, `past + i - j < window`.
pub fn build_mask<B: Backend>(
    key_valid: &[Vec<bool>],
    past: usize,
    tq: usize,
    window: Option<usize>,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let batch = key_valid.len();
    let tk = past + tq;
    let mut mask = vec![true; batch * tq * tk];
    for (b, valid) in key_valid.iter().enumerate() {
        for i in 0..tq {
            let q = past + i;
            let lo = match window {
                Some(w) => (q + 1).saturating_sub(w),
                None => 0,
            };
            let row = &mut mask[(b * tq + i) * tk..(b * tq + i + 1) * tk];
            for (m, v) in row[lo..=q].iter_mut().zip(&valid[lo..=q]) {
                *m = !v;
            }
        }
    }
    Tensor::from_data(TensorData::new(mask, [batch, 1, tq, tk]), device)
}

/// Repeats each key/value head `groups` times (`repeat_interleave` on the head axis).
pub fn repeat_kv<B: Backend>(x: Tensor<B, 4>, groups: usize) -> Tensor<B, 4> {
    if groups == 1 {
        return x;
    }
    let [b, h, t, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, h, groups, t, d])
        .reshape([b, h * groups, t, d])
}

/// `softmax(cap(q·kᵀ·scale) + mask)·v` with `q: [B, H, Tq, Dh]`, `k, v: [B, H_kv, Tk, Dh]`; the
/// mask broadcasts over heads.
pub fn attend<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
    scale: f64,
    softcap: Option<f64>,
) -> Tensor<B, 4> {
    let heads = q.dims()[1];
    let groups = heads / k.dims()[1];
    let k = repeat_kv(k, groups);
    let v = repeat_kv(v, groups);
    attention(
        q,
        k,
        v,
        Some(mask),
        None,
        AttentionModuleOptions {
            scale: Some(scale),
            softcap,
            is_causal: false,
        },
    )
}

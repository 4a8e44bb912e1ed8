//! Scaled dot-product attention over the cache: host-built masks (causal + padding + sliding
//! window), grouped-query head sharing, optional soft-capping. A query that sees no key at all (a
//! left-padding position) gets a zero output, as torch's SDPA (2.5 and later) gives it, whatever
//! the backend's kernel does with a fully masked row.

use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, TensorData};

/// The attention mask of one step.
#[derive(Debug, Clone)]
pub struct StepMask<B: Backend> {
    /// `[B, 1, Tq, Tk]`, true = masked.
    pub keys: Tensor<B, 4, Bool>,
    /// `[B, 1, Tq, 1]`, true for a query that sees no key; `None` when every query sees one.
    pub blind: Option<Tensor<B, 4, Bool>>,
}

/// Builds the mask for `tq` queries that follow `past` cached tokens. A key `j` is visible to
/// query `i` when `j <= past + i`, it is not padding, and, for a sliding layer,
/// `past + i - j < window`.
pub fn build_mask<B: Backend>(
    key_valid: &[Vec<bool>],
    past: usize,
    tq: usize,
    window: Option<usize>,
    device: &B::Device,
) -> StepMask<B> {
    let batch = key_valid.len();
    let tk = past + tq;
    let mut mask = vec![true; batch * tq * tk];
    let mut blind = vec![false; batch * tq];
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
            blind[b * tq + i] = !valid[lo..=q].contains(&true);
        }
    }
    let any_blind = blind.contains(&true);
    StepMask {
        keys: Tensor::from_data(TensorData::new(mask, [batch, 1, tq, tk]), device),
        blind: any_blind
            .then(|| Tensor::from_data(TensorData::new(blind, [batch, 1, tq, 1]), device)),
    }
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
/// mask broadcasts over heads, and blind queries get zeros.
pub fn attend<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: &StepMask<B>,
    scale: f64,
    softcap: Option<f64>,
) -> Tensor<B, 4> {
    let heads = q.dims()[1];
    let groups = heads / k.dims()[1];
    let k = repeat_kv(k, groups);
    let v = repeat_kv(v, groups);
    // Burn's CUDA and wgpu backends take their fused (flash) kernel only when no scale is passed
    // (they then use 1/√Dh): a different scale is folded into the queries instead.
    let default_scale = (q.dims()[3] as f64).powf(-0.5);
    let q = if (scale - default_scale).abs() <= 1e-12 * default_scale {
        q
    } else {
        q.mul_scalar(scale / default_scale)
    };
    let out = attention(
        q,
        k,
        v,
        Some(mask.keys.clone()),
        None,
        AttentionModuleOptions {
            scale: None,
            softcap,
            is_causal: false,
        },
    );
    match &mask.blind {
        Some(blind) => {
            let shape = out.dims();
            out.mask_fill(blind.clone().expand(shape), 0.0)
        }
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Flex, flex::FlexDevice};

    #[test]
    fn a_query_that_sees_no_key_gets_zeros() {
        // Row 0 is left-padded by two; row 1 has no padding.
        let valid = vec![vec![false, false, true], vec![true, true, true]];
        let mask = build_mask::<Flex>(&valid, 0, 3, None, &FlexDevice);
        let blind = mask.blind.clone().expect("padding queries are blind");
        let blind = blind.into_data().into_vec::<bool>().unwrap();
        assert_eq!(blind, vec![true, true, false, false, false, false]);
        let ones = || Tensor::<Flex, 4>::ones([2, 1, 3, 2], &FlexDevice);
        let out = attend(ones(), ones(), ones(), &mask, 1.0, None);
        let out = out.into_data().into_vec::<f32>().unwrap();
        assert_eq!(&out[..4], &[0.0; 4], "blind queries");
        assert!(out[4..].iter().all(|&v| (v - 1.0).abs() < 1e-6), "{out:?}");
        let full = vec![vec![true, true, true]];
        assert!(
            build_mask::<Flex>(&full, 0, 3, None, &FlexDevice)
                .blind
                .is_none()
        );
    }
}

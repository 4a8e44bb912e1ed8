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

/// `softmax(cap(q·kᵀ·scale) + mask)·v` with `q: [B, H, Tq, Dh]`, `k, v: [B, H_kv, Tk, Dh]`; the
/// mask broadcasts over heads, and blind queries get zeros.
///
/// Grouped-query attention (`H = groups · H_kv`, query head `h` reading key/value head
/// `h / groups`) never copies the keys and values per query head: the `groups` query heads of a
/// key/value head are stacked along the query axis (`[B, H_kv, groups · Tq, Dh]`, the mask
/// tiled to match), attended once over that head's cache, and unstacked.
pub fn attend<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: &StepMask<B>,
    scale: f64,
    softcap: Option<f64>,
) -> Tensor<B, 4> {
    let [batch, heads, tq, dim] = q.dims();
    let kv_heads = k.dims()[1];
    let groups = heads / kv_heads;
    let q = q.reshape([batch, kv_heads, groups * tq, dim]);
    let keys = match groups {
        1 => mask.keys.clone(),
        _ => mask.keys.clone().repeat_dim(2, groups),
    };
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
        Some(keys),
        None,
        AttentionModuleOptions {
            scale: None,
            softcap,
            is_causal: false,
        },
    )
    .reshape([batch, heads, tq, dim]);
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

    /// Each key/value head repeated `groups` times on the head axis (`repeat_interleave`): the
    /// copy `attend` avoids, as the reference for its grouped-query path.
    fn repeat_kv(x: Tensor<Flex, 4>, groups: usize) -> Tensor<Flex, 4> {
        let [b, h, t, d] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([b, h, groups, t, d])
            .reshape([b, h * groups, t, d])
    }

    #[test]
    fn grouped_query_attention_equals_attention_over_repeated_heads() {
        let values = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0) - 1.0)
                .collect()
        };
        let tensor = |shape: [usize; 4], seed: usize| {
            let n = shape.iter().product();
            Tensor::<Flex, 4>::from_data(TensorData::new(values(n, seed), shape), &FlexDevice)
        };
        // Two rows (the first left-padded by one), 6 query heads over 2 key/value heads, a
        // two-token step after 3 cached positions.
        let valid = vec![vec![false, true, true, true, true], vec![true; 5]];
        let mask = build_mask::<Flex>(&valid, 3, 2, Some(4), &FlexDevice);
        let q = tensor([2, 6, 2, 4], 1);
        let (k, v) = (tensor([2, 2, 5, 4], 2), tensor([2, 2, 5, 4], 3));
        for softcap in [None, Some(0.5)] {
            let grouped = attend(q.clone(), k.clone(), v.clone(), &mask, 0.3, softcap);
            let repeated = attend(
                q.clone(),
                repeat_kv(k.clone(), 3),
                repeat_kv(v.clone(), 3),
                &mask,
                0.3,
                softcap,
            );
            let (a, b) = (
                grouped.into_data().into_vec::<f32>().unwrap(),
                repeated.into_data().into_vec::<f32>().unwrap(),
            );
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-6, "softcap {softcap:?}: {worst}");
        }
    }
}

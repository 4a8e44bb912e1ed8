//! Rotary position embeddings in the `rotate_half` convention of GPT-NeoX and Gemma, with partial
//! rotary dimensions, per-row positions (left padding) and f32 tables.

use super::config::{RopeConfig, RopeScaling};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};

/// Inverse frequencies for one attention type.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    rotary_dim: usize,
    inv_freq: Vec<f32>,
}

/// `cos` and `sin` tables shaped `[B, 1, T, rotary_dim]`, in the compute dtype.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
    rotary_dim: usize,
}

impl Rope {
    /// `inv_freq[i] = 1 / theta^(2i / rotary_dim)`, divided by the linear scaling factor.
    pub fn new(rotary_dim: usize, config: RopeConfig) -> Self {
        let mut inv_freq: Vec<f32> = (0..rotary_dim / 2)
            .map(|i| 1.0f32 / config.theta.powf((2 * i) as f32 / rotary_dim as f32))
            .collect();
        if let RopeScaling::Linear { factor } = config.scaling {
            for f in &mut inv_freq {
                *f /= factor;
            }
        }
        Self {
            rotary_dim,
            inv_freq,
        }
    }

    /// The angles' cosines and sines for `positions` (one per token, any layout), on the host.
    pub fn host_tables(&self, positions: &[i64]) -> HostRope {
        let half = self.rotary_dim / 2;
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            let p = p as f32;
            for f in &self.inv_freq {
                let (s, c) = (p * f).sin_cos();
                cos.push(c);
                sin.push(s);
            }
        }
        HostRope { cos, sin, half }
    }

    /// Builds the tables for `positions` (row-major `[batch, seq]`).
    pub fn tables<B: Backend>(
        &self,
        positions: &[i64],
        batch: usize,
        seq: usize,
        dtype: DType,
        device: &B::Device,
    ) -> RopeTables<B> {
        let rd = self.rotary_dim;
        let host = self.host_tables(positions);
        let half = host.half;
        let mut cos = vec![0f32; batch * seq * rd];
        let mut sin = vec![0f32; batch * seq * rd];
        for row in 0..positions.len() {
            for i in 0..half {
                let (c, s) = (host.cos[row * half + i], host.sin[row * half + i]);
                cos[row * rd + i] = c;
                cos[row * rd + half + i] = c;
                sin[row * rd + i] = s;
                sin[row * rd + half + i] = s;
            }
        }
        let shape = [batch, 1, seq, rd];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), (device, dtype)),
            sin: Tensor::from_data(TensorData::new(sin, shape), (device, dtype)),
            rotary_dim: rd,
        }
    }
}

/// Rotation tables on the host: `[tokens, rotary_dim / 2]` cosines and sines.
#[derive(Debug, Clone)]
pub struct HostRope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl HostRope {
    /// Rotates the first `rotary_dim` values of `head` (one head's vector of token `token`) in
    /// place, exactly as [`RopeTables::apply`]: `x·cos + rotate_half(x)·sin`.
    pub fn apply(&self, token: usize, head: &mut [f32]) {
        self.rotate(token, head, 1.0);
    }

    /// Undoes [`Self::apply`] (rotates back by the same angle). The rotation is orthogonal, so
    /// this is also its transpose: it carries a gradient back through the rotation.
    pub fn apply_inverse(&self, token: usize, head: &mut [f32]) {
        self.rotate(token, head, -1.0);
    }

    /// Rotates by the token's angles times `direction` (±1, so the sines only change sign).
    fn rotate(&self, token: usize, head: &mut [f32], direction: f32) {
        let half = self.half;
        let (cos, sin) = (
            &self.cos[token * half..][..half],
            &self.sin[token * half..][..half],
        );
        let (x1, rest) = head.split_at_mut(half);
        let x2 = &mut rest[..half];
        for i in 0..half {
            let (a, b, s) = (x1[i], x2[i], direction * sin[i]);
            x1[i] = a * cos[i] + (-b) * s;
            x2[i] = b * cos[i] + a * s;
        }
    }
}

impl<B: Backend> RopeTables<B> {
    /// Rotates the first `rotary_dim` dimensions of `x` (`[B, H, T, Dh]`); the rest pass through.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, _, dh] = x.dims();
        let rd = self.rotary_dim;
        if rd == 0 {
            return x;
        }
        let (rot, pass) = if rd < dh {
            (x.clone().narrow(3, 0, rd), Some(x.narrow(3, rd, dh - rd)))
        } else {
            (x, None)
        };
        let half = rd / 2;
        let x1 = rot.clone().narrow(3, 0, half);
        let x2 = rot.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        let out = rot * self.cos.clone() + rotated * self.sin.clone();
        match pass {
            Some(pass) => Tensor::cat(vec![out, pass], 3),
            None => out,
        }
    }
}

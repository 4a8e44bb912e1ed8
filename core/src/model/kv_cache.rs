//! A preallocated key/value cache per layer, plus the host-side key validity (padding) mask.

use super::ModelError;
use super::attention::{StepMask, attend};
use super::host_attention::{
    AttentionShape, AttentionSpec, HostKv, append_and_attend, attend_rows,
};
use super::linear::uses_host_kernels;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// Keys and values of every layer for a batch, `[B, n_kv, capacity, Dh]` each.
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    /// On the CPU backend: keys and values in host memory instead of `layers`.
    host: Vec<Option<HostKv>>,
    batch: usize,
    capacity: usize,
    len: usize,
    key_valid: Vec<Vec<bool>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `layers` layers, `batch` rows and up to `capacity` tokens.
    pub fn new(layers: usize, batch: usize, capacity: usize) -> Self {
        Self {
            layers: (0..layers).map(|_| None).collect(),
            host: (0..layers).map(|_| None).collect(),
            batch,
            capacity,
            len: 0,
            key_valid: vec![Vec::with_capacity(capacity); batch],
        }
    }

    /// Tokens already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of tokens.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Validity (non-padding) of every cached or incoming key, per row.
    pub fn key_valid(&self) -> &[Vec<bool>] {
        &self.key_valid
    }

    /// Registers `seq` incoming tokens per row (row-major `valid`); call before the layers run.
    pub fn begin_step(&mut self, valid: &[bool], seq: usize) -> Result<(), ModelError> {
        if self.len + seq > self.capacity {
            return Err(ModelError::Input {
                message: format!(
                    "{} tokens exceed the cache capacity of {} tokens",
                    self.len + seq,
                    self.capacity
                ),
            });
        }
        if valid.len() != self.batch * seq {
            return Err(ModelError::Input {
                message: format!(
                    "validity mask has {} entries for a {}x{} step",
                    valid.len(),
                    self.batch,
                    seq
                ),
            });
        }
        for (row, chunk) in self.key_valid.iter_mut().zip(valid.chunks_exact(seq)) {
            row.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Writes this step's keys/values (`[B, n_kv, T, Dh]`) for `layer`; returns all keys/values so far.
    fn append(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, t, d] = k.dims();
        let start = self.len;
        let end = start + t;
        let slot = &mut self.layers[layer];
        let (kc, vc) = match slot.take() {
            Some(pair) => pair,
            None => {
                let opts = (&k.device(), k.dtype());
                (
                    Tensor::zeros([b, h, self.capacity, d], opts),
                    Tensor::zeros([b, h, self.capacity, d], opts),
                )
            }
        };
        let kc = kc.slice_assign([0..b, 0..h, start..end, 0..d], k);
        let vc = vc.slice_assign([0..b, 0..h, start..end, 0..d], v);
        let k_all = kc.clone().slice([0..b, 0..h, 0..end, 0..d]);
        let v_all = vc.clone().slice([0..b, 0..h, 0..end, 0..d]);
        *slot = Some((kc, vc));
        (k_all, v_all)
    }

    /// Appends this step's keys and values (`[B, n_kv, T, Dh]`) to `layer` and attends `q`
    /// (`[B, H, T, Dh]`) over the cache: on the CPU backend from host memory
    /// ([`super::host_attention`]), elsewhere with Burn's attention and `mask`.
    #[allow(clippy::too_many_arguments)]
    pub fn attend(
        &mut self,
        layer: usize,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: &StepMask<B>,
        spec: AttentionSpec,
    ) -> Tensor<B, 4> {
        if uses_host_kernels::<B>(&q.device()) {
            return append_and_attend(
                &mut self.host[layer],
                self.capacity,
                self.len,
                &self.key_valid,
                q,
                k,
                v,
                spec,
            );
        }
        let (k, v) = self.append(layer, k, v);
        attend(q, k, v, mask, spec.scale, spec.softcap)
    }

    /// The host forward pass's [`Self::attend`]: appends keys and values (`[B, T, n_kv, Dh]`)
    /// to `layer`'s host-side cache and attends the queries (`[B, T, H, Dh]`) over it; returns
    /// `[B, T, H, Dh]`.
    pub fn attend_rows(
        &mut self,
        layer: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: AttentionShape,
        spec: AttentionSpec,
    ) -> Vec<f32> {
        attend_rows(
            &mut self.host[layer],
            self.capacity,
            self.len,
            &self.key_valid,
            q,
            k,
            v,
            shape,
            spec,
        )
    }

    /// A cache whose row `i` is a copy of this cache's row `rows[i]` (rows may repeat): one
    /// prompt's keys and values shared by several continuations.
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|slot| {
                slot.as_ref().map(|(k, v)| {
                    let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
                    let ids = Tensor::<B, 1, Int>::from_data(
                        TensorData::new(ids, [rows.len()]),
                        &k.device(),
                    );
                    (k.clone().select(0, ids.clone()), v.clone().select(0, ids))
                })
            })
            .collect();
        Self {
            layers,
            host: self
                .host
                .iter()
                .map(|slot| slot.as_ref().map(|kv| kv.select_rows(rows)))
                .collect(),
            batch: rows.len(),
            capacity: self.capacity,
            len: self.len,
            key_valid: rows.iter().map(|&r| self.key_valid[r].clone()).collect(),
        }
    }

    /// Keeps only rows `keep` (in that order; rows may repeat): finished rows leave a batch, or
    /// one prompt's row is repeated for several continuations. Every index must be below
    /// [`Self::batch`].
    pub fn retain_rows(&mut self, keep: &[usize]) {
        if keep.iter().copied().eq(0..self.batch) {
            return;
        }
        *self = self.select_rows(keep);
    }

    /// Marks the step's tokens as cached; call after all layers ran.
    pub fn end_step(&mut self, seq: usize) {
        self.len += seq;
    }
}

//! A preallocated key/value cache per layer, plus the host-side key validity (padding) mask.

use super::ModelError;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// Keys and values of every layer for a batch, `[B, n_kv, capacity, Dh]` each.
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
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
    pub fn append(
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
            batch: rows.len(),
            capacity: self.capacity,
            len: self.len,
            key_valid: rows.iter().map(|&r| self.key_valid[r].clone()).collect(),
        }
    }

    /// Marks the step's tokens as cached; call after all layers ran.
    pub fn end_step(&mut self, seq: usize) {
        self.len += seq;
    }
}

//! A preallocated key/value cache per layer, plus the host-side key validity (padding) mask.

use super::ModelError;
use super::attention::{StepMask, attend};
use super::host_attention::{
    AttentionShape, AttentionSpec, Heads, HostKv, append_and_attend, attend_rows,
};
use super::linear::uses_host_kernels;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use std::ops::Range;

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

    /// The host forward pass's [`Self::attend`]: appends this step's keys and values to
    /// `layer`'s host-side cache and attends the queries over it; returns `[B, T, H, Dh]`.
    pub fn attend_rows(
        &mut self,
        layer: usize,
        q: Heads<'_>,
        k: Heads<'_>,
        v: Heads<'_>,
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
        Self {
            layers: self.tensor_rows(rows),
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

    /// Rows `rows` of the tensor storage (copies).
    fn tensor_rows(&self, rows: &[usize]) -> Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>> {
        self.layers
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
            .collect()
    }

    /// Keeps only rows `keep` (in that order; rows may repeat): finished rows leave a batch, or
    /// one prompt's row is repeated for several continuations. Every index must be below
    /// [`Self::batch`].
    ///
    /// When every `keep[i]` is at least `i` and none repeats (rows leaving, the last rows
    /// moving into their slots) the host-side storage is compacted in place: only the moved
    /// rows are copied, and no second cache is allocated.
    pub fn retain_rows(&mut self, keep: &[usize]) {
        if keep.iter().copied().eq(0..self.batch) {
            return;
        }
        let mut seen = vec![false; self.batch];
        let in_place = keep
            .iter()
            .enumerate()
            .all(|(i, &k)| k >= i && !std::mem::replace(&mut seen[k], true));
        if !in_place {
            *self = self.select_rows(keep);
            return;
        }
        self.layers = self.tensor_rows(keep);
        for kv in self.host.iter_mut().flatten() {
            kv.retain_rows_in_place(keep);
        }
        for (i, &k) in keep.iter().enumerate() {
            self.key_valid.swap(i, k);
        }
        self.key_valid.truncate(keep.len());
        self.batch = keep.len();
    }

    /// Leading positions that are padding in every row (all of them when there are no rows).
    pub fn leading_padding(&self) -> usize {
        self.key_valid
            .iter()
            .map(|row| row.iter().position(|&v| v).unwrap_or(self.len))
            .min()
            .unwrap_or(self.len)
    }

    /// Rows that join a running batch: this cache's rows, then `other`'s, every row with room
    /// for `budget` more tokens (a new cache gets `reserve` columns for them, at least
    /// `budget`, so later joiners can be appended in place). `other`'s rows are right-aligned to end where this cache's do,
    /// so the next step writes every row's token in one column (the columns in front of the
    /// shorter rows are padding). Rotary positions are per row and a sliding window counts
    /// positions back from the query, so moving a row's keys together changes nothing it
    /// attends to. When this cache has the room (host storage, `other` no longer than it, and
    /// `budget` free columns) the rows are appended in place; otherwise both are copied into a
    /// new cache without the positions that are padding in all their rows. Both caches must
    /// come from the same model.
    pub fn join(mut self, other: Self, budget: usize, reserve: usize) -> Self {
        if self.batch == 0 && other.len + budget <= other.capacity {
            return other;
        }
        let (skip_a, skip_b) = (self.leading_padding(), other.leading_padding());
        let (cols_a, cols_b) = (skip_a..self.len, skip_b..other.len);
        let host_only = self.layers.iter().chain(&other.layers).all(Option::is_none);
        if host_only
            && self.batch > 0
            && cols_b.len() <= self.len
            && self.len + budget <= self.capacity
        {
            for (a, b) in self.host.iter_mut().zip(&other.host) {
                if let (Some(a), Some(b)) = (a, b) {
                    a.append_rows(b, cols_b.clone(), self.len);
                }
            }
            let (len, capacity) = (self.len, self.capacity);
            self.key_valid
                .extend(right_aligned(&other.key_valid, &cols_b, len, capacity));
            self.batch += other.batch;
            return self;
        }
        let len = cols_a.len().max(cols_b.len());
        let capacity = len + reserve.max(budget);
        let layers = self
            .layers
            .iter()
            .zip(&other.layers)
            .map(|pair| match pair {
                (Some((ka, va)), Some((kb, vb))) => {
                    let stack = |a: &Tensor<B, 4>, b: &Tensor<B, 4>| {
                        stack_right_aligned(
                            [(a, cols_a.clone()), (b, cols_b.clone())],
                            len,
                            capacity,
                        )
                    };
                    Some((stack(ka, kb), stack(va, vb)))
                }
                _ => None,
            })
            .collect();
        let host = self
            .host
            .iter()
            .zip(&other.host)
            .map(|pair| match pair {
                (Some(a), Some(b)) => {
                    let mut joined = HostKv::new(0, a.heads(), capacity, a.dim());
                    joined.append_rows(a, cols_a.clone(), len);
                    joined.append_rows(b, cols_b.clone(), len);
                    Some(joined)
                }
                _ => None,
            })
            .collect();
        let mut key_valid = right_aligned(&self.key_valid, &cols_a, len, capacity);
        key_valid.extend(right_aligned(&other.key_valid, &cols_b, len, capacity));
        Self {
            layers,
            host,
            batch: self.batch + other.batch,
            capacity,
            len,
            key_valid,
        }
    }

    /// Marks the step's tokens as cached; call after all layers ran.
    pub fn end_step(&mut self, seq: usize) {
        self.len += seq;
    }
}

/// Each row's validity at positions `columns`, moved to end at position `end`, padding in front.
fn right_aligned(
    rows: &[Vec<bool>],
    columns: &Range<usize>,
    end: usize,
    capacity: usize,
) -> Vec<Vec<bool>> {
    rows.iter()
        .map(|row| {
            let mut out = Vec::with_capacity(capacity);
            out.resize(end - columns.len(), false);
            out.extend_from_slice(&row[columns.clone()]);
            out
        })
        .collect()
}

/// `[rows_a + rows_b, heads, capacity, dim]`: the rows of both parts, each part's positions
/// `columns` moved to end at position `end`, zeros elsewhere.
fn stack_right_aligned<B: Backend>(
    parts: [(&Tensor<B, 4>, Range<usize>); 2],
    end: usize,
    capacity: usize,
) -> Tensor<B, 4> {
    let [_, heads, _, dim] = parts[0].0.dims();
    let rows: usize = parts.iter().map(|(t, _)| t.dims()[0]).sum();
    let first = parts[0].0;
    let mut out = Tensor::zeros(
        [rows, heads, capacity, dim],
        (&first.device(), first.dtype()),
    );
    let mut row = 0;
    for (t, cols) in parts {
        let n = t.dims()[0];
        if n > 0 && !cols.is_empty() {
            let part = t.clone().slice([0..n, 0..heads, cols.clone(), 0..dim]);
            out = out.slice_assign(
                [row..row + n, 0..heads, end - cols.len()..end, 0..dim],
                part,
            );
        }
        row += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;

    const HEADS: usize = 2;
    const DIM: usize = 3;

    /// The value cache `tag` holds for key (`is_value` = 0) or value (1) component `c` of
    /// head `h` at position `p` of row `r`.
    fn element(tag: usize, is_value: usize, r: usize, h: usize, p: usize, c: usize) -> f32 {
        (tag * 100_000 + is_value * 10_000 + r * 1_000 + h * 100 + p * 10 + c) as f32
    }

    /// `[rows, heads, capacity, dim]` of cache `tag`: its elements at positions below `len`,
    /// zeros after.
    fn block(tag: usize, is_value: usize, rows: usize, len: usize, capacity: usize) -> Vec<f32> {
        let mut out = vec![0.0; rows * HEADS * capacity * DIM];
        for r in 0..rows {
            for h in 0..HEADS {
                for p in 0..len {
                    for c in 0..DIM {
                        out[((r * HEADS + h) * capacity + p) * DIM + c] =
                            element(tag, is_value, r, h, p, c);
                    }
                }
            }
        }
        out
    }

    /// A one-layer cache `tag` holding `valid[r].len()` positions per row in host memory and,
    /// when `tensors`, also as Burn tensors (so both kinds of storage are checked).
    fn cache(tag: usize, valid: Vec<Vec<bool>>, capacity: usize, tensors: bool) -> KvCache<Flex> {
        let (rows, len) = (valid.len(), valid[0].len());
        let tensor = |data| {
            Tensor::<Flex, 4>::from_data(
                TensorData::new(data, [rows, HEADS, capacity, DIM]),
                &FlexDevice,
            )
        };
        let (k, v) = (
            block(tag, 0, rows, len, capacity),
            block(tag, 1, rows, len, capacity),
        );
        KvCache {
            layers: vec![tensors.then(|| (tensor(k.clone()), tensor(v.clone())))],
            host: vec![Some(HostKv::from_parts(k, v, HEADS, capacity, DIM))],
            batch: rows,
            capacity,
            len,
            key_valid: valid,
        }
    }

    /// The host storage's keys and values, checked equal to the tensor storage's if any.
    fn contents(cache: &KvCache<Flex>) -> (Vec<f32>, Vec<f32>) {
        let (k, v) = cache.host[0].as_ref().expect("host storage").parts();
        if let Some((tk, tv)) = cache.layers[0].clone() {
            assert_eq!(
                tk.into_data().into_vec::<f32>().unwrap(),
                k,
                "keys of both storages"
            );
            assert_eq!(
                tv.into_data().into_vec::<f32>().unwrap(),
                v,
                "values of both storages"
            );
        }
        (k.to_vec(), v.to_vec())
    }

    #[test]
    fn joined_rows_are_right_aligned_without_their_common_padding() {
        // Rows of `a` have two and one padding positions in front (one in common); `b`'s
        // single row has none and is shorter than `a` without that column.
        let a = cache(
            1,
            vec![
                vec![false, false, true, true, true],
                vec![false, true, true, true, true],
            ],
            8,
            true,
        );
        let b = cache(2, vec![vec![true, true, true]], 3, true);
        assert_eq!((a.leading_padding(), b.leading_padding()), (1, 0));
        // Room for 5 more tokens: 4 columns after dropping the common padding, plus 5.
        let joined = a.join(b, 5, 5);
        assert_eq!((joined.batch(), joined.len(), joined.capacity()), (3, 4, 9));
        assert_eq!(
            joined.key_valid(),
            [
                vec![false, true, true, true],
                vec![true, true, true, true],
                vec![false, true, true, true],
            ]
        );
        let (k, v) = contents(&joined);
        for (is_value, data) in [(0, &k), (1, &v)] {
            let at =
                |r: usize, h: usize, p: usize, c: usize| data[((r * HEADS + h) * 9 + p) * DIM + c];
            for h in 0..HEADS {
                for c in 0..DIM {
                    for p in 0..4 {
                        // `a`'s positions 1..5 at 0..4; `b`'s 0..3 at 1..4.
                        assert_eq!(at(0, h, p, c), element(1, is_value, 0, h, p + 1, c));
                        assert_eq!(at(1, h, p, c), element(1, is_value, 1, h, p + 1, c));
                    }
                    assert_eq!(at(2, h, 0, c), 0.0);
                    for p in 1..4 {
                        assert_eq!(at(2, h, p, c), element(2, is_value, 0, h, p - 1, c));
                    }
                    for p in 4..9 {
                        assert_eq!((at(0, h, p, c), at(2, h, p, c)), (0.0, 0.0));
                    }
                }
            }
        }
        // Nothing running: the joiners' cache is taken as it is.
        let empty = KvCache::<Flex>::new(1, 0, 0);
        let fresh = cache(3, vec![vec![false, true]], 6, true);
        let taken = empty.join(fresh, 4, 4);
        assert_eq!((taken.batch(), taken.len(), taken.capacity()), (1, 2, 6));
        assert_eq!(contents(&taken).0, block(3, 0, 1, 2, 6));
    }

    #[test]
    fn rows_leave_in_place_or_by_copy_with_the_same_result() {
        let valid = |r: usize| (0..3).map(|p| p >= r % 2).collect::<Vec<bool>>();
        let rows: Vec<Vec<bool>> = (0..4).map(valid).collect();
        let original = contents(&cache(1, rows.clone(), 5, true));
        let row_of =
            |data: &[f32], r: usize| data[r * HEADS * 5 * DIM..][..HEADS * 5 * DIM].to_vec();
        // Rows 1 and 3 finish... row 3 moves into slot 1 (in place); a repeated row is copied.
        for keep in [vec![0, 3, 2], vec![2, 3], vec![1, 1, 0]] {
            let mut c = cache(1, rows.clone(), 5, true);
            c.retain_rows(&keep);
            assert_eq!(c.batch(), keep.len());
            let (k, v) = contents(&c);
            for (i, &r) in keep.iter().enumerate() {
                assert_eq!(c.key_valid()[i], rows[r], "keep {keep:?}");
                assert_eq!(row_of(&k, i), row_of(&original.0, r), "keep {keep:?}");
                assert_eq!(row_of(&v, i), row_of(&original.1, r), "keep {keep:?}");
            }
        }
    }

    #[test]
    fn rows_join_in_place_when_the_cache_has_room() {
        let valid_a = vec![
            vec![false, false, true, true, true],
            vec![false, true, true, true, true],
        ];
        let a = || cache(1, valid_a.clone(), 8, false);
        let b = || cache(2, vec![vec![true, true, true]], 3, false);
        // 5 columns plus 3 fit the 8 of `a`: `b`'s row is appended, `a` stays as it was.
        let joined = a().join(b(), 3, 6);
        assert_eq!((joined.batch(), joined.len(), joined.capacity()), (3, 5, 8));
        assert_eq!(joined.key_valid()[..2], valid_a[..]);
        assert_eq!(joined.key_valid()[2], [false, false, true, true, true]);
        let (k, v) = contents(&joined);
        let per_row = HEADS * 8 * DIM;
        assert_eq!(k[..2 * per_row], block(1, 0, 2, 5, 8)[..]);
        assert_eq!(v[..2 * per_row], block(1, 1, 2, 5, 8)[..]);
        for h in 0..HEADS {
            for c in 0..DIM {
                let at = |p: usize| k[2 * per_row + (h * 8 + p) * DIM + c];
                assert_eq!((at(0), at(1), at(5)), (0.0, 0.0, 0.0));
                for p in 2..5 {
                    assert_eq!(at(p), element(2, 0, 0, h, p - 2, c));
                }
            }
        }
        // 5 + 4 columns do not fit: a new cache without the common padding column.
        let joined = a().join(b(), 4, 4);
        assert_eq!((joined.batch(), joined.len(), joined.capacity()), (3, 4, 8));
        assert_eq!(joined.key_valid()[2], [false, true, true, true]);
    }
}

//! The trainable decoder: a Llama/Qwen2 transformer whose backward pass reaches every weight.
//!
//! candle's fused `rms_norm`, `rope`, `softmax_last_dim` and `sdpa` kernels have no backward pass
//! (gradients silently stop at them), so the RMS norm, the head layout with the rotary embedding,
//! the attention softmax and the SwiGLU activation here are our own one-pass CPU custom ops with a
//! backward (in [`crate::kernels`]: `rms_norm`, `rotary_heads`, `softmax`, `swiglu`; composed
//! ops on other devices). Decoding's projections use [`crate::kernels::decode_matmul`], its
//! attention [`crate::kernels::decode_attention`]. Hidden
//! states are `[b*t, hidden]` inside the layers. Weights live in a [`VarMap`] under Hugging
//! Face names (`model.layers.0.self_attn.q_proj.weight`, ...) so an optimizer can update them in
//! place and checkpoints look like HF ones.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarMap;

use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::rng::SplitMix64;

/// Additive mask value for disallowed keys. Finite (not -inf) so a query whose keys are all
/// masked (a left-padding position) gives a uniform softmax instead of NaN.
const MASK_VALUE: f64 = -1e9;

/// Default number of positions per chunk when turning hidden states into log-probabilities.
pub const DEFAULT_LOGPROB_CHUNK: usize = 128;

struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// The same weights, detached from autograd.
    fn detached(&self) -> Linear {
        Linear {
            weight: self.weight.detach(),
            bias: self.bias.as_ref().map(Tensor::detach),
        }
    }

    /// `x @ W^T + b` for `x` `[rows, in]`: hidden states are 2-D inside the layers, so no
    /// reshape (each would be a graph node with a zero tensor and an add in candle's backward).
    fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let y = project(x, &self.weight, kernels)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// Which kernels a forward pass may use. Training needs the composed ops (candle's fused kernels
/// have no backward pass); sampling needs no gradient and takes the fused ones, which are fewer
/// passes over memory and fewer dispatches per token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernels {
    Differentiable,
    Fused,
}

fn norm(x: &Tensor, weight: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    match kernels {
        Kernels::Differentiable => crate::kernels::rms_norm::rms_norm(x, weight, eps),
        Kernels::Fused => Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            weight,
            eps as f32,
        )?),
    }
}

/// `x @ w^T` for `x` `[rows, in]` and `w` `[out, in]`. With few rows (decoding) and no gradient
/// wanted, the weight-streaming kernel of [`crate::kernels::decode_matmul`] (at 8 rows 2-5x faster
/// than GEMM).
/// Otherwise with few rows candle's GEMM is several times faster as `(w @ x^T)^T` (measured: 9 vs
/// 49 ms for the 49k-row output projection at 8 rows); with many rows (training) the direct form
/// is as fast and needs no transpose copy.
fn project(x: &Tensor, w: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let (rows, _) = x.dims2()?;
    if kernels == Kernels::Fused && crate::kernels::decode_matmul::applies(x, w) {
        crate::kernels::decode_matmul::matmul_t(x, w)
    } else if rows <= SMALL_BATCH_ROWS {
        Ok(w.matmul(&x.t()?)?.t()?)
    } else {
        Ok(x.matmul(&w.t()?)?)
    }
}

/// Row count up to which [`project`] uses the transposed product.
const SMALL_BATCH_ROWS: usize = 16;

struct Layer {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Layer {
    /// The same weights, detached from autograd (shares storage; costs no copy).
    fn detached(&self) -> Layer {
        Layer {
            input_norm: self.input_norm.detach(),
            q: self.q.detached(),
            k: self.k.detached(),
            v: self.v.detached(),
            o: self.o.detached(),
            post_norm: self.post_norm.detach(),
            gate: self.gate.detached(),
            up: self.up.detached(),
            down: self.down.detached(),
        }
    }
}

/// Keys and values of the positions already processed, one entry per layer.
///
/// Sampling appends in place: each layer's keys and values are views of the first `len`
/// positions of `[b, heads, capacity, head_dim]` buffers, and a new token is written after them,
/// so a decoding step no longer copies the whole past (that copy was ~15% of evaluation time at
/// 16 rows and ~1,000 cached positions). The differentiable path appends by concatenation, which
/// autograd can follow. A clone shares the cached positions but not the spare capacity (its first
/// append copies), so no two caches ever write the same buffer.
#[derive(Default, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    /// The first `shared` positions hold the same keys and values in every row, so decoding's
    /// attention reads them from row 0 alone (see [`KvCache::stack_left_padded`]).
    shared: usize,
}

/// One layer's keys and values, and the buffers they view when appended in place.
struct LayerCache {
    k: Tensor,
    v: Tensor,
    spare: Option<(Tensor, Tensor)>,
}

impl Clone for LayerCache {
    fn clone(&self) -> Self {
        LayerCache {
            k: self.k.clone(),
            v: self.v.clone(),
            spare: None,
        }
    }
}

/// Positions added to a buffer beyond what an append needs, so growing (a copy) happens once
/// every this many decoding steps.
const KV_SPARE: usize = 256;

impl LayerCache {
    /// Appends `k`, `v` (`[b, heads, t, d]`, contiguous) and returns the keys and values of every
    /// position. `in_place` writes into spare capacity (no gradient flows through it).
    fn append(
        slot: &mut Option<LayerCache>,
        k: Tensor,
        v: Tensor,
        in_place: bool,
    ) -> Result<(Tensor, Tensor)> {
        let Some(past) = slot.as_mut() else {
            *slot = Some(LayerCache {
                k: k.clone(),
                v: v.clone(),
                spare: None,
            });
            return Ok((k, v));
        };
        if !in_place {
            // Contiguous parts keep the result contiguous (candle's cat of strided parts
            // returns a transposed view matmul rejects).
            let k = Tensor::cat(&[&past.k.contiguous()?, &k], 2)?;
            let v = Tensor::cat(&[&past.v.contiguous()?, &v], 2)?;
            *past = LayerCache {
                k: k.clone(),
                v: v.clone(),
                spare: None,
            };
            return Ok((k, v));
        }
        let (b, heads, len, d) = past.k.dims4()?;
        let t = k.dim(2)?;
        let need = len + t;
        let fits = past.spare.as_ref().is_some_and(|(bk, _)| {
            let (bb, bh, cap, bd) = bk.dims4().unwrap_or_default();
            (bb, bh, bd) == (b, heads, d) && cap >= need
        });
        if !fits {
            let shape = (b, heads, need + KV_SPARE, d);
            let bk = Tensor::zeros(shape, k.dtype(), k.device())?;
            let bv = Tensor::zeros(shape, v.dtype(), v.device())?;
            bk.slice_set(&past.k.contiguous()?, 2, 0)?;
            bv.slice_set(&past.v.contiguous()?, 2, 0)?;
            past.spare = Some((bk, bv));
        }
        let (bk, bv) = past
            .spare
            .as_ref()
            .expect("spare buffers were just ensured");
        bk.slice_set(&k, 2, len)?;
        bv.slice_set(&v, 2, len)?;
        past.k = bk.narrow(2, 0, need)?;
        past.v = bv.narrow(2, 0, need)?;
        Ok((past.k.clone(), past.v.clone()))
    }
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        KvCache {
            layers: vec![None; num_layers],
            shared: 0,
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .and_then(|l| l.k.dim(2).ok())
            .unwrap_or(0)
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stacks batch-1 caches into one batch. Every row starts with the same `shared` positions
    /// (the same tokens; row 0's keys and values stand for all rows' when decoding) and then has
    /// its own; those are right-aligned to `shared + width` with zero keys and values in between:
    /// the layout a left-padded batched prefill produces, whose padding the caller masks. Rows
    /// prefilled one by one this way cost the sum of their lengths, not `b × width`.
    pub fn stack_left_padded(rows: &[KvCache], shared: usize, width: usize) -> Result<KvCache> {
        let num_layers = rows.first().map_or(0, |r| r.layers.len());
        let mut layers = Vec::with_capacity(num_layers);
        for li in 0..num_layers {
            let mut ks = Vec::with_capacity(rows.len());
            let mut vs = Vec::with_capacity(rows.len());
            for row in rows {
                let layer = row.layers.get(li).and_then(Option::as_ref).ok_or_else(|| {
                    Error::InvalidInput("stack_left_padded: a row cache is empty".into())
                })?;
                let (one, heads, len, d) = layer.k.dims4()?;
                if one != 1 || len < shared || len - shared > width {
                    return Err(Error::InvalidInput(format!(
                        "stack_left_padded: a row cache of batch {one} and {len} positions does \
                         not fit {shared} shared + {width}"
                    )));
                }
                let own = len - shared;
                let pad = |t: &Tensor| -> Result<Tensor> {
                    let zeros = Tensor::zeros((1, heads, width - own, d), t.dtype(), t.device())?;
                    let parts = [
                        t.narrow(2, 0, shared)?.contiguous()?,
                        zeros,
                        t.narrow(2, shared, own)?.contiguous()?,
                    ];
                    // Zero-length parts are left out (no shared prefix, or no padding).
                    let parts: Vec<&Tensor> = parts
                        .iter()
                        .filter(|p| p.dim(2).is_ok_and(|n| n > 0))
                        .collect();
                    Ok(Tensor::cat(&parts, 2)?)
                };
                ks.push(pad(&layer.k)?);
                vs.push(pad(&layer.v)?);
            }
            layers.push(Some(LayerCache {
                k: Tensor::cat(&ks, 0)?,
                v: Tensor::cat(&vs, 0)?,
                spare: None,
            }));
        }
        Ok(KvCache { layers, shared })
    }

    /// A decoding batch of the given rows, each holding only its positions `keep`, laid out as
    /// [`KvCache::stack_left_padded`] lays rows out (the first `shared` positions in place, the
    /// rest right-aligned to `shared + width`, zeros between), in buffers with spare capacity so
    /// that the next decoding step appends in place. What a batch becomes when finished rows
    /// leave it and waiting rows join: one copy of every kept position. Off the CPU, or for
    /// caches that are not f32, the rows are cut out and stacked with candle ops instead.
    pub fn restack(rows: &[RestackRow<'_>], shared: usize, width: usize) -> Result<KvCache> {
        let fits = |r: &RestackRow<'_>| {
            r.keep.len() >= shared
                && r.keep.len() - shared <= width
                && r.keep.windows(2).all(|w| w[0] < w[1])
                && r.keep.last().is_none_or(|&p| (p as usize) < r.cache.len())
        };
        if let Some(bad) = rows.iter().position(|r| !fits(r)) {
            return Err(Error::InvalidInput(format!(
                "restack: row {bad} keeps {} positions, which do not fit {shared} shared + {width} \
                 in ascending order within its {} cached ones",
                rows[bad].keep.len(),
                rows[bad].cache.len()
            )));
        }
        let num_layers = rows.first().map_or(0, |r| r.cache.layers.len());
        let layer = |r: &RestackRow<'_>, li: usize| -> Result<LayerCache> {
            r.cache
                .layers
                .get(li)
                .and_then(Option::as_ref)
                .cloned()
                .ok_or_else(|| Error::InvalidInput("restack: a row cache is empty".into()))
        };
        if !rows.iter().all(|r| r.cache.on_cpu_f32()) {
            let cut = rows
                .iter()
                .map(|r| r.cache.select_row(r.row, r.keep))
                .collect::<Result<Vec<_>>>()?;
            return KvCache::stack_left_padded(&cut, shared, width);
        }
        let mut layers = Vec::with_capacity(num_layers);
        // How many of the shared positions hold the same bits in every row: only those are read
        // from row 0 (rows prefilled in different batches may hold the same tokens computed
        // with different sums).
        let mut same = shared;
        for li in 0..num_layers {
            let sources = rows
                .iter()
                .map(|r| layer(r, li))
                .collect::<Result<Vec<_>>>()?;
            let (k, bk, same_k) =
                restack_tensor(rows, sources.iter().map(|l| &l.k), shared, width)?;
            let (v, bv, same_v) =
                restack_tensor(rows, sources.iter().map(|l| &l.v), shared, width)?;
            same = same.min(same_k).min(same_v);
            layers.push(Some(LayerCache {
                k,
                v,
                spare: Some((bk, bv)),
            }));
        }
        Ok(KvCache {
            layers,
            shared: same,
        })
    }

    /// The batch-1 cache of row `row` holding only the cached positions `keep` (ascending), in a
    /// buffer of its own: what a sequence of a finished batch carries into its next turn, its
    /// padding and masked steps left out, without keeping the batch's buffers alive.
    pub fn select_row(&self, row: usize, keep: &[u32]) -> Result<KvCache> {
        if self.on_cpu_f32() && !self.is_empty() {
            // One copy, into a buffer with spare capacity: the next turn's prefill appends in
            // place instead of copying the whole past again.
            let only = RestackRow {
                cache: self,
                row,
                keep,
            };
            return KvCache::restack(&[only], 0, keep.len());
        }
        self.map_tensors(|t| {
            let index = Tensor::new(keep, t.device())?;
            Ok(t.narrow(0, row, 1)?
                .contiguous()?
                .index_select(&index, 2)?
                .contiguous()?)
        })
    }

    /// Whether this decoding batch can be rebuilt in place ([`KvCache::place_row`],
    /// [`KvCache::move_row`], [`KvCache::keep_slots`]): every layer's keys and values are CPU f32
    /// views of buffers of its own (what [`KvCache::restack`] and appends leave; a clone has none).
    pub(crate) fn writable(&self) -> bool {
        self.on_cpu_f32()
            && self
                .layers
                .iter()
                .all(|l| l.as_ref().is_some_and(|l| l.spare.is_some()))
    }

    /// Slot `slot` of this decoding batch takes row `row` of `src` holding its cached positions
    /// `keep` (ascending, at most [`KvCache::len`] of them): the first `front` at columns
    /// `0..front`, the rest right-aligned to the batch's length, zeros between, the layout
    /// [`KvCache::restack`] gives a row, written into the batch's own buffers so that the other
    /// rows are not copied. Of the shared positions, those whose bits the slot already holds are
    /// left as they are, and `shared` falls to the first one the row does not share. The write is
    /// in place: clones of this cache, which view the same buffers, see it, so only the owner of
    /// a decoding batch may call this.
    pub(crate) fn place_row(
        &mut self,
        slot: usize,
        src: &KvCache,
        row: usize,
        keep: &[u32],
        front: usize,
    ) -> Result<()> {
        if !self.writable() || !src.on_cpu_f32() || src.layers.len() != self.layers.len() {
            return Err(Error::InvalidInput(
                "place_row: a batch of its own CPU f32 buffers takes rows of as many layers".into(),
            ));
        }
        let end = self.len();
        let compare = self.shared.min(front);
        let mut same = compare;
        for (layer, from) in self.layers.iter().zip(&src.layers) {
            let (Some(layer), Some(from)) = (layer, from) else {
                return Err(Error::InvalidInput("place_row: a layer is empty".into()));
            };
            let Some((bk, bv)) = &layer.spare else {
                return Err(Error::InvalidInput("place_row: no buffer to write".into()));
            };
            for (buffer, source) in [(bk, &from.k), (bv, &from.v)] {
                let placement = crate::model::kv_slots::Placement {
                    slot,
                    row,
                    keep,
                    front,
                    end,
                    compare,
                };
                same = same.min(crate::model::kv_slots::place_row(
                    buffer, source, placement,
                )?);
            }
        }
        self.shared = same;
        Ok(())
    }

    /// Slot `to` of this decoding batch becomes a copy of slot `from` (its positions below
    /// `shared`, the same bits in every slot, are not copied), in place as
    /// [`KvCache::place_row`] writes.
    pub(crate) fn move_row(&mut self, from: usize, to: usize) -> Result<()> {
        if !self.writable() {
            return Err(Error::InvalidInput(
                "move_row: the batch has no CPU f32 buffers of its own".into(),
            ));
        }
        let columns = self.shared..self.len();
        for layer in self.layers.iter().flatten() {
            if let Some((bk, bv)) = &layer.spare {
                crate::model::kv_slots::move_row(bk, from, to, columns.clone())?;
                crate::model::kv_slots::move_row(bv, from, to, columns.clone())?;
            }
        }
        Ok(())
    }

    /// Keeps the first `slots` slots of this decoding batch, without copying: the buffers stay,
    /// their later slots unused.
    pub(crate) fn keep_slots(&mut self, slots: usize) -> Result<()> {
        if !self.writable() {
            return Err(Error::InvalidInput(
                "keep_slots: the batch has no CPU f32 buffers of its own".into(),
            ));
        }
        for layer in self.layers.iter_mut().flatten() {
            let len = layer.k.dim(2)?;
            if let Some((bk, bv)) = layer.spare.take() {
                let (bk, bv) = (bk.narrow(0, 0, slots)?, bv.narrow(0, 0, slots)?);
                layer.k = bk.narrow(2, 0, len)?;
                layer.v = bv.narrow(2, 0, len)?;
                layer.spare = Some((bk, bv));
            }
        }
        Ok(())
    }

    /// Whether every layer's keys and values are f32 on the CPU: what [`KvCache::restack`]'s
    /// direct copy reads.
    pub(crate) fn on_cpu_f32(&self) -> bool {
        self.layers.iter().flatten().all(|l| {
            l.k.device().is_cpu() && l.k.dtype() == DType::F32 && l.v.dtype() == DType::F32
        })
    }

    /// The same cache holding only the rows `rows`, in that order, in buffers of their own: a
    /// decoding batch drops its finished rows so they stop costing a row of every later step.
    /// Every row holds the shared positions, so the result keeps them shared.
    pub fn select_rows(&self, rows: &[usize]) -> Result<KvCache> {
        let mut cache = self.map_tensors(|t| {
            let parts = rows
                .iter()
                .map(|&r| t.narrow(0, r, 1))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::cat(&parts, 0)?)
        })?;
        cache.shared = self.shared;
        Ok(cache)
    }

    /// A cache whose every layer's keys and values are `f` of this one's (no spare capacity).
    fn map_tensors(&self, mut f: impl FnMut(&Tensor) -> Result<Tensor>) -> Result<KvCache> {
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                layer
                    .as_ref()
                    .map(|l| -> Result<LayerCache> {
                        Ok(LayerCache {
                            k: f(&l.k)?,
                            v: f(&l.v)?,
                            spare: None,
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers, shared: 0 })
    }

    /// A cache of batch size `b` whose every row is this batch-1 cache. Differentiable: the
    /// gradients of the `b` rows flow back summed into the shared entries.
    pub fn repeat_batch(&self, b: usize) -> Result<KvCache> {
        self.map_tensors(|t| {
            let (one, heads, len, d) = t.dims4()?;
            if one != 1 {
                return Err(Error::InvalidInput(format!(
                    "repeat_batch needs a batch-1 cache, not {one}"
                )));
            }
            Ok(t.broadcast_as((b, heads, len, d))?.contiguous()?)
        })
    }
}

/// One row of a batch being restacked ([`KvCache::restack`]): row `row` of `cache`, holding
/// only its cached positions `keep` (ascending).
pub struct RestackRow<'a> {
    /// The cache the row is in.
    pub cache: &'a KvCache,
    /// Its row there.
    pub row: usize,
    /// Its cached positions to keep, ascending.
    pub keep: &'a [u32],
}

/// One layer's keys (or values) of [`KvCache::restack`]'s batch from each row's `[b, heads, len,
/// d]` f32 CPU tensor (any strides, the last dimension contiguous): the `[rows, heads, shared +
/// width, d]` view, the spare-capacity buffer it views, and how many of the `shared` positions
/// hold row 0's bits in every row.
fn restack_tensor<'a>(
    rows: &[RestackRow<'_>],
    sources: impl Iterator<Item = &'a Tensor>,
    shared: usize,
    width: usize,
) -> Result<(Tensor, Tensor, usize)> {
    let sources: Vec<&Tensor> = sources.collect();
    let Some(first) = sources.first() else {
        return Err(Error::InvalidInput("restack: no rows".into()));
    };
    let (_, heads, _, d) = first.dims4()?;
    let guards = sources
        .iter()
        .map(|t| t.storage_and_layout())
        .collect::<Vec<_>>();
    // Each row's storage, and where its head `h`'s position `p` starts: `start + h * head + p * pos`.
    let mut views: Vec<(&[f32], usize, usize, usize)> = Vec::with_capacity(rows.len());
    for ((r, t), (storage, layout)) in rows.iter().zip(&sources).zip(&guards) {
        let (tb, th, _, td) = t.dims4()?;
        let stride = layout.stride();
        if r.row >= tb || (th, td) != (heads, d) || stride[3] != 1 {
            return Err(Error::InvalidInput(format!(
                "restack: row {} of a [{tb}, {th}, _, {td}] cache (strides {stride:?}) joins rows \
                 of {heads} heads of {d}",
                r.row
            )));
        }
        let candle_core::Storage::Cpu(cpu) = &**storage else {
            return Err(Error::InvalidInput(
                "restack: a cache is not on the CPU".into(),
            ));
        };
        let start = layout.start_offset() + r.row * stride[0];
        views.push((cpu.as_slice::<f32>()?, start, stride[1], stride[2]));
    }
    // Written once, in order (no zeroing pass first): each (row, head) is its shared positions,
    // zeros up to its own positions, those, then zeros of spare capacity.
    let cap = shared + width + KV_SPARE;
    let mut out: Vec<f32> = Vec::with_capacity(rows.len() * heads * cap * d);
    fn at<'s>(view: &(&'s [f32], usize, usize, usize), h: usize, p: u32, d: usize) -> &'s [f32] {
        let (src, start, head, pos) = *view;
        let from = start + h * head + p as usize * pos;
        &src[from..from + d]
    }
    // The first shared position where some row's bits differ from row 0's.
    let mut same = shared;
    for (b, (r, view)) in rows.iter().zip(&views).enumerate() {
        let own = r.keep.len() - shared;
        for h in 0..heads {
            let begin = out.len();
            for &p in &r.keep[..shared] {
                out.extend_from_slice(at(view, h, p, d));
            }
            out.resize(out.len() + (width - own) * d, 0.0);
            for &p in &r.keep[shared..] {
                out.extend_from_slice(at(view, h, p, d));
            }
            out.resize(out.len() + KV_SPARE * d, 0.0);
            if b > 0 && same > 0 {
                // Positions `from..from + n` of this (row, head) and of row 0's, as bytes.
                let row0 = h * cap * d;
                let differ = |from: usize, n: usize| {
                    let x: &[u8] = bytemuck::cast_slice(&out[row0 + from * d..][..n * d]);
                    let y: &[u8] = bytemuck::cast_slice(&out[begin + from * d..][..n * d]);
                    x != y
                };
                if differ(0, same) {
                    same = (0..same).find(|&j| differ(j, 1)).unwrap_or(same);
                }
            }
        }
    }
    drop(views);
    drop(guards);
    let buffer = Tensor::from_vec(out, (rows.len(), heads, cap, d), first.device())?;
    Ok((buffer.narrow(2, 0, shared + width)?, buffer, same))
}

/// What a differentiable forward of a prefix leaves for its continuations: every layer's keys
/// and values and the last hidden state (`[1, 1, hidden]`).
///
/// A training update whose sequences share a prefix runs it once ([`Model::prefix_forward`]),
/// then each micro-batch from [`PrefixActivations::leaves`]: copies cut from the prefix's graph,
/// so a micro-batch's backward stops at them and frees its activations. The gradients that
/// reach the leaves are summed over micro-batches and carried into the prefix's graph by one
/// backward of [`PrefixActivations::pullback`]. The weights get exactly the gradient of running
/// every sequence whole, while the prefix is computed once per update instead of once per
/// micro-batch.
pub struct PrefixActivations {
    cache: KvCache,
    last_hidden: Tensor,
}

impl PrefixActivations {
    /// Number of prefix positions.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the prefix is empty (never, from [`Model::prefix_forward`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The activations a gradient can flow back through, in the order
    /// [`PrefixActivations::leaves`] and [`PrefixActivations::pullback`] use: each layer's keys
    /// then values, then the last hidden state. Those of frozen layers
    /// ([`Model::freeze_bottom_layers`]) have no graph and are left out.
    fn tensors(&self) -> Vec<&Tensor> {
        let mut out: Vec<&Tensor> = self
            .cache
            .layers
            .iter()
            .flatten()
            .flat_map(|l| [&l.k, &l.v])
            .collect();
        out.push(&self.last_hidden);
        out.retain(|t| t.track_op());
        out
    }

    /// A copy whose tensors are fresh variables, detached from the prefix's graph, with the
    /// variables in order (read their gradients after a micro-batch's backward). Activations
    /// of frozen layers stay as they are: a variable there would make every micro-batch
    /// differentiate through the layers that learn nothing.
    pub fn leaves(&self) -> Result<(PrefixActivations, Vec<Var>)> {
        let mut vars = Vec::new();
        let mut leaf = |t: &Tensor| -> Result<Tensor> {
            if !t.track_op() {
                return Ok(t.clone());
            }
            let v = Var::from_tensor(&t.detach())?;
            let out = v.as_tensor().clone();
            vars.push(v);
            Ok(out)
        };
        let cache = self.cache.map_tensors(&mut leaf)?;
        let last_hidden = leaf(&self.last_hidden)?;
        Ok((PrefixActivations { cache, last_hidden }, vars))
    }

    /// `Σ ⟨activation, gradient⟩` over the activations, given the summed gradients of their
    /// leaves (`None` for a leaf no loss reached): its backward is the prefix's share of the
    /// update's gradient.
    pub fn pullback(&self, grads: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let tensors = self.tensors();
        if grads.len() != tensors.len() {
            return Err(Error::InvalidInput(format!(
                "{} gradients for {} prefix activations",
                grads.len(),
                tensors.len()
            )));
        }
        let mut total: Option<Tensor> = None;
        for (t, g) in tensors.into_iter().zip(grads) {
            let Some(g) = g else { continue };
            let term = (t * g)?.sum_all()?;
            total = Some(match total {
                Some(acc) => (acc + term)?,
                None => term,
            });
        }
        Ok(total)
    }
}

/// What [`Model::continue_prefix`] leaves: the rows' cache (prefix and suffixes), their hidden
/// states `[b, w, hidden]` and the requested log-probabilities.
struct Continued {
    cache: KvCache,
    hidden: Tensor,
    logprobs: Tensor,
}

/// Position ids and attention mask of one forward call.
struct Frame {
    /// `[b, t, head_dim/2]` rotary tables for the new positions.
    rope: crate::kernels::rotary_heads::RopeTables,
    /// `[b, t, past+t]` additive mask (0 allowed, [`MASK_VALUE`] blocked).
    mask: Tensor,
    /// The same mask as plain floats, for the decoding attention kernel (few new positions).
    mask_cpu: Option<Arc<Vec<f32>>>,
}

/// A decoder-only transformer whose weights are [`Var`]s.
pub struct Model {
    config: ModelConfig,
    varmap: VarMap,
    device: Device,
    dtype: DType,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    /// Bottom layers that run without a graph in differentiable passes (see
    /// [`Model::freeze_bottom_layers`]).
    frozen_layers: usize,
}

impl Model {
    /// Keeps the input embedding and the bottom `n` decoder layers fixed in training: their
    /// forward runs without a graph, so a backward stops at layer `n` and costs nothing below
    /// it. The top layers, the final norm and the output projection (tied to the embedding in
    /// SmolLM2, so it still learns through the output side) get gradients exactly as in full
    /// training; the frozen weights get none.
    pub fn freeze_bottom_layers(&mut self, n: usize) -> Result<()> {
        if n > self.layers.len() {
            return Err(Error::InvalidInput(format!(
                "cannot freeze {n} layers of a {}-layer model",
                self.layers.len()
            )));
        }
        self.frozen_layers = n;
        Ok(())
    }

    /// Builds a model from named weights (Hugging Face names), checking every shape against the
    /// config. Weights are converted to `dtype` and become trainable variables.
    pub fn from_weights(
        config: ModelConfig,
        mut weights: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate().map_err(Error::InvalidInput)?;
        let varmap = VarMap::new();
        let c = &config;
        let (h, kv, hd) = (c.hidden_size, c.num_kv_heads, c.head_dim);
        let q_out = c.num_heads * hd;
        let kv_out = kv * hd;
        let (embed, layers, norm, lm_head) = {
            let mut vars = varmap
                .data()
                .lock()
                .map_err(|_| Error::InvalidInput("variable map lock poisoned".into()))?;
            let mut take = |name: &str, shape: &[usize]| -> Result<Tensor> {
                let t = weights
                    .remove(name)
                    .ok_or_else(|| Error::MissingTensor(name.to_string()))?;
                if t.dims() != shape {
                    return Err(Error::ShapeMismatch {
                        name: name.to_string(),
                        expected: shape.to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                let var = Var::from_tensor(&t.to_dtype(dtype)?.to_device(device)?)?;
                let tensor = var.as_tensor().clone();
                vars.insert(name.to_string(), var);
                Ok(tensor)
            };
            let embed = take("model.embed_tokens.weight", &[c.vocab_size, h])?;
            let mut layers = Vec::with_capacity(c.num_layers);
            for i in 0..c.num_layers {
                let p = format!("model.layers.{i}");
                let mut lin = |name: &str, out: usize, inp: usize, bias: bool| -> Result<Linear> {
                    let weight = take(&format!("{p}.{name}.weight"), &[out, inp])?;
                    let bias = if bias {
                        Some(take(&format!("{p}.{name}.bias"), &[out])?)
                    } else {
                        None
                    };
                    Ok(Linear { weight, bias })
                };
                let ab = c.attention_bias;
                let q = lin("self_attn.q_proj", q_out, h, ab)?;
                let k = lin("self_attn.k_proj", kv_out, h, ab)?;
                let v = lin("self_attn.v_proj", kv_out, h, ab)?;
                let o = lin("self_attn.o_proj", h, q_out, false)?;
                let gate = lin("mlp.gate_proj", c.intermediate_size, h, false)?;
                let up = lin("mlp.up_proj", c.intermediate_size, h, false)?;
                let down = lin("mlp.down_proj", h, c.intermediate_size, false)?;
                let input_norm = take(&format!("{p}.input_layernorm.weight"), &[h])?;
                let post_norm = take(&format!("{p}.post_attention_layernorm.weight"), &[h])?;
                layers.push(Layer {
                    input_norm,
                    q,
                    k,
                    v,
                    o,
                    post_norm,
                    gate,
                    up,
                    down,
                });
            }
            let norm = take("model.norm.weight", &[h])?;
            let lm_head = if c.tie_word_embeddings {
                embed.clone()
            } else {
                take("lm_head.weight", &[c.vocab_size, h])?
            };
            (embed, layers, norm, lm_head)
        };
        Ok(Model {
            config,
            varmap,
            device: device.clone(),
            dtype,
            embed,
            layers,
            norm,
            lm_head,
            frozen_layers: 0,
        })
    }

    /// A model with random weights (normal, std 0.02; norms at 1), for tests and benchmarks.
    pub fn random(config: ModelConfig, dtype: DType, device: &Device, seed: u64) -> Result<Self> {
        let weights = random_weights(&config, seed)?;
        Self::from_weights(config, weights, dtype, device)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The trainable weights, by Hugging Face name.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the weights and activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Hidden states after the final norm, `[b, t, hidden]`, for token ids `[b, t]`.
    ///
    /// `attention_mask` (`[b][t]`, true = real token) supports left padding: padded keys are
    /// masked and position ids count only real tokens, as Hugging Face does. `None` = no padding.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        attention_mask: Option<&[Vec<bool>]>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if b == 0 || t == 0 {
            return Err(Error::InvalidInput("empty batch or sequence".into()));
        }
        let valid = match attention_mask {
            Some(m) => {
                check_mask(m, b, t)?;
                m.to_vec()
            }
            None => vec![vec![true; t]; b],
        };
        let positions: Vec<Vec<u32>> = valid.iter().map(|row| positions_of(row, 0)).collect();
        let frame = self.frame(&positions, &valid, 0)?;
        self.run(ids, &frame, None, Kernels::Differentiable)
    }

    /// Logits for every position, `[b, t, vocab]`. Memory grows with `b*t*vocab`: prefer
    /// [`Model::token_logprobs`] for training.
    pub fn logits(&self, ids: &Tensor, attention_mask: Option<&[Vec<bool>]>) -> Result<Tensor> {
        let hidden = self.forward_hidden(ids, attention_mask)?;
        let (b, t, h) = hidden.dims3()?;
        let logits = hidden.reshape((b * t, h))?.matmul(&self.lm_head.t()?)?;
        Ok(logits.reshape((b, t, self.config.vocab_size))?)
    }

    /// `log p(ids[:, i+1] | ids[:, ..=i])` for every position, `[b, t-1]`, differentiable.
    ///
    /// The output projection and log-softmax run over `chunk` positions at a time, so the forward
    /// pass never materialises more than one `[chunk, vocab]` block of logits.
    pub fn token_logprobs(
        &self,
        ids: &Tensor,
        attention_mask: Option<&[Vec<bool>]>,
        chunk: usize,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t < 2 {
            return Err(Error::InvalidInput(
                "token_logprobs needs at least two tokens per sequence".into(),
            ));
        }
        let hidden = self.forward_hidden(ids, attention_mask)?;
        let hidden = hidden.narrow(1, 0, t - 1)?;
        let targets = ids.narrow(1, 1, t - 1)?;
        let lp = self.logprobs_of(&hidden, &targets, chunk)?;
        Ok(lp.reshape((b, t - 1))?)
    }

    /// Log-probabilities of `suffixes[i]` after the shared `prefix`, `[b, w]` with `w` the
    /// longest suffix: entry `(i, j)` is `log p(suffixes[i][j] | prefix, suffixes[i][..j])`;
    /// entries past a suffix's end are padding (finite, to be masked by the caller).
    ///
    /// The prefix runs once at batch size 1 and its keys and values are shared by every suffix
    /// in the same graph, so gradients are exactly those of running each `prefix + suffix`
    /// separately (the shared part receives the sum of the suffixes' gradients), while the
    /// prefix costs one sequence instead of `b`.
    pub fn prefix_logprobs(
        &self,
        prefix: &[u32],
        suffixes: &[Vec<u32>],
        chunk: usize,
    ) -> Result<Tensor> {
        let prefix = self.prefix_forward(prefix)?;
        self.suffix_logprobs(&prefix, suffixes, chunk)
    }

    /// The differentiable forward of a prefix: its keys and values and last hidden state, what
    /// [`Model::suffix_logprobs`] continues from.
    pub fn prefix_forward(&self, prefix: &[u32]) -> Result<PrefixActivations> {
        let p = prefix.len();
        if p == 0 {
            return Err(Error::InvalidInput("an empty prefix".into()));
        }
        let mut cache = KvCache::new(self.layers.len());
        let ids = Tensor::new(prefix, &self.device)?.unsqueeze(0)?;
        let frame = self.frame(&[(0..p as u32).collect()], &[vec![true; p]], 0)?;
        let hidden = self.run(&ids, &frame, Some(&mut cache), Kernels::Differentiable)?;
        Ok(PrefixActivations {
            cache,
            last_hidden: hidden.narrow(1, p - 1, 1)?,
        })
    }

    /// [`Model::prefix_logprobs`] after a prefix already run ([`Model::prefix_forward`]), or
    /// its [`PrefixActivations::leaves`] so that several micro-batches share one prefix pass.
    pub fn suffix_logprobs(
        &self,
        prefix: &PrefixActivations,
        suffixes: &[Vec<u32>],
        chunk: usize,
    ) -> Result<Tensor> {
        let w = suffixes.iter().map(Vec::len).max().unwrap_or(0);
        let lp = self.suffix_logprobs_of(prefix, suffixes, None, chunk)?;
        Ok(lp.reshape((suffixes.len(), w))?)
    }

    /// [`Model::suffix_logprobs`] at the flat indices `at` into its `[b, w]` result only, `[n]`
    /// in the order of `at`. The output projection and its softmax over the vocabulary are a
    /// fifth of a token's cost, and training needs them only where a token is learnt.
    pub fn suffix_logprobs_at(
        &self,
        prefix: &PrefixActivations,
        suffixes: &[Vec<u32>],
        at: &[u32],
        chunk: usize,
    ) -> Result<Tensor> {
        self.suffix_logprobs_of(prefix, suffixes, Some(at), chunk)
    }

    /// `prefix` continued by `segment`, run once at batch size 1 in the same graph: the longer
    /// prefix the rows of a micro-batch also share (a GRPO group's prompt and the first turn its
    /// episodes sampled alike), with the log-probabilities of the segment's tokens at `at`
    /// (indices into `segment`; token j is predicted by the hidden state just before it), `[n]`
    /// in the order of `at`. The segment's share of the gradient flows back through both.
    pub fn extend_prefix(
        &self,
        prefix: &PrefixActivations,
        segment: &[u32],
        at: &[u32],
        chunk: usize,
    ) -> Result<(PrefixActivations, Tensor)> {
        let s = segment.len();
        let run = self.continue_prefix(prefix, &[segment.to_vec()], Some(at), chunk)?;
        let extended = PrefixActivations {
            cache: run.cache,
            last_hidden: run.hidden.narrow(1, s - 1, 1)?,
        };
        Ok((extended, run.logprobs))
    }

    fn suffix_logprobs_of(
        &self,
        prefix: &PrefixActivations,
        suffixes: &[Vec<u32>],
        at: Option<&[u32]>,
        chunk: usize,
    ) -> Result<Tensor> {
        Ok(self.continue_prefix(prefix, suffixes, at, chunk)?.logprobs)
    }

    /// Runs `suffixes` after `prefix` (its keys and values repeated for every row): the cache
    /// and hidden states of the rows, and the log-probabilities of their tokens (all `[b * w]`,
    /// or those at `at`; empty for an empty `at`).
    fn continue_prefix(
        &self,
        prefix: &PrefixActivations,
        suffixes: &[Vec<u32>],
        at: Option<&[u32]>,
        chunk: usize,
    ) -> Result<Continued> {
        let p = prefix.len();
        let b = suffixes.len();
        if p == 0 || b == 0 || suffixes.iter().any(Vec::is_empty) {
            return Err(Error::InvalidInput(
                "prefix_logprobs needs a non-empty prefix and non-empty suffixes".into(),
            ));
        }
        let w = suffixes.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = prefix.cache.repeat_batch(b)?;

        let mut ids = Vec::with_capacity(b * w);
        let mut key_valid = Vec::with_capacity(b);
        let mut positions = Vec::with_capacity(b);
        for s in suffixes {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(0, w - s.len()));
            let mut valid = vec![true; p + s.len()];
            valid.extend(std::iter::repeat_n(false, w - s.len()));
            key_valid.push(valid);
            // Right padding: real tokens take positions p.., pads never precede a real token.
            positions.push((p as u32..(p + w) as u32).collect::<Vec<_>>());
        }
        let ids = Tensor::from_vec(ids, (b, w), &self.device)?;
        let frame = self.frame(&positions, &key_valid, p)?;
        let hidden_s = self.run(&ids, &frame, Some(&mut cache), Kernels::Differentiable)?;

        // Token j of a suffix is predicted by the hidden state just before it: the prefix's last
        // position for j = 0, the suffix's position j-1 otherwise.
        let h = self.config.hidden_size;
        let last = prefix.last_hidden.broadcast_as((b, 1, h))?;
        let before = if w > 1 {
            Tensor::cat(&[&last, &hidden_s.narrow(1, 0, w - 1)?], 1)?
        } else {
            last.contiguous()?
        };
        let logprobs = match at {
            None => self.logprobs_of(&before, &ids, chunk)?,
            Some([]) => Tensor::zeros(0, self.dtype, &self.device)?,
            Some(at) => {
                if let Some(&bad) = at.iter().find(|&&i| i as usize >= b * w) {
                    return Err(Error::InvalidInput(format!(
                        "log-probability index {bad} outside [{b}, {w}]"
                    )));
                }
                let index = Tensor::new(at, &self.device)?;
                let before = before.reshape((b * w, h))?.index_select(&index, 0)?;
                let targets = ids.flatten_all()?.index_select(&index, 0)?;
                self.logprobs_of(&before, &targets, chunk)?
            }
        };
        Ok(Continued {
            cache,
            hidden: hidden_s,
            logprobs,
        })
    }

    /// `log softmax(hidden @ lm_head^T)[target]` row by row, for hidden `[.., h]` and targets of
    /// the same leading shape; returns a flat `[n]` tensor. Chunked over rows (see
    /// [`Model::token_logprobs`]).
    pub fn logprobs_of(&self, hidden: &Tensor, targets: &Tensor, chunk: usize) -> Result<Tensor> {
        let h = hidden.dim(D::Minus1)?;
        let n = hidden.elem_count() / h.max(1);
        if targets.elem_count() != n {
            return Err(Error::InvalidInput(format!(
                "{} targets for {n} hidden states",
                targets.elem_count()
            )));
        }
        let hidden = hidden.reshape((n, h))?;
        let targets = targets.reshape(n)?;
        crate::kernels::token_logprobs::chunked_logprobs(&hidden, &self.lm_head, &targets, chunk)
    }

    /// One incremental step for generation: runs `ids` (`[b, t]`) after the positions in `cache`,
    /// appends their keys and values, and returns the logits of the last new position, `[b, vocab]`.
    ///
    /// `positions[i]` are the position ids of row i's new tokens; `key_valid[i]` has one entry
    /// per key (cached and new) saying whether it is a real token (false = padding).
    /// Not differentiable: it uses candle's fused norm and softmax kernels, which are faster for
    /// sampling but pass no gradient.
    pub fn forward_step(
        &self,
        ids: &Tensor,
        positions: &[Vec<u32>],
        key_valid: &[Vec<bool>],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if b == 0 || t == 0 {
            return Err(Error::InvalidInput(
                "forward_step needs at least one new token".into(),
            ));
        }
        let past = cache.len();
        check_mask(key_valid, b, past + t)?;
        if positions.len() != b || positions.iter().any(|p| p.len() != t) {
            return Err(Error::InvalidInput("positions do not match ids".into()));
        }
        if cache.layers.len() != self.layers.len() {
            return Err(Error::InvalidInput("cache built for another model".into()));
        }
        let frame = self.frame(positions, key_valid, past)?;
        let hidden = self.run(ids, &frame, Some(cache), Kernels::Fused)?;
        let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?.contiguous()?;
        Ok(project(&last, &self.lm_head.detach(), Kernels::Fused)?.contiguous()?)
    }

    fn frame(&self, positions: &[Vec<u32>], key_valid: &[Vec<bool>], past: usize) -> Result<Frame> {
        let b = positions.len();
        let t = positions.first().map_or(0, |p| p.len());
        let total = past + t;
        let half = self.config.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / (self.config.rope_theta as f32)
                    .powf(2.0 * i as f32 / self.config.head_dim as f32)
            })
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), &self.device)?;
        let pos: Vec<f32> = positions.iter().flatten().map(|&p| p as f32).collect();
        let pos = Tensor::from_vec(pos, (b * t, 1), &self.device)?;
        // f32 angles, as HF computes them, then cast: keeps results equal for f32 and f64 models.
        let angles = pos.broadcast_mul(&inv_freq)?;
        let cos = angles.cos()?.to_dtype(self.dtype)?.reshape((b, t, half))?;
        let sin = angles.sin()?.to_dtype(self.dtype)?.reshape((b, t, half))?;
        let mut mask = Vec::with_capacity(b * t * total);
        for row in key_valid {
            for i in 0..t {
                for (j, &ok) in row.iter().enumerate() {
                    let allowed = ok && j <= past + i;
                    mask.push(if allowed { 0.0f32 } else { MASK_VALUE as f32 });
                }
            }
        }
        let mask_cpu =
            (t <= crate::kernels::decode_attention::MAX_NEW).then(|| Arc::new(mask.clone()));
        let mask = Tensor::from_vec(mask, (b, t, total), &self.device)?.to_dtype(self.dtype)?;
        Ok(Frame {
            rope: crate::kernels::rotary_heads::RopeTables::new(cos, sin)?,
            mask,
            mask_cpu,
        })
    }

    fn run(
        &self,
        ids: &Tensor,
        frame: &Frame,
        mut cache: Option<&mut KvCache>,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let c = &self.config;
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        if t > 0 && b > 0 {
            let max_id = flat.max(0)?.to_scalar::<u32>()? as usize;
            if max_id >= c.vocab_size {
                return Err(Error::InvalidInput(format!(
                    "token id {max_id} outside the vocabulary ({})",
                    c.vocab_size
                )));
            }
        }
        // Sampling runs on detached views of the weights: the weights are variables, and with
        // them every activation of the pass would be kept for a backward that never comes.
        let fused = kernels == Kernels::Fused;
        let frozen = if fused {
            self.layers.len()
        } else {
            self.frozen_layers
        };
        let embed = if fused || frozen > 0 {
            self.embed.detach()
        } else {
            self.embed.clone()
        };
        // Hidden states stay token-major and 2-D, `[b*t, hidden]`, until the end.
        let mut x = embed.index_select(&flat, 0)?;
        let rep = c.num_heads / c.num_kv_heads;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let shared = cache.as_deref().map_or(0, |c| c.shared);
        for (li, layer) in self.layers.iter().enumerate() {
            let detached;
            let layer = if li < frozen {
                detached = layer.detached();
                &detached
            } else {
                layer
            };
            let h = norm(&x, &layer.input_norm, c.rms_norm_eps, kernels)?;
            let rope = Some(&frame.rope);
            let q = crate::kernels::rotary_heads::to_heads(
                &layer.q.forward(&h, kernels)?,
                (b, t, c.num_heads, c.head_dim),
                rope,
            )?;
            let k = crate::kernels::rotary_heads::to_heads(
                &layer.k.forward(&h, kernels)?,
                (b, t, c.num_kv_heads, c.head_dim),
                rope,
            )?;
            let v = crate::kernels::rotary_heads::to_heads(
                &layer.v.forward(&h, kernels)?,
                (b, t, c.num_kv_heads, c.head_dim),
                None,
            )?;
            let (k, v) = match cache.as_deref_mut() {
                Some(cache) => LayerCache::append(&mut cache.layers[li], k, v, fused)?,
                None => (k, v),
            };
            let total = k.dim(2)?;
            // Grouped-query attention without copying keys: the `rep` query heads that share a
            // key/value head are stacked along the time axis of one matmul.
            let q = q.reshape((b, c.num_kv_heads, rep * t, c.head_dim))?;
            let decode_mask = match (kernels, &frame.mask_cpu) {
                (Kernels::Fused, Some(mask))
                    if crate::kernels::decode_attention::applies(&q, t) =>
                {
                    Some(mask)
                }
                _ => None,
            };
            let heads = match decode_mask {
                Some(mask) => crate::kernels::decode_attention::attention(
                    &q,
                    &k,
                    &v,
                    mask.clone(),
                    t,
                    scale,
                    shared,
                )?,
                None => match kernels {
                    Kernels::Differentiable => {
                        crate::kernels::attention::attention(&q, &k, &v, &frame.mask, scale)?
                    }
                    Kernels::Fused => {
                        let scores = q.matmul(&k.t()?)?.reshape((b, c.num_heads, t, total))?;
                        crate::kernels::softmax::masked_softmax_inference(
                            &scores,
                            &frame.mask,
                            scale,
                        )?
                        .reshape((b, c.num_kv_heads, rep * t, total))?
                        .matmul(&v)?
                    }
                },
            };
            let attn = crate::kernels::rotary_heads::from_heads(&heads.reshape((
                b,
                c.num_heads,
                t,
                c.head_dim,
            ))?)?;
            x = (x + layer.o.forward(&attn, kernels)?)?;
            x = mlp_block(&x, layer, c.rms_norm_eps, kernels)?;
        }
        let final_norm = if fused {
            self.norm.detach()
        } else {
            self.norm.clone()
        };
        Ok(norm(&x, &final_norm, c.rms_norm_eps, kernels)?.reshape((b, t, c.hidden_size))?)
    }
}

/// The feed-forward half of a layer, residual included: `x + down(swiglu(gate, up)(norm(x)))`.
fn mlp_block(x: &Tensor, layer: &Layer, eps: f64, kernels: Kernels) -> Result<Tensor> {
    let h = norm(x, &layer.post_norm, eps, kernels)?;
    let (gate, up) = (
        layer.gate.forward(&h, kernels)?,
        layer.up.forward(&h, kernels)?,
    );
    let mlp = match kernels {
        Kernels::Differentiable => crate::kernels::swiglu::swiglu(&gate, &up)?,
        Kernels::Fused => crate::kernels::swiglu::swiglu_inference(&gate, &up)?,
    };
    Ok((x + layer.down.forward(&mlp, kernels)?)?)
}

fn check_mask(mask: &[Vec<bool>], b: usize, t: usize) -> Result<()> {
    if mask.len() != b || mask.iter().any(|r| r.len() != t) {
        return Err(Error::InvalidInput(format!(
            "attention mask must be {b} rows of {t} entries"
        )));
    }
    Ok(())
}

/// Position ids that count only real tokens (HF: `cumsum(mask) - 1`, padding at 0), starting
/// after `offset` real tokens.
fn positions_of(valid: &[bool], offset: u32) -> Vec<u32> {
    let mut next = offset;
    valid
        .iter()
        .map(|&ok| {
            if ok {
                next += 1;
                next - 1
            } else {
                0
            }
        })
        .collect()
}

/// Random weights with HF names for `config`, f32 on the CPU, reproducible from `seed`.
pub fn random_weights(config: &ModelConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let c = config;
    let mut w = HashMap::new();
    let mut rng = SplitMix64(seed);
    let mut randn = |shape: &[usize]| -> candle_core::Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| (rng.next_normal() * 0.02) as f32).collect();
        Tensor::from_vec(data, shape, &Device::Cpu)
    };
    let (h, hd) = (c.hidden_size, c.head_dim);
    w.insert(
        "model.embed_tokens.weight".to_string(),
        randn(&[c.vocab_size, h])?,
    );
    for i in 0..c.num_layers {
        let p = format!("model.layers.{i}");
        let shapes = [
            ("self_attn.q_proj", c.num_heads * hd, h),
            ("self_attn.k_proj", c.num_kv_heads * hd, h),
            ("self_attn.v_proj", c.num_kv_heads * hd, h),
            ("self_attn.o_proj", h, c.num_heads * hd),
            ("mlp.gate_proj", c.intermediate_size, h),
            ("mlp.up_proj", c.intermediate_size, h),
            ("mlp.down_proj", h, c.intermediate_size),
        ];
        for (name, out, inp) in shapes {
            w.insert(format!("{p}.{name}.weight"), randn(&[out, inp])?);
            if c.attention_bias
                && matches!(
                    name,
                    "self_attn.q_proj" | "self_attn.k_proj" | "self_attn.v_proj"
                )
            {
                w.insert(format!("{p}.{name}.bias"), randn(&[out])?);
            }
        }
        // Norm weights near 1 but not exactly, so tests see their gradients matter.
        w.insert(format!("{p}.input_layernorm.weight"), (randn(&[h])? + 1.0)?);
        w.insert(
            format!("{p}.post_attention_layernorm.weight"),
            (randn(&[h])? + 1.0)?,
        );
    }
    w.insert("model.norm.weight".to_string(), (randn(&[h])? + 1.0)?);
    if !c.tie_word_embeddings {
        w.insert("lm_head.weight".to_string(), randn(&[c.vocab_size, h])?);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-layer batch-1 cache whose keys are `keys` (`[heads][positions][d]`) and whose
    /// values are the keys negated.
    fn cache(keys: &[Vec<Vec<f32>>]) -> KvCache {
        let (heads, len, d) = (keys.len(), keys[0].len(), keys[0][0].len());
        let flat: Vec<f32> = keys.iter().flatten().flatten().copied().collect();
        let k = Tensor::from_vec(flat, (1, heads, len, d), &Device::Cpu).unwrap();
        let v = k.neg().unwrap();
        KvCache {
            layers: vec![Some(LayerCache { k, v, spare: None })],
            shared: 0,
        }
    }

    #[test]
    fn restack_lays_rows_out_and_shares_only_equal_bits() {
        let row = |x: f32, n: usize| -> Vec<Vec<Vec<f32>>> {
            (0..2)
                .map(|h| (0..n).map(|p| vec![h as f32, p as f32, x]).collect())
                .collect()
        };
        // Row a: 5 positions; row b: 4, the same as a's at positions 0 and 1 only (its x
        // differs from position 2 on).
        let a = cache(&row(1.0, 5));
        let mut keys_b = row(1.0, 4);
        for head in &mut keys_b {
            for position in &mut head[2..4] {
                position[2] = 2.0;
            }
        }
        let b = cache(&keys_b);
        let keep_a: Vec<u32> = (0..5).collect();
        let keep_b: Vec<u32> = vec![0, 1, 2, 3];
        let rows = [
            RestackRow {
                cache: &a,
                row: 0,
                keep: &keep_a,
            },
            RestackRow {
                cache: &b,
                row: 0,
                keep: &keep_b,
            },
        ];
        let stacked = KvCache::restack(&rows, 3, 2).unwrap();
        assert_eq!(
            stacked.shared, 2,
            "position 2 differs, so only 2 are shared"
        );
        assert_eq!(stacked.len(), 5);
        let layer = stacked.layers[0].as_ref().unwrap();
        let (bb, hh, tt, dd) = layer.k.dims4().unwrap();
        let flat = layer.k.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let k: Vec<Vec<Vec<Vec<f32>>>> = (0..bb)
            .map(|x| {
                (0..hh)
                    .map(|h| {
                        (0..tt)
                            .map(|t| flat[((x * hh + h) * tt + t) * dd..][..dd].to_vec())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        // Row 0 is a as it was; row 1 is b's 3 shared positions, one position of padding,
        // then its own last position.
        assert_eq!(k[0], row(1.0, 5));
        for h in 0..2 {
            assert_eq!(&k[1][h][..3], &keys_b[h][..3]);
            assert_eq!(k[1][h][3], vec![0.0; 3]);
            assert_eq!(k[1][h][4], keys_b[h][3]);
        }
        let v = layer.v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let k_flat = layer.k.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().zip(&k_flat).all(|(v, k)| *v == -*k));
        // Spare capacity to append into.
        let (spare_k, _) = layer.spare.as_ref().unwrap();
        assert_eq!(spare_k.dim(2).unwrap(), 5 + KV_SPARE);
        // A row that does not fit is an error, not a panic.
        let too_many: Vec<u32> = (0..5).collect();
        let bad = [RestackRow {
            cache: &b,
            row: 0,
            keep: &too_many,
        }];
        assert!(KvCache::restack(&bad, 3, 2).is_err());
    }

    /// A row written into a slot in place, and a batch shrunk by moving its last rows into freed
    /// slots, hold what restacking the rows would give them, to the bit.
    #[test]
    fn rows_written_in_place_match_a_restack() {
        // Every row's first 3 positions have the same bits; its own positions differ by `x`.
        let row = |x: f32, n: usize| -> Vec<Vec<Vec<f32>>> {
            (0..2)
                .map(|h| {
                    (0..n)
                        .map(|p| vec![h as f32, p as f32, if p < 3 { 0.0 } else { x }])
                        .collect()
                })
                .collect()
        };
        let (a, b, c, d) = (
            cache(&row(1.0, 7)),
            cache(&row(2.0, 5)),
            cache(&row(3.0, 6)),
            cache(&row(4.0, 4)),
        );
        // e's position 1 differs from every other row's.
        let mut keys_e = row(5.0, 6);
        for head in &mut keys_e {
            head[1][2] = 9.0;
        }
        let e = cache(&keys_e);
        let all = |c: &KvCache| -> Vec<u32> { (0..c.len() as u32).collect() };
        let restack = |rows: &[&KvCache]| -> KvCache {
            let keeps: Vec<Vec<u32>> = rows.iter().map(|c| all(c)).collect();
            let rows: Vec<RestackRow<'_>> = rows
                .iter()
                .zip(&keeps)
                .map(|(cache, keep)| RestackRow {
                    cache,
                    row: 0,
                    keep,
                })
                .collect();
            KvCache::restack(&rows, 3, 4).unwrap()
        };
        let contents = |c: &KvCache| -> Vec<Vec<f32>> {
            c.layers
                .iter()
                .flatten()
                .flat_map(|l| [&l.k, &l.v])
                .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect()
        };
        let mut batch = restack(&[&a, &b, &c]);
        assert_eq!((batch.shared, batch.len()), (3, 7));
        batch.place_row(1, &d, 0, &all(&d), 3).unwrap();
        assert_eq!(contents(&batch), contents(&restack(&[&a, &d, &c])));
        assert_eq!(batch.shared, 3);
        // Into slot 0, whose shared positions decoding reads for every row: shared falls to 1.
        batch.place_row(0, &e, 0, &all(&e), 3).unwrap();
        let expected = restack(&[&e, &d, &c]);
        assert_eq!(contents(&batch), contents(&expected));
        assert_eq!((batch.shared, expected.shared), (1, 1));
        // The batch shrinks to two slots, c moving into slot 0, and appends in place.
        batch.move_row(2, 0).unwrap();
        batch.keep_slots(2).unwrap();
        assert_eq!(contents(&batch), contents(&restack(&[&c, &d])));
        let new = Tensor::ones((2, 2, 1, 3), DType::F32, &Device::Cpu).unwrap();
        LayerCache::append(&mut batch.layers[0], new.clone(), new, true).unwrap();
        let layer = batch.layers[0].as_ref().unwrap();
        let (spare_k, _) = layer.spare.as_ref().unwrap();
        assert_eq!(spare_k.dims(), [2, 2, 7 + KV_SPARE, 3], "appended in place");
        let expected = restack(&[&c, &d]).layers[0].as_ref().unwrap().k.clone();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(layer.k.narrow(2, 0, 7).unwrap()), flat(expected));
        assert_eq!(flat(layer.k.narrow(2, 7, 1).unwrap()), vec![1.0; 12]);
        // A row longer than the batch is an error, and the batch is left as it was.
        let before = contents(&batch);
        let long = cache(&row(6.0, 9));
        assert!(batch.place_row(1, &long, 0, &all(&long), 3).is_err());
        assert_eq!(contents(&batch), before);
    }

    #[test]
    fn a_selected_row_holds_its_kept_positions_and_appends_in_place() {
        let keys: Vec<Vec<Vec<f32>>> = (0..2)
            .map(|h| (0..6).map(|p| vec![h as f32, p as f32]).collect())
            .collect();
        let batch = cache(&keys);
        let keep = [0u32, 2, 3, 5];
        let mut row = batch.select_row(0, &keep).unwrap();
        assert_eq!((row.len(), row.shared), (4, 0));
        let layer = row.layers[0].as_ref().unwrap();
        let k = layer.k.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = keys
            .iter()
            .flat_map(|head| keep.iter().flat_map(|&p| head[p as usize].clone()))
            .collect();
        assert_eq!(k, want);
        let v = layer.v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().zip(&k).all(|(v, k)| *v == -*k));
        // The next append writes into the row's own spare capacity (seen through a handle on
        // that buffer), not into a new buffer.
        let (spare, _) = layer.spare.clone().unwrap();
        let new = Tensor::ones((1, 2, 1, 2), DType::F32, &Device::Cpu).unwrap();
        let (k, _) =
            LayerCache::append(&mut row.layers[0], new.clone(), new.neg().unwrap(), true).unwrap();
        assert_eq!(k.dim(2).unwrap(), 5);
        let written = spare.narrow(2, 4, 1).unwrap().flatten_all().unwrap();
        assert_eq!(written.to_vec1::<f32>().unwrap(), vec![1.0; 4]);
    }
}

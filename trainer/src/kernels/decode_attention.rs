//! Attention of a few new positions over a KV cache: the attention of KV-cached decoding.
//!
//! candle's batched matmul runs one packed GEMM per (row, key/value head), each behind a thread
//! barrier: decoding 8 rows with SmolLM2's 3 key/value heads and 30 layers is 1,440 tiny GEMMs
//! per step, and at 700 cached positions they made a decoding step 2.4x slower than at 16 (143
//! against 60 ms in the model bench). Here each (row, key/value head) is one rayon task that
//! reads its keys and values once for every query head sharing them (grouped-query attention):
//! scores, the masked softmax and the weighted sum of values in one pass, the cache read in
//! place from its (strided) buffer. Inference only: it has no backward.
//!
//! It computes what the composed ops compute, `softmax(q k^T * scale + mask) v` in f32 with the
//! maximum subtracted, so a masked key (an additive mask of -1e9) contributes exactly zero and a
//! query whose keys are all masked gets the same uniform average.
//!
//! Rows that begin with the same positions (the system prompt every episode of a batch starts
//! with) read those keys and values from row 0 only: at 16 rows of ~700 cached positions, of which
//! ~500 are the shared prompt, each row's own copy streamed from memory at every step was most
//! of what decoding's attention read, while one copy stays in the core's cache across the rows.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernels::custom_op::Strided;

/// Most new positions per row the kernel takes; longer prefills are GEMM-shaped.
pub const MAX_NEW: usize = 4;

/// Whether [`attention`] applies: CPU f32 operands and at most [`MAX_NEW`] new positions.
pub fn applies(q: &Tensor, t: usize) -> bool {
    q.device().is_cpu() && q.dtype() == DType::F32 && t <= MAX_NEW
}

/// `softmax(q k^T * scale + mask) v` per (row, key/value head).
///
/// `q` is `[b, kv_heads, rep * t, d]` (the `rep` query heads of a key/value head stacked, each
/// `t` positions long), `k` and `v` are `[b, kv_heads, total, d]` with the last dimension
/// contiguous (views into a cache's buffers are fine), `mask` is the additive `[b, t, total]`
/// mask, row-major. The first `shared` positions hold the same keys and values in every row, and
/// row 0's are read for all (0: none shared). Returns `[b, kv_heads, rep * t, d]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Arc<Vec<f32>>,
    t: usize,
    scale: f64,
    shared: usize,
) -> Result<Tensor> {
    let (b, heads, rows, d) = q.dims4()?;
    let (kb, kh, total, kd) = k.dims4()?;
    if (kb, kh, kd) != (b, heads, d)
        || v.dims() != k.dims()
        || t == 0
        || rows % t != 0
        || mask.len() != b * t * total
        || shared > total
        || !applies(q, t)
    {
        return Err(Error::InvalidInput(format!(
            "decode attention: q {:?}, k {:?}, v {:?}, {} mask entries for {t} new positions, \
             {shared} shared",
            q.dims(),
            k.dims(),
            v.dims(),
            mask.len()
        )));
    }
    let op = DecodeAttention {
        mask,
        t,
        scale: scale as f32,
        shared,
    };
    Ok(q.contiguous()?.apply_op3_no_bwd(k, v, &op)?)
}

struct DecodeAttention {
    mask: Arc<Vec<f32>>,
    t: usize,
    scale: f32,
    shared: usize,
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (sq, sk, sv) else {
            candle_core::bail!("decode attention: f32 operands only");
        };
        let Some((q0, _)) = lq.contiguous_offsets() else {
            candle_core::bail!("decode attention: q must be contiguous");
        };
        let (b, heads, rows, d) = lq.shape().dims4()?;
        let total = lk.shape().dims4()?.2;
        let (ks, vs) = (
            Strided::of(lk, "decode attention")?,
            Strided::of(lv, "decode attention")?,
        );
        let (t, scale, mask, shared) = (self.t, self.scale, self.mask.as_slice(), self.shared);
        let mut out = vec![0f32; b * heads * rows * d];
        let dims = Dims {
            heads,
            rows,
            d,
            total,
            t,
            shared,
            registers: registers_apply(d),
        };
        attend(&q[q0..], k, ks, v, vs, mask, scale, dims, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((b, heads, rows, d))))
    }
}

/// The sizes [`attend`] works with.
#[derive(Clone, Copy)]
struct Dims {
    heads: usize,
    rows: usize,
    d: usize,
    total: usize,
    t: usize,
    shared: usize,
    /// Whether each task runs as `decode_attention_avx512` writes it (same bits, faster).
    registers: bool,
}

/// Whether this CPU runs the AVX-512 form of a task for head size `d`.
fn registers_apply(d: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::kernels::decode_attention_avx512::applies(d)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = d;
        false
    }
}

/// The kernel: one rayon task per (row, key/value head), compiled for the widest SIMD the CPU
/// has (the closures inherit the clone's target features).
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f", "x86_64+avx2"))]
fn attend(
    q: &[f32],
    k: &[f32],
    ks: Strided,
    v: &[f32],
    vs: Strided,
    mask: &[f32],
    scale: f32,
    dims: Dims,
    out: &mut [f32],
) {
    let Dims {
        heads,
        rows,
        d,
        total,
        t,
        shared,
        registers,
    } = dims;
    out.par_chunks_mut(rows * d)
        .enumerate()
        .for_each(|(task, out)| {
            let (bi, hi) = (task / heads, task % heads);
            let from = |j: usize| if j < shared { 0 } else { bi };
            let q = &q[task * rows * d..(task + 1) * rows * d];
            // scores[r * total + j] for query row r (head r / t, position r % t).
            let mut scores = vec![0f32; rows * total];
            let key = |j: usize| &k[ks.at(from(j), hi, j)..ks.at(from(j), hi, j) + d];
            #[cfg(target_arch = "x86_64")]
            if registers {
                let value = |j: usize| &v[vs.at(from(j), hi, j)..vs.at(from(j), hi, j) + d];
                let task = crate::kernels::decode_attention_avx512::Task {
                    q,
                    keys: &key,
                    values: &value,
                    mask: &mask[bi * t * total..(bi + 1) * t * total],
                    t,
                    scale,
                    rows,
                    d,
                    total,
                };
                crate::kernels::decode_attention_avx512::run(&task, &mut scores, out);
                return;
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = registers;
            let mut j = 0;
            while j < total {
                // KEYS keys at a time: their dot products are independent chains. A short last
                // block repeats its last key; the extra dots are not stored.
                let n = KEYS.min(total - j);
                let keys: [&[f32]; KEYS] = std::array::from_fn(|i| key(j + i.min(n - 1)));
                for r in 0..rows {
                    let dots = dots(&q[r * d..(r + 1) * d], &keys);
                    let mask = &mask[(bi * t + r % t) * total + j..][..n];
                    for ((s, dot), m) in scores[r * total + j..][..n].iter_mut().zip(dots).zip(mask)
                    {
                        *s = dot * scale + m;
                    }
                }
                j += n;
            }
            crate::kernels::custom_op::softmax_rows_in_place(&mut scores, total);
            for j in 0..total {
                let vj = &v[vs.at(from(j), hi, j)..vs.at(from(j), hi, j) + d];
                for r in 0..rows {
                    let p = scores[r * total + j];
                    if p == 0.0 {
                        continue;
                    }
                    let o = &mut out[r * d..(r + 1) * d];
                    o.iter_mut().zip(vj).for_each(|(o, v)| *o += p * v);
                }
            }
        });
}

/// Keys whose scores one pass computes.
const KEYS: usize = 8;

/// `a . b` for each `b` of `keys`, each summed as [`dot`] sums it: eight partial sums over the
/// vectors in order, added up lane by lane from the first, then the scalar tail. The keys' sums
/// are independent chains the core overlaps, and the lane sums run across keys.
#[inline(always)]
fn dots(a: &[f32], keys: &[&[f32]; KEYS]) -> [f32; KEYS] {
    const LANES: usize = 8;
    let split = a.len() / LANES * LANES;
    let mut acc = [[0f32; LANES]; KEYS];
    for c in (0..split).step_by(LANES) {
        let x = &a[c..c + LANES];
        for (acc, key) in acc.iter_mut().zip(keys) {
            let y = &key[c..c + LANES];
            for l in 0..LANES {
                acc[l] += x[l] * y[l];
            }
        }
    }
    // `[f32]::sum` starts from -0.0, which adds exactly.
    let mut out = [-0.0f32; KEYS];
    for l in 0..LANES {
        for (o, acc) in out.iter_mut().zip(&acc) {
            *o += acc[l];
        }
    }
    for (o, key) in out.iter_mut().zip(keys) {
        let tail: f32 = a[split..]
            .iter()
            .zip(&key[split..])
            .map(|(x, y)| x * y)
            .sum();
        *o += tail;
    }
    out
}

#[cfg(test)]
/// `a . b` with eight independent partial sums, the order [`dots`] keeps.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0f32; LANES];
    let (ac, ar) = a.split_at(a.len() / LANES * LANES);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(LANES).zip(bc.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reproducible floats in `[-range, range] / 1000`, and now and then (one in `zeros`) an
    /// exact zero of either sign, the case where a sum's start matters.
    fn floats(seed: u64, zeros: u64, range: u64) -> impl FnMut() -> f32 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            match state % zeros {
                0 => 0.0,
                1 => -0.0,
                _ => ((state % (2 * range + 1)) as f32 - range as f32) / 1000.0,
            }
        }
    }

    #[test]
    fn dots_of_several_keys_have_the_bits_of_one_at_a_time() {
        let mut next = floats(0x2545_f491_4f6c_dd1d, 17, 1000);
        for d in [64, 37, 8, 3, 0] {
            for _ in 0..50 {
                let a: Vec<f32> = (0..d).map(|_| next()).collect();
                let keys: Vec<Vec<f32>> = (0..KEYS)
                    .map(|_| (0..d).map(|_| next()).collect())
                    .collect();
                let refs: [&[f32]; KEYS] = std::array::from_fn(|i| keys[i].as_slice());
                let got = dots(&a, &refs);
                for (i, key) in keys.iter().enumerate() {
                    assert_eq!(got[i].to_bits(), dot(&a, key).to_bits(), "d {d}, key {i}");
                }
            }
        }
    }

    /// The AVX-512 form of a task gives the portable loop's bits: head sizes 64 and 128, one to
    /// four new positions, short and long caches (a last block of fewer than eight keys),
    /// shared positions, left padding, fully masked rows, and keys and values in strided
    /// buffers with exact zeros among them.
    #[test]
    fn the_register_form_has_the_bits_of_the_portable_loop() {
        let d_ok = [64usize, 128];
        if !d_ok.iter().all(|&d| registers_apply(d)) {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        let mut next = floats(0x9e37_79b9_7f4a_7c15, 23, 2000);
        for d in d_ok {
            for t in 1..=MAX_NEW {
                for (total, shared) in [(1, 0), (7, 0), (8, 3), (9, 0), (37, 20), (301, 250)] {
                    if total < t {
                        continue;
                    }
                    let (b, heads, rep, cap) = (3, 2, 3, 311);
                    let rows = rep * t;
                    let q: Vec<f32> = (0..b * heads * rows * d).map(|_| next()).collect();
                    let k: Vec<f32> = (0..b * heads * cap * d).map(|_| next()).collect();
                    let v: Vec<f32> = (0..b * heads * cap * d).map(|_| next()).collect();
                    let strided = Strided {
                        start: 5 * d,
                        b: heads * cap * d,
                        head: cap * d,
                        pos: d,
                    };
                    let mut mask = Vec::new();
                    for bi in 0..b {
                        for i in 0..t {
                            for j in 0..total {
                                let blocked = (bi == 1 && j >= shared && j < shared + 3)
                                    || j > total - t + i
                                    || (bi == 2 && i == t - 1 && t > 1);
                                mask.push(if blocked { -1e9f32 } else { 0.0 });
                            }
                        }
                    }
                    let run = |registers: bool| {
                        let mut out = vec![0f32; b * heads * rows * d];
                        let dims = Dims {
                            heads,
                            rows,
                            d,
                            total,
                            t,
                            shared,
                            registers,
                        };
                        attend(&q, &k, strided, &v, strided, &mask, 0.125, dims, &mut out);
                        out
                    };
                    let (portable, registers) = (run(false), run(true));
                    for (i, (a, b)) in portable.iter().zip(&registers).enumerate() {
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "d {d}, t {t}, total {total}, shared {shared}, element {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// The largest absolute difference between two tensors of one shape.
    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The composed ops the kernel replaces, as the decoder runs them.
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Tensor {
        let (b, heads, rows, _) = q.dims4().unwrap();
        let t = mask.dim(1).unwrap();
        let total = k.dim(2).unwrap();
        let rep = rows / t;
        let scores = q.matmul(&k.t().unwrap()).unwrap();
        let x = (scores.reshape((b, heads * rep, t, total)).unwrap() * scale)
            .unwrap()
            .broadcast_add(&mask.unsqueeze(1).unwrap())
            .unwrap();
        let p = candle_nn::ops::softmax_last_dim(&x)
            .unwrap()
            .reshape((b, heads, rows, total))
            .unwrap();
        p.matmul(&v.contiguous().unwrap()).unwrap()
    }

    #[test]
    fn equals_the_composed_ops_on_a_strided_cache_with_masked_keys() {
        let dev = Device::Cpu;
        let (b, heads, rep, t, d, total, cap) = (3, 2, 3, 2, 16, 37, 50);
        let q = Tensor::randn(0f32, 1.0, (b, heads, rep * t, d), &dev).unwrap();
        // The cache as the decoder keeps it: views of the first `total` positions of a buffer.
        let kbuf = Tensor::randn(0f32, 1.0, (b, heads, cap, d), &dev).unwrap();
        let vbuf = Tensor::randn(0f32, 1.0, (b, heads, cap, d), &dev).unwrap();
        let k = kbuf.narrow(2, 0, total).unwrap();
        let v = vbuf.narrow(2, 0, total).unwrap();
        let mut mask = Vec::new();
        for bi in 0..b {
            for i in 0..t {
                for j in 0..total {
                    // Left padding on row 1, causality for the new positions, and row 2's
                    // second position sees nothing at all (the uniform case).
                    let blocked = (bi == 1 && j < 5) || j > total - t + i || (bi == 2 && i == 1);
                    mask.push(if blocked { -1e9f32 } else { 0.0 });
                }
            }
        }
        let mask_t = Tensor::from_vec(mask.clone(), (b, t, total), &dev).unwrap();
        let want = composed(&q, &k, &v, &mask_t, 0.125);
        let got = attention(&q, &k, &v, Arc::new(mask), t, 0.125, 0).unwrap();
        let diff = max_difference(&want, &got);
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn reads_the_shared_positions_from_row_zero() {
        let dev = Device::Cpu;
        let (b, heads, rep, d, total, shared) = (4, 3, 3, 8, 29, 17);
        let q = Tensor::randn(0f32, 1.0, (b, heads, rep, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (b, heads, total, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (b, heads, total, d), &dev).unwrap();
        // What the rows mean: row 0's first `shared` positions in every row, then their own.
        let with_row0_prefix = |t: &Tensor| {
            let prefix = t.narrow(0, 0, 1).unwrap().narrow(2, 0, shared).unwrap();
            let prefix = prefix.broadcast_as((b, heads, shared, d)).unwrap();
            let own = t.narrow(2, shared, total - shared).unwrap();
            Tensor::cat(&[&prefix.contiguous().unwrap(), &own], 2).unwrap()
        };
        // Row 3 pads two of its own positions.
        let mut mask = vec![0f32; b * total];
        mask[3 * total + shared] = -1e9;
        mask[3 * total + shared + 1] = -1e9;
        let mask_t = Tensor::from_vec(mask.clone(), (b, 1, total), &dev).unwrap();
        let want = composed(
            &q,
            &with_row0_prefix(&k),
            &with_row0_prefix(&v),
            &mask_t,
            0.3,
        );
        // The other rows' copies of the prefix are never read: here they differ from row 0's.
        let got = attention(&q, &k, &v, Arc::new(mask), 1, 0.3, shared).unwrap();
        let diff = max_difference(&want, &got);
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn refuses_shapes_it_does_not_compute() {
        let dev = Device::Cpu;
        let q = Tensor::zeros((1, 1, 3, 4), DType::F32, &dev).unwrap();
        let k = Tensor::zeros((1, 1, 5, 4), DType::F32, &dev).unwrap();
        assert!(attention(&q, &k, &k, Arc::new(vec![0.0; 5]), 2, 1.0, 0).is_err());
        assert!(attention(&q, &k, &k, Arc::new(vec![0.0; 4]), 1, 1.0, 0).is_err());
        assert!(attention(&q, &k, &k, Arc::new(vec![0.0; 5]), 1, 1.0, 6).is_err());
    }
}

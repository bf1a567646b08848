//! `x @ w^T` for a handful of rows of `x`: the projections of KV-cached decoding.
//!
//! Decoding multiplies 1-64 activation rows (one per sequence in flight) by every weight matrix
//! of the model, so its speed is how fast the weights stream from memory. candle's GEMM packs its operands first and splits
//! the work across threads with a barrier per call; for a `[8, 1536] x [1536, 576]` product that
//! took 5x the time of a pass over the weights. This kernel reads each weight row once, straight
//! from where it lies, and multiplies it by every activation row while it is in L1, 4 weight
//! rows x 4 activation rows per tile (16 SIMD accumulators) for the FMA units' latency; output
//! rows are split across rayon's threads. SIMD width is chosen at run time by `pulp` (AVX-512
//! where the CPU has it).
//!
//! While a group of 4 weight rows is multiplied, the next group is prefetched into L2, a line
//! or two per step of the inner loop. Without it the core waited for each group's weights and
//! then computed with the memory idle: at 16 rows, a decoding step's projections (SmolLM2-135M,
//! all 211 products) took the 26 ms the weights take to stream plus the compute, 53 ms; with it
//! 36 ms. At one row, where streaming is all there is, it changes nothing.
//!
//! Every output element is summed in the same order whatever the tile or the number of rows, so
//! a sequence decodes to the same bits alone or in a batch. Inference only: it has no backward.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Most rows of `x` the kernel takes. At 32 rows it still beats GEMM, whose packing copies
/// every weight matrix per call (a decoding step after 700 cached positions: 265 against
/// 339 ms in the model bench, `BENCH_DECODE_BATCHES=32`).
pub const MAX_ROWS: usize = 64;

/// Tasks per thread: a few, so a thread that finishes early can take another.
const TASKS_PER_THREAD: usize = 4;

/// Whether [`matmul_t`] applies: a CPU f32 `x` of at most [`MAX_ROWS`] rows and a CPU f32 `w`.
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu()
        && w.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && x.rank() == 2
        && w.rank() == 2
        && x.dim(0).is_ok_and(|m| m <= MAX_ROWS)
}

/// `x @ w^T` for `x` `[m, k]` and `w` `[n, k]` (both CPU f32, `m <= MAX_ROWS`): `[m, n]`.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    let (_, k_w) = w.dims2()?;
    if k != k_w || !applies(x, w) {
        return Err(Error::InvalidInput(format!(
            "few-rows matmul: x {:?} {:?} by w {:?} {:?} (CPU f32, at most {MAX_ROWS} rows, equal inner dims)",
            x.dims(),
            x.dtype(),
            w.dims(),
            w.dtype()
        )));
    }
    if m == 0 {
        return Ok(Tensor::zeros((0, w.dim(0)?), DType::F32, x.device())?);
    }
    Ok(x.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &FewRows)?)
}

struct FewRows;

impl CustomOp2 for FewRows {
    fn name(&self) -> &'static str {
        "few-rows-matmul-t"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (Some((x0, x1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("few-rows matmul: non-contiguous input");
        };
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            candle_core::bail!("few-rows matmul: f32 inputs only");
        };
        let (m, k) = l1.shape().dims2()?;
        let (n, _) = l2.shape().dims2()?;
        let out = matmul_t_slices(&x[x0..x1], &w[w0..w1], m, k, n);
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// The kernel on plain slices: `x` `[m, k]`, `w` `[n, k]`, result `[m, n]`.
fn matmul_t_slices(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
    // A multiple of the tile height, and at least 16 rows so a task is worth its dispatch.
    let rows_per_task = n.div_ceil(tasks).next_multiple_of(4).max(16);
    let blocks: Vec<Vec<f32>> = w
        .par_chunks(rows_per_task * k.max(1))
        .map(|w_block| {
            let rows = w_block.len().checked_div(k).unwrap_or(0);
            let mut out = vec![0f32; m * rows];
            pulp::Arch::new().dispatch(Block {
                x,
                w: w_block,
                m,
                k,
                rows,
                out: &mut out,
            });
            out
        })
        .collect();
    // Each block is `[m, its rows]`; the result interleaves them row by row.
    let mut out = Vec::with_capacity(m * n);
    for r in 0..m {
        for block in &blocks {
            let rows = block.len() / m;
            out.extend_from_slice(&block[r * rows..(r + 1) * rows]);
        }
    }
    if k == 0 {
        out.resize(m * n, 0.0);
    }
    out
}

/// One task's share: `out[r, o] = x[r] . w[o]` for its `rows` weight rows.
struct Block<'a> {
    x: &'a [f32],
    w: &'a [f32],
    m: usize,
    k: usize,
    rows: usize,
    out: &'a mut [f32],
}

impl WithSimd for Block<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Block {
            x,
            w,
            m,
            k,
            rows,
            out,
        } = self;
        let tiles_per_group = m / 4 + m % 4;
        let mut o = 0;
        while o < rows {
            let height = if rows - o >= 4 { 4 } else { 1 };
            // The next group's weight rows, a share for each tile of this group to prefetch.
            let ahead = &w[((o + 4) * k).min(w.len())..((o + 8) * k).min(w.len())];
            let share = ahead
                .len()
                .div_ceil(tiles_per_group)
                .next_multiple_of(LINE)
                .max(LINE);
            let mut shares = ahead.chunks(share);
            let mut r = 0;
            while r < m {
                let width = if m - r >= 4 { 4 } else { 1 };
                let ahead = shares.next().unwrap_or(&[]);
                match (height, width) {
                    (4, 4) => tile::<S, 4, 4>(simd, x, w, k, o, r, rows, out, ahead),
                    (4, _) => tile::<S, 4, 1>(simd, x, w, k, o, r, rows, out, ahead),
                    (_, 4) => tile::<S, 1, 4>(simd, x, w, k, o, r, rows, out, ahead),
                    _ => tile::<S, 1, 1>(simd, x, w, k, o, r, rows, out, ahead),
                }
                r += width;
            }
            o += height;
        }
    }
}

/// f32s per 64-byte cache line.
const LINE: usize = 16;

/// Asks for the cache line at the start of `line` to be brought into L2. A hint: it never
/// faults, and off x86-64 it does nothing.
#[allow(unsafe_code)]
#[inline(always)]
fn prefetch(line: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        // SAFETY: prefetching reads nothing architecturally and cannot fault; the pointer is
        // into a live slice.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// `H` weight rows from `o` times `W` activation rows from `r`, into `out` (`[m, rows]`). Each
/// element: SIMD partial sums over the full vectors in order, reduced, then the scalar tail in
/// order. That order does not depend on `H` or `W`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<S: Simd, const H: usize, const W: usize>(
    simd: S,
    x: &[f32],
    w: &[f32],
    k: usize,
    o: usize,
    r: usize,
    rows: usize,
    out: &mut [f32],
    ahead: &[f32],
) {
    let w_rows: [&[f32]; H] = std::array::from_fn(|i| &w[(o + i) * k..(o + i + 1) * k]);
    let x_rows: [&[f32]; W] = std::array::from_fn(|j| &x[(r + j) * k..(r + j + 1) * k]);
    let w_simd: [(&[S::f32s], &[f32]); H] = w_rows.map(S::as_simd_f32s);
    let x_simd: [(&[S::f32s], &[f32]); W] = x_rows.map(S::as_simd_f32s);
    let mut acc = [[simd.splat_f32s(0.0); W]; H];
    let vectors = w_simd[0].0.len();
    // Spread over the loop, a line or a few per step: a burst at the start overflows the
    // core's queue of outstanding misses.
    let mut ahead = ahead.chunks(LINE);
    let per_step = ahead.len().div_ceil(vectors.max(1));
    for v in 0..vectors {
        for line in ahead.by_ref().take(per_step) {
            prefetch(line);
        }
        for i in 0..H {
            let wv = w_simd[i].0[v];
            for j in 0..W {
                acc[i][j] = simd.mul_add_e_f32s(wv, x_simd[j].0[v], acc[i][j]);
            }
        }
    }
    for i in 0..H {
        for j in 0..W {
            let mut sum = simd.reduce_sum_f32s(acc[i][j]);
            for (a, b) in w_simd[i].1.iter().zip(x_simd[j].1) {
                sum += a * b;
            }
            out[(r + j) * rows + o + i] = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn reference(x: &Tensor, w: &Tensor) -> Tensor {
        x.to_dtype(DType::F64)
            .unwrap()
            .matmul(&w.to_dtype(DType::F64).unwrap().t().unwrap())
            .unwrap()
    }

    #[test]
    fn matches_a_f64_matmul_across_tile_edges() {
        let dev = Device::Cpu;
        // Row counts around the 4x4 tile and the task split, inner sizes with and without a
        // scalar tail after the SIMD vectors.
        for (m, k, n) in [
            (1, 64, 7),
            (3, 37, 5),
            (8, 576, 300),
            (16, 1536, 513),
            (5, 3, 9),
        ] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
            let got = matmul_t(&x, &w).unwrap();
            assert_eq!(got.dims(), [m, n]);
            let diff = (got.to_dtype(DType::F64).unwrap() - reference(&x, &w))
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(diff < 1e-3 * (k as f64).sqrt(), "m={m} k={k} n={n}: {diff}");
        }
    }

    #[test]
    fn each_row_gets_the_same_bits_alone_as_in_a_batch() {
        let dev = Device::Cpu;
        let (m, k, n) = (7, 100, 261);
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let batch = matmul_t(&x, &w).unwrap().to_vec2::<f32>().unwrap();
        for (r, row) in batch.iter().enumerate() {
            let alone = matmul_t(&x.narrow(0, r, 1).unwrap(), &w)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            assert_eq!(&alone[0], row, "row {r}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((4, 8), DType::F32, &dev).unwrap();
        let many = Tensor::zeros((MAX_ROWS + 1, 8), DType::F32, &dev).unwrap();
        assert!(matmul_t(&many, &w).is_err());
        let wrong_k = Tensor::zeros((2, 9), DType::F32, &dev).unwrap();
        assert!(matmul_t(&wrong_k, &w).is_err());
        let f64s = Tensor::zeros((2, 8), DType::F64, &dev).unwrap();
        assert!(matmul_t(&f64s, &w).is_err());
    }
}

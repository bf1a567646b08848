//! Training attention, `softmax(q k^T * scale + mask) v`, as one differentiable CPU op.
//!
//! Composed of candle ops (two matmuls around [`crate::kernels::softmax::masked_softmax`]) the
//! attention of a training micro-batch is the bulk of its memory traffic: every full-size
//! `[rows, keys]` tensor is a fresh allocation faulted in page by page, and candle's backward
//! turns each gradient into a zeroed tensor plus an add, so the scores' and probabilities'
//! gradients cost three full-size passes each before any arithmetic. Here the forward writes the
//! probabilities once, into a buffer the op keeps for its backward, and the backward works in one
//! scratch buffer of that size; candle only ever sees the small `q`, `k`, `v` and their
//! gradients. The products are the GEMM candle itself runs on (`gemm`), with the transposes
//! given as strides rather than copies. Off the CPU, and for dtypes without a kernel, the
//! composed ops are used.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor, WithDType};

use crate::error::{Error, Result};
use crate::kernels::custom_op::{self, Float};

/// `softmax(q k^T * scale + mask) v` for `q` `[b, g, r*t, d]` (each of `g` key/value groups
/// stacking its `r` query heads along the time axis: row `i` is query position `i % t`), `k` and
/// `v` `[b, g, T, d]` and an additive `mask` `[b, t, T]` shared by the heads. Differentiable in
/// `q`, `k` and `v` (the mask is a constant); returns `[b, g, r*t, d]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, g, rows, d) = q.dims4()?;
    let total = k.dim(2)?;
    let t = mask.dim(1).unwrap_or(0);
    let fits = k.dims() == [b, g, total, d]
        && v.dims() == [b, g, total, d]
        && mask.dims() == [b, t, total]
        && t > 0
        && rows % t == 0;
    if !fits {
        return Err(Error::InvalidInput(format!(
            "attention: q {:?}, k {:?}, v {:?} and mask {:?} do not fit together",
            q.dims(),
            k.dims(),
            v.dims(),
            mask.dims()
        )));
    }
    let dtype = q.dtype();
    let on_cpu = [q, k, v, mask].iter().all(|x| x.device().is_cpu());
    let one_dtype = [k, v, mask].iter().all(|x| x.dtype() == dtype);
    if on_cpu && one_dtype && matches!(dtype, DType::F32 | DType::F64) {
        let op = Attention {
            mask: mask.contiguous()?,
            t,
            scale,
            probs: Mutex::new(None),
        };
        Ok(q.contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, op)?)
    } else {
        composed(q, k, v, mask, scale)
    }
}

/// The same attention from candle ops: the reference the op is tested against, and the path off
/// the CPU.
pub fn composed(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let scores = q.matmul(&k.t()?)?;
    let probs = crate::kernels::softmax::masked_softmax(&scores, mask, scale)?;
    Ok(probs.matmul(v)?)
}

struct Attention {
    mask: Tensor,
    /// Query positions per head: maps a row of a group to its mask row.
    t: usize,
    scale: f64,
    /// The forward's probabilities `[b, g, r*t, T]`, for the backward.
    probs: Mutex<Option<CpuStorage>>,
}

/// Sizes of one call: `blocks` = `b * g` independent `(rows, total)` attentions of width `d`.
#[derive(Clone, Copy)]
struct Dims {
    blocks: usize,
    groups: usize,
    rows: usize,
    total: usize,
    d: usize,
    t: usize,
}

impl Dims {
    fn of(q: &[usize], total: usize, t: usize) -> Dims {
        Dims {
            blocks: q[0] * q[1],
            groups: q[1],
            rows: q[2],
            total,
            d: q[3],
            t,
        }
    }
}

/// A matrix inside a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T> Mat<'a, T> {
    fn rows(data: &'a [T], width: usize) -> Self {
        Mat {
            data,
            rs: width,
            cs: 1,
        }
    }

    /// The transpose of the row-major `[.., width]` matrix in `data`.
    fn transposed(data: &'a [T], width: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: width,
        }
    }

    /// Whether every element of an `m x n` view lies in `data`.
    fn holds(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || (m - 1) * self.rs + (n - 1) * self.cs < self.data.len()
    }
}

/// `dst[m x n] = a[m x k] b[k x n]`, `dst` row-major, on candle's GEMM and thread pool.
#[allow(unsafe_code)]
fn matmul<T: 'static + Copy + Float>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    a: Mat<'_, T>,
    b: Mat<'_, T>,
) {
    assert!(
        dst.len() >= m * n && a.holds(m, k) && b.holds(k, n),
        "attention: matrix view out of bounds"
    );
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above keeps every element the views address inside its slice;
    // `dst` is borrowed mutably, so it aliases neither input; with `read_dst` false the old
    // contents of `dst` are not read (alpha is ignored).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A `len`-element buffer whose every element the caller overwrites before reading.
fn scratch<T: Float>(len: usize) -> Vec<T> {
    // Zero-filled rather than uninitialised (no unsafe); the fill is one pass against the
    // three a composed backward makes.
    vec![T::ZERO; len]
}

/// Forward: the probabilities `[blocks, rows, total]` and the output `[blocks, rows, d]`.
fn forward<T: 'static + Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    mask: &[T],
    dims: Dims,
    scale: T,
) -> (Vec<T>, Vec<T>) {
    let Dims {
        blocks,
        groups,
        rows,
        total,
        d,
        t,
    } = dims;
    let mut probs = scratch(blocks * rows * total);
    let mut out = scratch(blocks * rows * d);
    for block in 0..blocks {
        let p = &mut probs[block * rows * total..][..rows * total];
        let qb = &q[block * rows * d..][..rows * d];
        let kb = &k[block * total * d..][..total * d];
        let vb = &v[block * total * d..][..total * d];
        matmul(
            (rows, total, d),
            p,
            Mat::rows(qb, d),
            Mat::transposed(kb, d),
        );
        let batch = block / groups;
        custom_op::for_row_blocks(p, total, |first, chunk| {
            for (i, row) in chunk.chunks_mut(total.max(1)).enumerate() {
                let query = (first + i) % t;
                let m = &mask[(batch * t + query) * total..][..total];
                custom_op::masked_softmax_in_place(row, m, scale);
            }
        });
        matmul(
            (rows, d, total),
            &mut out[block * rows * d..][..rows * d],
            Mat::rows(p, total),
            Mat::rows(vb, d),
        );
    }
    (probs, out)
}

/// Gradients of `q`, `k` and `v` from the output's gradient `dout` and the forward's `probs`.
fn backward<T: 'static + Float>(
    (q, k, v): (&[T], &[T], &[T]),
    probs: &[T],
    dout: &[T],
    dims: Dims,
    scale: T,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let Dims {
        blocks,
        rows,
        total,
        d,
        ..
    } = dims;
    let mut dq = scratch(blocks * rows * d);
    let mut dk = scratch(blocks * total * d);
    let mut dv = scratch(blocks * total * d);
    let mut ds = scratch(rows * total);
    for block in 0..blocks {
        let p = &probs[block * rows * total..][..rows * total];
        let qb = &q[block * rows * d..][..rows * d];
        let kb = &k[block * total * d..][..total * d];
        let vb = &v[block * total * d..][..total * d];
        let gb = &dout[block * rows * d..][..rows * d];
        // dv = p^T dout
        matmul(
            (total, d, rows),
            &mut dv[block * total * d..][..total * d],
            Mat::transposed(p, total),
            Mat::rows(gb, d),
        );
        // dp = dout v^T, then ds = scale * p * (dp - sum(dp * p)) row by row, in place.
        matmul(
            (rows, total, d),
            &mut ds,
            Mat::rows(gb, d),
            Mat::transposed(vb, d),
        );
        custom_op::for_row_blocks(&mut ds, total, |first, chunk| {
            for (i, row) in chunk.chunks_mut(total.max(1)).enumerate() {
                let pr = &p[(first + i) * total..][..total];
                custom_op::softmax_backward_in_place(row, pr, scale);
            }
        });
        // dq = ds k, dk = ds^T q
        matmul(
            (rows, d, total),
            &mut dq[block * rows * d..][..rows * d],
            Mat::rows(&ds, total),
            Mat::rows(kb, d),
        );
        matmul(
            (total, d, rows),
            &mut dk[block * total * d..][..total * d],
            Mat::transposed(&ds, total),
            Mat::rows(qb, d),
        );
    }
    (dq, dk, dv)
}

impl Attention {
    fn forward_typed<T: 'static + Float + WithDType>(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        (s3, l3): (&CpuStorage, &Layout),
    ) -> candle_core::Result<Vec<T>> {
        let name = self.name();
        let (q, k, v) = (
            custom_op::slice(name, s1, l1)?,
            custom_op::slice(name, s2, l2)?,
            custom_op::slice(name, s3, l3)?,
        );
        let (mask_storage, mask_layout) = self.mask.storage_and_layout();
        let candle_core::Storage::Cpu(mask_storage) = &*mask_storage else {
            candle_core::bail!("{name}: the mask is not on the CPU");
        };
        let mask = custom_op::slice::<T>(name, mask_storage, mask_layout)?;
        let dims = Dims::of(l1.dims(), l2.dims()[2], self.t);
        let (probs, out) = forward(q, k, v, mask, dims, <T as Float>::from_f64(self.scale));
        *self
            .probs
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{name}: poisoned")))? =
            Some(T::to_cpu_storage_owned(probs));
        Ok(out)
    }

    fn backward_typed<T: 'static + Float + WithDType>(
        &self,
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        grad: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let name = self.name();
        let flat = |x: &Tensor| x.flatten_all().and_then(|x| x.to_vec1::<T>());
        let (qv, kv, vv, gv) = (flat(q)?, flat(k)?, flat(v)?, flat(grad)?);
        let guard = self
            .probs
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{name}: poisoned")))?;
        let Some(probs) = guard.as_ref() else {
            candle_core::bail!("{name}: backward without a forward");
        };
        let dims = Dims::of(q.dims(), k.dim(2)?, self.t);
        let (dq, dk, dv) = backward(
            (&qv, &kv, &vv),
            probs.as_slice::<T>()?,
            &gv,
            dims,
            <T as Float>::from_f64(self.scale),
        );
        let device = q.device();
        Ok((
            Tensor::from_vec(dq, q.shape(), device)?,
            Tensor::from_vec(dk, k.shape(), device)?,
            Tensor::from_vec(dv, v.shape(), device)?,
        ))
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(self.forward_typed::<f32>((s1, l1), (s2, l2), (s3, l3))?)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(self.forward_typed::<f64>((s1, l1), (s2, l2), (s3, l3))?)
            }
            _ => candle_core::bail!("{}: f32 or f64 inputs of one dtype", self.name()),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = match q.dtype() {
            DType::F32 => self.backward_typed::<f32>((q, k, v), grad)?,
            DType::F64 => self.backward_typed::<f64>((q, k, v), grad)?,
            dtype => candle_core::bail!("{}: no kernel for {dtype:?}", self.name()),
        };
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// A causal mask over `prefix` shared keys and `t` own positions, the last `pad` queries of
    /// batch entry 1 being padding (every key masked), as the decoder builds it.
    fn mask(b: usize, t: usize, prefix: usize, pad: usize, dtype: DType) -> Tensor {
        let total = prefix + t;
        let mut m = vec![0f64; b * t * total];
        for bi in 0..b {
            for i in 0..t {
                for j in 0..total {
                    let padded = bi == 1 && i >= t - pad;
                    if padded || j > prefix + i {
                        m[(bi * t + i) * total + j] = -1e9;
                    }
                }
            }
        }
        Tensor::from_vec(m, (b, t, total), &Device::Cpu)
            .and_then(|m| m.to_dtype(dtype))
            .unwrap()
    }

    fn var(shape: (usize, usize, usize, usize), dtype: DType) -> Var {
        let x = Tensor::randn(0f64, 1.0, shape, &Device::Cpu)
            .and_then(|x| x.to_dtype(dtype))
            .unwrap();
        Var::from_tensor(&x).unwrap()
    }

    #[test]
    fn matches_composed_ops_values_and_gradients() {
        // Grouped queries (3 heads a key/value group), a shared prefix of keys, padding rows.
        let (b, g, r, t, prefix, d) = (2, 2, 3, 5, 4, 8);
        let total = prefix + t;
        let (q, k, v) = (
            var((b, g, r * t, d), DType::F64),
            var((b, g, total, d), DType::F64),
            var((b, g, total, d), DType::F64),
        );
        let mask = mask(b, t, prefix, 2, DType::F64);
        let w = Tensor::randn(0f64, 1.0, (b, g, r * t, d), &Device::Cpu).unwrap();
        let ours = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, 0.35).unwrap();
        let reference = composed(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, 0.35).unwrap();
        crate::kernels::testing::assert_same_values_and_gradients(
            ours,
            reference,
            &w,
            &[&q, &k, &v],
            1e-13,
            1e-12,
        );
    }

    #[test]
    fn f32_kernel_agrees_with_the_composed_ops() {
        let (b, g, r, t, prefix, d) = (2, 3, 2, 16, 24, 64);
        let total = prefix + t;
        let (q, k, v) = (
            var((b, g, r * t, d), DType::F32),
            var((b, g, total, d), DType::F32),
            var((b, g, total, d), DType::F32),
        );
        let mask = mask(b, t, prefix, 3, DType::F32);
        let w = Tensor::randn(0f32, 1.0, (b, g, r * t, d), &Device::Cpu).unwrap();
        let ours = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, 0.125).unwrap();
        let reference =
            composed(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, 0.125).unwrap();
        crate::kernels::testing::assert_same_values_and_gradients(
            ours,
            reference,
            &w,
            &[&q, &k, &v],
            1e-5,
            1e-4,
        );
    }

    #[test]
    fn shapes_that_do_not_fit_are_named_errors() {
        let q = var((1, 2, 6, 4), DType::F32);
        let k = var((1, 2, 5, 4), DType::F32);
        let mask = mask(1, 4, 1, 0, DType::F32);
        let err = attention(q.as_tensor(), k.as_tensor(), k.as_tensor(), &mask, 1.0).unwrap_err();
        assert!(err.to_string().contains("do not fit together"), "{err}");
    }

    #[test]
    fn other_dtypes_take_the_composed_path() {
        let (b, g, r, t, prefix, d) = (1, 2, 2, 4, 3, 8);
        let total = prefix + t;
        let (q, k, v) = (
            var((b, g, r * t, d), DType::F32),
            var((b, g, total, d), DType::F32),
            var((b, g, total, d), DType::F32),
        );
        let mask = mask(b, t, prefix, 0, DType::F32);
        let kernel = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, 0.3).unwrap();
        let bf16 = |x: &Tensor| x.to_dtype(DType::BF16).unwrap();
        let fallback = attention(
            &bf16(q.as_tensor()),
            &bf16(k.as_tensor()),
            &bf16(v.as_tensor()),
            &bf16(&mask),
            0.3,
        )
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
        let diff = crate::kernels::testing::max_abs_diff(&kernel, &fallback);
        assert!(diff < 0.05, "{diff}");
    }
}

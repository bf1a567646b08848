//! A softmax over the last dimension that is both one pass over memory and differentiable.
//!
//! candle's fused `softmax_last_dim` passes no gradient, and the composed version (max, subtract,
//! exp, sum, divide) keeps four full-size intermediates per attention layer alive in the autograd
//! graph. This custom op computes the softmax in one pass on the CPU and its backward needs only
//! the output: `dx = p * (g - sum(g * p))`. Off the CPU the composed ops are used.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor, D};

use crate::error::Result;

/// Softmax over the last dimension, differentiable, with max-subtraction for stability.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        Ok(x.contiguous()?.apply_op1(SoftmaxLast)?)
    } else {
        composed(x)
    }
}

/// The composed-op softmax (the max is detached: it cancels out mathematically).
pub fn composed(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&sum)?)
}

struct SoftmaxLast;

fn softmax_rows<T: num_like::Float>(src: &[T], width: usize) -> Vec<T> {
    let mut out = src.to_vec();
    let threads = candle_core::utils::get_num_threads().max(1);
    let rows = src.len() / width.max(1);
    // Whole rows per thread; small inputs stay on one thread.
    let rows_per = rows.div_ceil(threads).max(4096 / width.max(1)).max(1);
    std::thread::scope(|scope| {
        for block in out.chunks_mut(rows_per * width.max(1)) {
            scope.spawn(move || {
                for row in block.chunks_mut(width.max(1)) {
                    let max = row.iter().copied().fold(T::neg_infinity(), T::max);
                    let mut sum = T::zero();
                    for v in row.iter_mut() {
                        *v = (*v - max).exp();
                        sum = sum + *v;
                    }
                    for v in row.iter_mut() {
                        *v = *v / sum;
                    }
                }
            });
        }
    });
    out
}

/// The little float interface the kernel needs, for f32 and f64.
mod num_like {
    pub trait Float:
        Copy
        + Send
        + Sync
        + std::ops::Mul<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Add<Output = Self>
        + std::ops::Div<Output = Self>
    {
        fn neg_infinity() -> Self;
        fn zero() -> Self;
        fn max(self, other: Self) -> Self;
        fn exp(self) -> Self;
    }
    macro_rules! float {
        ($t:ty) => {
            impl Float for $t {
                fn neg_infinity() -> Self {
                    <$t>::NEG_INFINITY
                }
                fn zero() -> Self {
                    0.0
                }
                fn max(self, other: Self) -> Self {
                    <$t>::max(self, other)
                }
                fn exp(self) -> Self {
                    <$t>::exp(self)
                }
            }
        };
    }
    float!(f32);
    float!(f64);
}

impl CustomOp1 for SoftmaxLast {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("softmax-last-dim: non-contiguous input");
        };
        let width = layout.dims().last().copied().unwrap_or(1);
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(softmax_rows(&v[start..end], width)),
            CpuStorage::F64(v) => CpuStorage::F64(softmax_rows(&v[start..end], width)),
            _ => candle_core::bail!("softmax-last-dim: f32 or f64 only"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let p = res.detach();
        let dot = (grad * &p)?.sum_keepdim(D::Minus1)?;
        Ok(Some((grad.broadcast_sub(&dot)? * p)?))
    }
}

/// `softmax(scores * scale + mask)` over the last dimension, for attention scores `[b, g, t, T]`
/// (g = heads) and an additive mask `[b, t, T]` shared by the heads. Differentiable w.r.t.
/// `scores` (the mask is a constant). On the CPU one pass with nothing but the output kept for
/// backward; elsewhere composed ops.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, _g, t, total) = scores.dims4()?;
    if mask.dims() != [b, t, total] {
        return Err(crate::error::Error::InvalidInput(format!(
            "mask {:?} does not fit scores {:?}",
            mask.dims(),
            scores.dims()
        )));
    }
    let on_cpu = scores.device().is_cpu() && mask.device().is_cpu();
    if on_cpu && matches!(scores.dtype(), DType::F32 | DType::F64) && mask.dtype() == scores.dtype()
    {
        let op = MaskedSoftmax { scale, t };
        Ok(scores.contiguous()?.apply_op2(&mask.contiguous()?, op)?)
    } else {
        let x = (scores * scale)?.broadcast_add(&mask.unsqueeze(1)?)?;
        composed(&x)
    }
}

struct MaskedSoftmax {
    scale: f64,
    /// Query positions per head; with the mask's layout it maps a score row to its mask row.
    t: usize,
}

fn masked_rows<T: num_like::Float>(
    x: &[T],
    mask: &[T],
    width: usize,
    t: usize,
    groups: usize,
    scale: T,
) -> Vec<T> {
    let width = width.max(1);
    let mut out = vec![T::zero(); x.len()];
    let rows = x.len() / width;
    let threads = candle_core::utils::get_num_threads().max(1);
    let rows_per = rows.div_ceil(threads).max(4096 / width).max(1);
    std::thread::scope(|scope| {
        for (block_i, block) in out.chunks_mut(rows_per * width).enumerate() {
            scope.spawn(move || {
                for (i, row) in block.chunks_mut(width).enumerate() {
                    let r = block_i * rows_per + i;
                    let (batch, query) = (r / (groups * t), r % t);
                    let m = &mask[(batch * t + query) * width..][..width];
                    let src = &x[r * width..][..width];
                    let mut max = T::neg_infinity();
                    for ((o, &v), &mv) in row.iter_mut().zip(src).zip(m) {
                        *o = v * scale + mv;
                        max = max.max(*o);
                    }
                    let mut sum = T::zero();
                    for o in row.iter_mut() {
                        *o = (*o - max).exp();
                        sum = sum + *o;
                    }
                    for o in row.iter_mut() {
                        *o = *o / sum;
                    }
                }
            });
        }
    });
    out
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (Some((a0, a1)), Some((m0, m1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("masked-softmax: non-contiguous input");
        };
        let dims = l1.dims();
        let (groups, width) = (dims[1], dims[3]);
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(m)) => CpuStorage::F32(masked_rows(
                &x[a0..a1],
                &m[m0..m1],
                width,
                self.t,
                groups,
                self.scale as f32,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(m)) => CpuStorage::F64(masked_rows(
                &x[a0..a1],
                &m[m0..m1],
                width,
                self.t,
                groups,
                self.scale,
            )),
            _ => candle_core::bail!("masked-softmax: f32 or f64 scores and mask of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let p = res.detach();
        let dot = (grad * &p)?.sum_keepdim(D::Minus1)?;
        let d = ((grad.broadcast_sub(&dot)? * p)? * self.scale)?;
        Ok((Some(d), None))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn matches_composed_ops_values_and_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f64, 3.0, (3, 4, 9), &dev).unwrap())).unwrap();
        let w = Tensor::randn(0f64, 1.0, (3, 4, 9), &dev).unwrap();
        let ours = softmax_last_dim(x.as_tensor()).unwrap();
        let reference = composed(x.as_tensor()).unwrap();
        crate::testing::assert_same_values_and_gradients(ours, reference, &w, &[&x], 1e-14, 1e-14);
    }

    #[test]
    fn masked_softmax_matches_composed_ops_values_and_gradients() {
        let dev = Device::Cpu;
        let (b, g, t, total) = (2, 3, 4, 6);
        let x =
            Var::from_tensor(&Tensor::randn(0f64, 2.0, (b, g, t, total), &dev).unwrap()).unwrap();
        let mask = Tensor::randn(0f64, 1.0, (b, t, total), &dev).unwrap();
        let w = Tensor::randn(0f64, 1.0, (b, g, t, total), &dev).unwrap();
        let ours = masked_softmax(x.as_tensor(), &mask, 0.7).unwrap();
        let shifted = (x.as_tensor() * 0.7)
            .unwrap()
            .broadcast_add(&mask.unsqueeze(1).unwrap())
            .unwrap();
        let reference = composed(&shifted).unwrap();
        crate::testing::assert_same_values_and_gradients(ours, reference, &w, &[&x], 1e-14, 1e-14);
    }

    #[test]
    fn fully_masked_rows_stay_finite() {
        let x = Tensor::new(&[[-1e9f32, -1e9, -1e9]], &Device::Cpu).unwrap();
        let p: Vec<Vec<f32>> = softmax_last_dim(&x).unwrap().to_vec2().unwrap();
        assert!(p[0].iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6));
    }
}

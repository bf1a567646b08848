//! A softmax over the last dimension that is both one pass over memory and differentiable.
//!
//! candle's fused `softmax_last_dim` passes no gradient, and the composed version (max, subtract,
//! exp, sum, divide) keeps four full-size intermediates per attention layer alive in the autograd
//! graph. This custom op computes the softmax in one pass on the CPU and its backward needs only
//! the output: `dx = p * (g - sum(g * p))`. Off the CPU the composed ops are used.

use crate::kernels::custom_op::{self, Float, Kernel1, Kernel2};
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

/// `softmax(scores * scale + mask)` over the last dimension for inference (prefill's attention),
/// for scores `[b, h, t, T]` and an additive mask `[b, t, T]` shared by the heads, with the bits
/// of candle's `(scores * scale).broadcast_add(mask)` then `softmax_last_dim`: the same products
/// and sums, candle's own maximum and sum reductions (`VecOps`, called here) and division, the
/// exponentials eight at a time (`kernels::expf`, libm's bits) instead of one libm call
/// each, in one pass instead of three. No gradient. Other dtypes and devices take candle's ops.
pub fn masked_softmax_inference(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, _, t, total) = scores.dims4()?;
    if mask.dims() != [b, t, total] {
        return Err(crate::error::Error::InvalidInput(format!(
            "mask {:?} does not fit scores {:?}",
            mask.dims(),
            scores.dims()
        )));
    }
    let cpu_f32 = [scores, mask]
        .iter()
        .all(|x| x.device().is_cpu() && x.dtype() == DType::F32);
    if cpu_f32 {
        let op = MaskedCandleOrder { scale };
        Ok(scores
            .contiguous()?
            .apply_op2_no_bwd(&mask.contiguous()?, &op)?)
    } else {
        let x = (scores * scale)?.broadcast_add(&mask.unsqueeze(1)?)?;
        Ok(candle_nn::ops::softmax_last_dim(&x)?)
    }
}

/// The row of an additive mask `[b, t, width]` that score row `r` takes, for scores holding
/// `per_batch` rows of each batch entry whose query position cycles with period `t`.
fn mask_row<T>(mask: &[T], r: usize, per_batch: usize, t: usize, width: usize) -> &[T] {
    let (batch, query) = (r / per_batch, r % t);
    &mask[(batch * t + query) * width..][..width]
}

struct MaskedCandleOrder {
    scale: f64,
}

impl CustomOp2 for MaskedCandleOrder {
    fn name(&self) -> &'static str {
        "masked-softmax-inference"
    }

    // candle exposes its reductions only as unsafe pointer functions; calling them, not a copy,
    // is what keeps the bits of its maximum and sum.
    #[allow(unsafe_code)]
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use candle_core::cpu::kernels::VecOps;
        let (CpuStorage::F32(scores), CpuStorage::F32(mask)) = (s1, s2) else {
            candle_core::bail!("masked-softmax-inference: f32 tensors are needed");
        };
        let (Some((from, to)), Some((m_from, m_to))) =
            (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("masked-softmax-inference: contiguous tensors are needed");
        };
        let dims = l1.dims();
        let out = masked_rows(
            &scores[from..to],
            &mask[m_from..m_to],
            dims[3],
            dims[2],
            dims[1],
            self.scale as f32,
            |row, m, scale| {
                // candle's affine: `x * scale + 0` in f32, then the mask added.
                for (x, &m) in row.iter_mut().zip(m) {
                    *x = (*x * scale + 0.0) + m;
                }
                let mut max = f32::NEG_INFINITY;
                // SAFETY: `row` holds `row.len()` initialised values; `max` is a local.
                unsafe { f32::vec_reduce_max(row.as_ptr(), &mut max, row.len()) };
                crate::kernels::expf::exp_shifted(row, max);
                let mut sum = 0f32;
                // SAFETY: as above.
                unsafe { f32::vec_reduce_sum(row.as_ptr(), &mut sum, row.len()) };
                for v in row.iter_mut() {
                    *v /= sum;
                }
            },
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

fn softmax_rows<T: Float>(src: &[T], width: usize) -> Vec<T> {
    let mut out = src.to_vec();
    custom_op::for_row_blocks(&mut out, width, |_, block| {
        block
            .chunks_mut(width.max(1))
            .for_each(custom_op::softmax_in_place)
    });
    out
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
        let rows = Rows {
            width: layout.dims().last().copied().unwrap_or(1),
        };
        let out = custom_op::apply1(self.name(), (storage, layout), &rows)?;
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op2_no_bwd(
            &res.detach(),
            &SoftmaxBackward { scale: 1.0 },
        )?))
    }
}

/// `softmax(scores * scale + mask)` over the last dimension, for attention scores `[b, g, r*t, T]`
/// and an additive mask `[b, t, T]` shared by the heads: `g` heads (`r = 1`), or `g` key/value
/// groups each stacking its `r` query heads along the time axis (row `i` is query position
/// `i % t`). Differentiable w.r.t. `scores` (the mask is a constant). On the CPU one pass with
/// nothing but the output kept for backward; elsewhere composed ops.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, g, rows, total) = scores.dims4()?;
    let t = mask.dim(1).unwrap_or(0);
    if mask.dims() != [b, t, total] || t == 0 || rows % t != 0 {
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
        let heads = scores.reshape((b, g * (rows / t), t, total))?;
        let x = (heads * scale)?.broadcast_add(&mask.unsqueeze(1)?)?;
        Ok(composed(&x)?.reshape((b, g, rows, total))?)
    }
}

struct MaskedSoftmax {
    scale: f64,
    /// Query positions per head; with the mask's layout it maps a score row to its mask row.
    t: usize,
}

/// `softmax_row(row, mask_row, scale)` on each `width`-long score row of `x` (`groups` rows of
/// `t` query positions per batch entry) with the mask row it takes, in a copy.
fn masked_rows<T: Float>(
    x: &[T],
    mask: &[T],
    width: usize,
    t: usize,
    groups: usize,
    scale: T,
    softmax_row: impl Fn(&mut [T], &[T], T) + Sync + Send,
) -> Vec<T> {
    let width = width.max(1);
    let mut out = x.to_vec();
    custom_op::for_row_blocks(&mut out, width, |first, block| {
        for (i, row) in block.chunks_mut(width).enumerate() {
            let m = mask_row(mask, first + i, groups * t, t, width);
            softmax_row(row, m, scale);
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
        let dims = l1.dims();
        let kernel = MaskedRows {
            width: dims[3],
            t: self.t,
            // Rows per batch entry over rows per head: heads, or groups times stacked heads.
            groups: dims[1] * dims[2] / self.t.max(1),
            scale: self.scale,
        };
        let out = custom_op::apply2(self.name(), (s1, l1), (s2, l2), &kernel)?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = grad
            .contiguous()?
            .apply_op2_no_bwd(&res.detach(), &SoftmaxBackward { scale: self.scale })?;
        Ok((Some(d), None))
    }
}

/// `(grad, p) -> scale * p * (grad - sum(grad * p))` row by row: the softmax backward in one
/// pass instead of five full-size ones.
struct SoftmaxBackward {
    scale: f64,
}

fn softmax_backward_rows<T: Float>(grad: &[T], p: &[T], width: usize, scale: T) -> Vec<T> {
    let width = width.max(1);
    let mut out = grad.to_vec();
    custom_op::for_row_blocks(&mut out, width, |first, block| {
        for (i, g) in block.chunks_mut(width).enumerate() {
            let at = (first + i) * width;
            custom_op::softmax_backward_in_place(g, &p[at..at + width], scale);
        }
    });
    out
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let kernel = BackwardRows {
            width: l1.dims().last().copied().unwrap_or(1),
            scale: self.scale,
        };
        let out = custom_op::apply2(self.name(), (s1, l1), (s2, l2), &kernel)?;
        Ok((out, l1.shape().clone()))
    }
}

/// [`softmax_rows`] over rows of `width`.
struct Rows {
    width: usize,
}

impl Kernel1 for Rows {
    fn run<T: Float>(&self, x: &[T]) -> Vec<T> {
        softmax_rows(x, self.width)
    }
}

/// [`masked_rows`] with its layout.
struct MaskedRows {
    width: usize,
    t: usize,
    groups: usize,
    scale: f64,
}

impl Kernel2 for MaskedRows {
    fn run<T: Float>(&self, x: &[T], mask: &[T]) -> Vec<T> {
        masked_rows(
            x,
            mask,
            self.width,
            self.t,
            self.groups,
            T::from_f64(self.scale),
            custom_op::masked_softmax_in_place,
        )
    }
}

/// [`softmax_backward_rows`] over rows of `width`.
struct BackwardRows {
    width: usize,
    scale: f64,
}

impl Kernel2 for BackwardRows {
    fn run<T: Float>(&self, grad: &[T], p: &[T]) -> Vec<T> {
        softmax_backward_rows(grad, p, self.width, T::from_f64(self.scale))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn the_inference_softmax_has_the_bits_of_candles() {
        let dev = Device::Cpu;
        let (b, heads, t) = (2, 3, 5);
        for width in [5, 7, 8, 9, 33, 64, 1141] {
            let scores =
                (Tensor::randn(0f32, 4.0, (b, heads, t, width), &dev).unwrap() * 3.0).unwrap();
            // Causal masking of the new positions, as prefill's attention adds it.
            let mask: Vec<f32> = (0..b * t * width)
                .map(|i| {
                    let (query, key) = ((i / width) % t, i % width);
                    if key > width - t + query {
                        -1e9
                    } else {
                        0.0
                    }
                })
                .collect();
            let mask = Tensor::from_vec(mask, (b, t, width), &dev).unwrap();
            let bits = |x: Tensor| -> Vec<u32> {
                let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                v.iter().map(|v| v.to_bits()).collect()
            };
            let candle = (&scores * 0.125)
                .unwrap()
                .broadcast_add(&mask.unsqueeze(1).unwrap())
                .unwrap();
            assert_eq!(
                bits(masked_softmax_inference(&scores, &mask, 0.125).unwrap()),
                bits(candle_nn::ops::softmax_last_dim(&candle).unwrap()),
                "width {width}"
            );
        }
    }

    #[test]
    fn matches_composed_ops_values_and_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f64, 3.0, (3, 4, 9), &dev).unwrap())).unwrap();
        let w = Tensor::randn(0f64, 1.0, (3, 4, 9), &dev).unwrap();
        let ours = softmax_last_dim(x.as_tensor()).unwrap();
        let reference = composed(x.as_tensor()).unwrap();
        crate::kernels::testing::assert_same_values_and_gradients(
            ours,
            reference,
            &w,
            &[&x],
            1e-14,
            1e-14,
        );
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
        crate::kernels::testing::assert_same_values_and_gradients(
            ours,
            reference,
            &w,
            &[&x],
            1e-14,
            1e-14,
        );
    }

    #[test]
    fn grouped_layout_equals_the_per_head_layout() {
        // [b, kv groups, r*t, T] is [b, kv*r heads, t, T] in memory: same values, same gradient.
        let dev = Device::Cpu;
        let (b, kv, r, t, total) = (2, 3, 2, 4, 6);
        let x = Var::from_tensor(&Tensor::randn(0f64, 2.0, (b, kv, r * t, total), &dev).unwrap())
            .unwrap();
        let mask = Tensor::randn(0f64, 1.0, (b, t, total), &dev).unwrap();
        let w = Tensor::randn(0f64, 1.0, (b, kv, r * t, total), &dev).unwrap();
        let grouped = masked_softmax(x.as_tensor(), &mask, 0.7).unwrap();
        let per_head = masked_softmax(
            &x.as_tensor().reshape((b, kv * r, t, total)).unwrap(),
            &mask,
            0.7,
        )
        .unwrap()
        .reshape((b, kv, r * t, total))
        .unwrap();
        crate::kernels::testing::assert_same_values_and_gradients(
            grouped,
            per_head,
            &w,
            &[&x],
            1e-300,
            1e-15,
        );
        let bad = Tensor::zeros((b, kv, 7, total), DType::F64, &dev).unwrap();
        assert!(masked_softmax(&bad, &mask, 1.0).is_err());
    }

    #[test]
    fn grouped_layout_composed_fallback_agrees() {
        // bf16 takes the composed path on the CPU too, as every dtype does off the CPU.
        let dev = Device::Cpu;
        let (b, kv, r, t, total) = (2, 2, 3, 4, 5);
        let x = Tensor::randn(0f32, 2.0, (b, kv, r * t, total), &dev).unwrap();
        let mask = Tensor::randn(0f32, 1.0, (b, t, total), &dev).unwrap();
        let kernel = masked_softmax(&x, &mask, 0.7).unwrap();
        let fallback = masked_softmax(
            &x.to_dtype(DType::BF16).unwrap(),
            &mask.to_dtype(DType::BF16).unwrap(),
            0.7,
        )
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
        let diff = crate::kernels::testing::max_abs_diff(&kernel, &fallback);
        assert!(diff < 0.02, "{diff}");
    }

    #[test]
    fn fully_masked_rows_stay_finite() {
        let x = Tensor::new(&[[-1e9f32, -1e9, -1e9]], &Device::Cpu).unwrap();
        let p: Vec<Vec<f32>> = softmax_last_dim(&x).unwrap().to_vec2().unwrap();
        assert!(p[0].iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6));
    }
}

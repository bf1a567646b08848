//! The gated MLP activation `silu(gate) * up` as one differentiable CPU pass each way.
//!
//! Composed, it is two graph nodes, and candle's backward of `silu` alone is eight full-size
//! passes (neg, exp, add, recip, two affines, two muls) before the products with the incoming
//! gradient: in a profile of the training bench the activation and its backward took about a
//! tenth of the main thread. Here the forward is one pass and the backward one pass that writes
//! both gradients, with `s = sigmoid(gate)`:
//! `d_up = g * gate * s` and `d_gate = g * up * s * (1 + gate * (1 - s))`.
//! Off the CPU (or for other dtypes) the composed ops are used.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::custom_op::{self, Float, Kernel2, Kernel3};

use crate::error::{Error, Result};

/// Elements per rayon task: large enough that dispatch is noise, small enough to share the work.
const TASK_ELEMS: usize = 1 << 16;

/// `silu(gate) * up`, elementwise, differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        return Err(Error::InvalidInput(format!(
            "swiglu: gate {:?} and up {:?} differ",
            gate.dims(),
            up.dims()
        )));
    }
    let cpu = gate.device().is_cpu() && up.device().is_cpu();
    if cpu && matches!(gate.dtype(), DType::F32 | DType::F64) && up.dtype() == gate.dtype() {
        let op = SwiGlu { inference: false };
        Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, op)?)
    } else {
        composed(gate, up)
    }
}

/// The composed-op activation.
pub fn composed(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    Ok((gate.silu()? * up)?)
}

/// `silu(gate) * up` for inference (no backward): one pass with the bits of [`composed`]
/// (candle's `silu` is `g / (1 + exp(-g))`, then the product), where the two ops wrote and
/// read a full-size intermediate and took one libm `expf` call per entry.
pub fn swiglu_inference(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let cpu = gate.device().is_cpu() && up.device().is_cpu();
    if cpu && gate.dims() == up.dims() && gate.dtype() == DType::F32 && up.dtype() == DType::F32 {
        let op = SwiGlu { inference: true };
        Ok(gate
            .contiguous()?
            .apply_op2_no_bwd(&up.contiguous()?, &op)?)
    } else {
        composed(gate, up)
    }
}

impl Kernel2 for SwiGlu {
    fn run<T: Float>(&self, gate: &[T], up: &[T]) -> Vec<T> {
        if self.inference {
            // candle's silu divides by `1 + exp(-g)`; the training forward multiplies by its
            // inverse.
            with_exp_neg(gate, up, |o, g, e| *o = g / (T::ONE + e) * *o)
        } else {
            forward(gate, up)
        }
    }
}

impl Kernel3 for SwiGluBackward {
    fn run<T: Float>(&self, grad: &[T], gate: &[T], up: &[T]) -> Vec<T> {
        backward(grad, gate, up)
    }
}

fn forward<T: Float>(gate: &[T], up: &[T]) -> Vec<T> {
    with_exp_neg(gate, up, |o, g, e| *o = g * (T::ONE / (T::ONE + e)) * *o)
}

/// Entries whose exponentials are taken at once: a stack buffer's worth.
const SIGMOID_BLOCK: usize = 256;

/// `out[i] <- 1 / (1 + exp(-x[i]))` for up to [`SIGMOID_BLOCK`] entries: a sigmoid with the bits
/// of computing it one entry at a time, the exponentials taken many at once.
fn sigmoids<T: Float>(x: &[T], out: &mut [T]) {
    T::exp_neg(x, out);
    for o in out.iter_mut() {
        *o = T::ONE / (T::ONE + *o);
    }
}

/// `f(out, gate, exp(-gate))` for every entry of `out` (a copy of `up`), split over rayon's
/// pool, the exponentials taken a block at a time ([`Float::exp_neg`]).
fn with_exp_neg<T: Float>(gate: &[T], up: &[T], f: impl Fn(&mut T, T, T) + Sync) -> Vec<T> {
    let mut out = up.to_vec();
    out.par_chunks_mut(TASK_ELEMS)
        .zip(gate.par_chunks(TASK_ELEMS))
        .for_each(|(o, g)| {
            let mut e = [T::ZERO; SIGMOID_BLOCK];
            for (o, g) in o.chunks_mut(SIGMOID_BLOCK).zip(g.chunks(SIGMOID_BLOCK)) {
                let e = &mut e[..g.len()];
                T::exp_neg(g, e);
                for ((o, &g), &e) in o.iter_mut().zip(g).zip(e.iter()) {
                    f(o, g, e);
                }
            }
        });
    out
}

/// Both gradients in one buffer: `d_gate` then `d_up`, each `gate.len()` long.
fn backward<T: Float>(grad: &[T], gate: &[T], up: &[T]) -> Vec<T> {
    let n = gate.len();
    let mut out = grad.to_vec();
    out.extend_from_slice(grad);
    let (d_gate, d_up) = out.split_at_mut(n);
    d_gate
        .par_chunks_mut(TASK_ELEMS)
        .zip(d_up.par_chunks_mut(TASK_ELEMS))
        .zip(gate.par_chunks(TASK_ELEMS).zip(up.par_chunks(TASK_ELEMS)))
        .for_each(|((dg, du), (g, u))| {
            let mut s = [T::ZERO; SIGMOID_BLOCK];
            let blocks = dg
                .chunks_mut(SIGMOID_BLOCK)
                .zip(du.chunks_mut(SIGMOID_BLOCK))
                .zip(g.chunks(SIGMOID_BLOCK))
                .zip(u.chunks(SIGMOID_BLOCK));
            for (((dg, du), g), u) in blocks {
                let s = &mut s[..g.len()];
                sigmoids(g, s);
                let entries = dg.iter_mut().zip(du.iter_mut()).zip(g).zip(u).zip(s.iter());
                for ((((dg, du), &g), &u), &s) in entries {
                    let silu = g * s;
                    let grad = *dg;
                    *du = grad * silu;
                    *dg = grad * u * (s + silu * (T::ONE - s));
                }
            }
        });
    out
}

/// The forward op; `inference`: with the bits of candle's `silu` and product (no backward is
/// taken of it), else the training forward.
struct SwiGlu {
    inference: bool,
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = custom_op::apply2(self.name(), (s1, l1), (s2, l2), self)?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let both =
            grad.contiguous()?
                .apply_op3_no_bwd(&gate.detach(), &up.detach(), &SwiGluBackward)?;
        let (d_gate, d_up) = (both.get(0)?, both.get(1)?);
        Ok((Some(d_gate), Some(d_up)))
    }
}

/// `(grad, gate, up) -> [d_gate; d_up]`, stacked on a new leading axis of 2.
struct SwiGluBackward;

impl CustomOp3 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "swiglu-backward"
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
        let out = custom_op::apply3(self.name(), (s1, l1), (s2, l2), (s3, l3), self)?;
        let mut dims = vec![2];
        dims.extend_from_slice(l1.dims());
        Ok((out, Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::kernels::testing::{assert_same_values_and_gradients, max_abs_diff, same_bits};

    #[test]
    fn matches_composed_ops_values_and_gradients() {
        let dev = Device::Cpu;
        // Larger than one rayon task, so the split is exercised too.
        let shape = (3, 50_000);
        let gate = Var::from_tensor(&Tensor::randn(0f64, 3.0, shape, &dev).unwrap()).unwrap();
        let up = Var::from_tensor(&Tensor::randn(0f64, 1.0, shape, &dev).unwrap()).unwrap();
        let scale = Tensor::randn(0f64, 1.0, shape, &dev).unwrap();
        let ours = swiglu(gate.as_tensor(), up.as_tensor()).unwrap();
        let reference = composed(gate.as_tensor(), up.as_tensor()).unwrap();
        assert_same_values_and_gradients(ours, reference, &scale, &[&gate, &up], 1e-12, 1e-12);
    }

    #[test]
    fn inference_has_the_bits_of_the_composed_ops() {
        let dev = Device::Cpu;
        let gate = Tensor::randn(0f32, 4.0, (7, 40_000), &dev).unwrap();
        let up = Tensor::randn(0f32, 1.0, (7, 40_000), &dev).unwrap();
        let values = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
        let ours = values(swiglu_inference(&gate, &up).unwrap());
        let reference = values(composed(&gate, &up).unwrap());
        assert!(same_bits(&ours, &reference));
    }

    #[test]
    fn f32_and_mismatched_shapes() {
        let dev = Device::Cpu;
        let gate = Tensor::new(&[[-2f32, 0.0, 3.0]], &dev).unwrap();
        let up = Tensor::new(&[[1f32, 5.0, -1.0]], &dev).unwrap();
        let ours = swiglu(&gate, &up).unwrap();
        assert!(max_abs_diff(&ours, &composed(&gate, &up).unwrap()) < 1e-6);
        assert!(swiglu(&gate, &up.t().unwrap()).is_err());
        // bf16 takes the composed path on the CPU too, as every dtype does off the CPU.
        let fallback = swiglu(
            &gate.to_dtype(DType::BF16).unwrap(),
            &up.to_dtype(DType::BF16).unwrap(),
        )
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
        assert!(max_abs_diff(&ours, &fallback) < 0.05);
    }
}

//! Moving attention activations between the token-major layout of the projections
//! (`[b*t, heads*d]`) and the head-major layout of attention (`[b, heads, t, d]`), with the rotary
//! embedding applied on the way in: one differentiable pass instead of four graph nodes.
//!
//! Composed, `q` went reshape, transpose, contiguous copy, rotate, reshape; the attention output
//! went reshape, transpose, reshape. candle's backward gives every one of those nodes a zero
//! tensor and an add of its full-size gradient, so the view nodes cost as much as real work. The
//! rotation is orthogonal, so each direction's backward is the other direction with `-sin`.
//! Off the CPU (or for other dtypes) composed ops are used.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::custom_op::{self, Float, Kernel1};

use crate::error::{Error, Result};

/// Rotary tables, `[b, t, d/2]` flattened, and the sign applied to `sin` (-1 undoes a rotation).
#[derive(Clone)]
struct Rotation {
    cos: Arc<Vec<f64>>,
    sin: Arc<Vec<f64>>,
    sign: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToHeads,
    FromHeads,
}

#[derive(Clone)]
struct Heads {
    b: usize,
    t: usize,
    n: usize,
    d: usize,
    direction: Direction,
    rotation: Option<Rotation>,
}

/// The rotary tables of one forward call, `[b, t, d/2]` each (rotate-half layout), with their
/// host copies for the CPU kernel made once here rather than at every q and k of every layer.
pub struct RopeTables {
    cos: Tensor,
    sin: Tensor,
    host: Option<Rotation>,
}

impl RopeTables {
    /// Wraps `cos` and `sin` (same shape); on the CPU also keeps them as f64 for the kernel.
    pub fn new(cos: Tensor, sin: Tensor) -> Result<Self> {
        if cos.dims() != sin.dims() || cos.rank() != 3 {
            return Err(Error::InvalidInput(format!(
                "rotary tables: cos {:?}, sin {:?} (want two [b, t, d/2])",
                cos.dims(),
                sin.dims()
            )));
        }
        let host = if cos.device().is_cpu() {
            let table = |t: &Tensor| -> Result<Arc<Vec<f64>>> {
                Ok(Arc::new(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?))
            };
            Some(Rotation {
                cos: table(&cos)?,
                sin: table(&sin)?,
                sign: 1.0,
            })
        } else {
            None
        };
        Ok(RopeTables { cos, sin, host })
    }
}

/// `x` (`[b*t, n*d]`, or anything with that many elements in that order) to `[b, n, t, d]`,
/// rotated by `rope` when given.
pub fn to_heads(
    x: &Tensor,
    (b, t, n, d): (usize, usize, usize, usize),
    rope: Option<&RopeTables>,
) -> Result<Tensor> {
    if x.elem_count() != b * t * n * d {
        return Err(Error::InvalidInput(format!(
            "to_heads: {:?} is not {b}x{t}x{n}x{d}",
            x.dims()
        )));
    }
    if let Some(r) = rope {
        if d % 2 != 0 || r.cos.dims() != [b, t, d / 2] {
            return Err(Error::InvalidInput(format!(
                "to_heads: head size {d}, rotary tables {:?}",
                r.cos.dims()
            )));
        }
    }
    let rotation = rope.and_then(|r| r.host.clone());
    if !fits_kernel(x) || (rope.is_some() && rotation.is_none()) {
        let heads = x.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()?;
        return match rope {
            Some(r) => {
                crate::kernels::rope::composed(&heads, &r.cos.unsqueeze(1)?, &r.sin.unsqueeze(1)?)
            }
            None => Ok(heads),
        };
    }
    let op = Heads {
        b,
        t,
        n,
        d,
        direction: Direction::ToHeads,
        rotation,
    };
    Ok(x.contiguous()?.apply_op1(op)?)
}

/// `x` (`[b, n, t, d]`) to `[b*t, n*d]`: the attention output back in token-major order.
pub fn from_heads(x: &Tensor) -> Result<Tensor> {
    let (b, n, t, d) = x.dims4()?;
    if !fits_kernel(x) {
        return Ok(x.transpose(1, 2)?.reshape((b * t, n * d))?);
    }
    let op = Heads {
        b,
        t,
        n,
        d,
        direction: Direction::FromHeads,
        rotation: None,
    };
    Ok(x.contiguous()?.apply_op1(op)?)
}

fn fits_kernel(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

impl Kernel1 for Heads {
    fn run<T: Float>(&self, x: &[T]) -> Vec<T> {
        self.permute(x)
    }
}

impl Heads {
    /// The output shape for this direction.
    fn out_shape(&self) -> Shape {
        match self.direction {
            Direction::ToHeads => Shape::from((self.b, self.n, self.t, self.d)),
            Direction::FromHeads => Shape::from((self.b * self.t, self.n * self.d)),
        }
    }

    /// The op whose output is this op's input: the gradient's way back.
    fn inverse(&self) -> Heads {
        Heads {
            direction: match self.direction {
                Direction::ToHeads => Direction::FromHeads,
                Direction::FromHeads => Direction::ToHeads,
            },
            rotation: self.rotation.as_ref().map(|r| Rotation {
                sign: -r.sign,
                ..r.clone()
            }),
            ..self.clone()
        }
    }

    /// Copies one head-row of `d` values, rotating it for (batch, position) when asked.
    fn put<T: Float>(&self, dst: &mut [T], src: &[T], batch: usize, pos: usize) {
        match &self.rotation {
            None => dst.copy_from_slice(src),
            Some(r) => {
                let half = self.d / 2;
                let at = (batch * self.t + pos) * half;
                let (c, s) = (&r.cos[at..at + half], &r.sin[at..at + half]);
                for i in 0..half {
                    let (x1, x2) = (src[i].into(), src[i + half].into());
                    let s = r.sign * s[i];
                    dst[i] = T::from_f64(x1 * c[i] - x2 * s);
                    dst[i + half] = T::from_f64(x2 * c[i] + x1 * s);
                }
            }
        }
    }

    fn permute<T: Float>(&self, x: &[T]) -> Vec<T> {
        let (t, n, d) = (self.t, self.n, self.d);
        let mut out = vec![T::ZERO; x.len()];
        if out.is_empty() || d == 0 {
            return out;
        }
        match self.direction {
            // One task per (batch, head): its `[t, d]` block is contiguous in the output.
            Direction::ToHeads => {
                out.par_chunks_mut(t * d)
                    .enumerate()
                    .for_each(|(pair, block)| {
                        let (batch, head) = (pair / n, pair % n);
                        for (pos, dst) in block.chunks_mut(d).enumerate() {
                            let at = ((batch * t + pos) * n + head) * d;
                            self.put(dst, &x[at..at + d], batch, pos);
                        }
                    })
            }
            // One task per token: its `[n*d]` row is contiguous in the output.
            Direction::FromHeads => {
                out.par_chunks_mut(n * d)
                    .enumerate()
                    .for_each(|(token, row)| {
                        let (batch, pos) = (token / t, token % t);
                        for (head, dst) in row.chunks_mut(d).enumerate() {
                            let at = ((batch * n + head) * t + pos) * d;
                            self.put(dst, &x[at..at + d], batch, pos);
                        }
                    })
            }
        }
        out
    }
}

impl CustomOp1 for Heads {
    fn name(&self) -> &'static str {
        "heads-layout"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = custom_op::apply1(self.name(), (storage, layout), self)?;
        Ok((out, self.out_shape()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let back = grad.contiguous()?.apply_op1(self.inverse())?;
        Ok(Some(back.reshape(x.shape())?))
    }
}

/// The composed equivalent of [`to_heads`], for the tests.
#[cfg(test)]
fn composed_to_heads(
    x: &Tensor,
    (b, t, n, d): (usize, usize, usize, usize),
    rope: Option<(&Tensor, &Tensor)>,
) -> Tensor {
    let heads = x
        .reshape((b, t, n, d))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap();
    match rope {
        Some((cos, sin)) => crate::kernels::rope::composed(
            &heads,
            &cos.unsqueeze(1).unwrap(),
            &sin.unsqueeze(1).unwrap(),
        )
        .unwrap(),
        None => heads,
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn to_heads_with_and_without_rotation_matches_composed_ops() {
        let dev = Device::Cpu;
        let (b, t, n, d) = (2, 5, 3, 8);
        let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (b * t, n * d), &dev).unwrap()).unwrap();
        let angles = Tensor::randn(0f64, 2.0, (b, t, d / 2), &dev).unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let tables = RopeTables::new(cos.clone(), sin.clone()).unwrap();
        let g = Tensor::randn(0f64, 1.0, (b, n, t, d), &dev).unwrap();
        for (rope, reference_rope) in [(Some(&tables), Some((&cos, &sin))), (None, None)] {
            let ours = to_heads(x.as_tensor(), (b, t, n, d), rope).unwrap();
            let reference = composed_to_heads(x.as_tensor(), (b, t, n, d), reference_rope);
            crate::kernels::testing::assert_same_values_and_gradients(
                ours,
                reference,
                &g,
                &[&x],
                1e-13,
                1e-12,
            );
        }
    }

    #[test]
    fn from_heads_matches_composed_ops() {
        let dev = Device::Cpu;
        let (b, n, t, d) = (2, 3, 4, 6);
        let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (b, n, t, d), &dev).unwrap()).unwrap();
        let g = Tensor::randn(0f64, 1.0, (b * t, n * d), &dev).unwrap();
        let ours = from_heads(x.as_tensor()).unwrap();
        let reference = x
            .as_tensor()
            .transpose(1, 2)
            .unwrap()
            .reshape((b * t, n * d))
            .unwrap();
        crate::kernels::testing::assert_same_values_and_gradients(
            ours,
            reference,
            &g,
            &[&x],
            1e-15,
            1e-15,
        );
        // And the two directions undo each other.
        let back = to_heads(&from_heads(x.as_tensor()).unwrap(), (b, t, n, d), None).unwrap();
        assert_eq!(
            crate::kernels::testing::max_abs_diff(&back, x.as_tensor()),
            0.0
        );
    }

    #[test]
    fn the_composed_fallback_other_devices_use_agrees() {
        // bf16 takes the composed path on the CPU too, as every dtype does off the CPU.
        let dev = Device::Cpu;
        let (b, t, n, d) = (2, 3, 2, 4);
        let x = Tensor::randn(0f32, 1.0, (b * t, n * d), &dev).unwrap();
        let angles = Tensor::randn(0f32, 2.0, (b, t, d / 2), &dev).unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let bf = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
        let tables = RopeTables::new(cos.clone(), sin.clone()).unwrap();
        let bf_tables = RopeTables::new(bf(&cos), bf(&sin)).unwrap();
        let kernel = to_heads(&x, (b, t, n, d), Some(&tables)).unwrap();
        let fallback = to_heads(&bf(&x), (b, t, n, d), Some(&bf_tables)).unwrap();
        let diff =
            crate::kernels::testing::max_abs_diff(&kernel, &fallback.to_dtype(DType::F32).unwrap());
        assert!(diff < 0.05, "to_heads: {diff}");
        let back = from_heads(&fallback).unwrap();
        assert_eq!(back.dims(), [b * t, n * d]);
        let diff = crate::kernels::testing::max_abs_diff(
            &from_heads(&kernel).unwrap(),
            &back.to_dtype(DType::F32).unwrap(),
        );
        assert!(diff < 0.05, "from_heads: {diff}");
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((4, 6), DType::F32, &dev).unwrap();
        assert!(to_heads(&x, (1, 4, 2, 4), None).is_err());
        let cos = Tensor::zeros((1, 4, 2), DType::F32, &dev).unwrap();
        let tables = RopeTables::new(cos.clone(), cos.clone()).unwrap();
        assert!(to_heads(&x, (1, 4, 2, 3), Some(&tables)).is_err());
        assert!(RopeTables::new(cos.clone(), cos.squeeze(0).unwrap()).is_err());
    }
}

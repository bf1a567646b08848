//! Rotary position embedding in the Hugging Face (rotate-half) layout, as one differentiable CPU
//! pass: `[x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]` per head, with per-sequence positions
//! (left padding). The rotation is orthogonal, so its backward is the same op with `-sin`.
//! candle's fused `rope` passes no gradient; off the CPU composed ops are used.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};

use crate::error::{Error, Result};

/// Rotates `x` (`[b, heads, t, head_dim]`) by angles whose cosines and sines are `cos`/`sin`
/// (`[b, t, head_dim/2]`).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, _h, t, d) = x.dims4()?;
    if d % 2 != 0 || cos.dims() != [b, t, d / 2] || sin.dims() != cos.dims() {
        return Err(Error::InvalidInput(format!(
            "rope: x {:?}, cos {:?}, sin {:?}",
            x.dims(),
            cos.dims(),
            sin.dims()
        )));
    }
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        let op = Rope {
            cos: cos.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?,
            sin: sin.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?,
        };
        Ok(x.contiguous()?.apply_op1(op)?)
    } else {
        composed(x, &cos.unsqueeze(1)?, &sin.unsqueeze(1)?)
    }
}

/// The composed-op rotation; `cos`/`sin` broadcast against `x` (e.g. `[b, 1, t, head_dim/2]`).
pub fn composed(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Ok(Tensor::cat(&[a, b], D::Minus1)?)
}

struct Rope {
    /// `[b, t, head_dim/2]`, flattened.
    cos: Vec<f64>,
    sin: Vec<f64>,
}

trait Float: Copy + Send + Sync + Into<f64> {
    fn from_f64(v: f64) -> Self;
}
impl Float for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}
impl Float for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}

fn rotate<T: Float>(x: &[T], dims: &[usize], cos: &[f64], sin: &[f64]) -> Vec<T> {
    let (heads, t, d) = (dims[1], dims[2], dims[3]);
    let half = d / 2;
    let mut out = vec![T::from_f64(0.0); x.len()];
    for (row_i, (row, src)) in out.chunks_mut(d).zip(x.chunks(d)).enumerate() {
        let (batch, pos) = (row_i / (heads * t), row_i % t);
        let at = (batch * t + pos) * half;
        let (c, s) = (&cos[at..at + half], &sin[at..at + half]);
        for i in 0..half {
            let (x1, x2) = (src[i].into(), src[i + half].into());
            row[i] = T::from_f64(x1 * c[i] - x2 * s[i]);
            row[i + half] = T::from_f64(x2 * c[i] + x1 * s[i]);
        }
    }
    out
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope-rotate-half"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("rope: non-contiguous input");
        };
        let dims = layout.dims();
        let out = match storage {
            CpuStorage::F32(x) => {
                CpuStorage::F32(rotate(&x[start..end], dims, &self.cos, &self.sin))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(rotate(&x[start..end], dims, &self.cos, &self.sin))
            }
            _ => candle_core::bail!("rope: f32 or f64 only"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let inverse = Rope {
            cos: self.cos.clone(),
            sin: self.sin.iter().map(|s| -s).collect(),
        };
        Ok(Some(grad.contiguous()?.apply_op1(inverse)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn matches_composed_ops_values_and_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (2, 3, 5, 8), &dev).unwrap()).unwrap();
        let angles = Tensor::randn(0f64, 2.0, (2, 5, 4), &dev).unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let g = Tensor::randn(0f64, 1.0, (2, 3, 5, 8), &dev).unwrap();
        let ours = rope(x.as_tensor(), &cos, &sin).unwrap();
        let reference = composed(
            x.as_tensor(),
            &cos.unsqueeze(1).unwrap(),
            &sin.unsqueeze(1).unwrap(),
        )
        .unwrap();
        crate::testing::assert_same_values_and_gradients(ours, reference, &g, &[&x], 1e-14, 1e-14);
    }
}

//! Rotary position embedding in the Hugging Face (rotate-half) layout, as composed candle ops:
//! `[x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]` per head. candle's fused `rope` passes no
//! gradient. On the CPU the rotation is applied by [`super::rotary_heads::to_heads`] while it
//! moves q and k into the head layout (one pass, its own backward); this is its reference and the
//! path other devices take.

use candle_core::{Tensor, D};

use crate::error::Result;

/// The composed-op rotation of `x` (`[b, heads, t, head_dim]`); `cos`/`sin` broadcast against
/// its first half (e.g. `[b, 1, t, head_dim/2]`).
pub fn composed(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Ok(Tensor::cat(&[a, b], D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn rotates_each_pair_by_its_angle() {
        // One head of size 4 at angles (a0, a1): pairs (x0, x2) and (x1, x3) rotate.
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[[1f64, 2.0, 3.0, 4.0]]]], &dev).unwrap();
        let (a0, a1) = (0.3f64, -1.1f64);
        let cos = Tensor::new(&[[[[a0.cos(), a1.cos()]]]], &dev).unwrap();
        let sin = Tensor::new(&[[[[a0.sin(), a1.sin()]]]], &dev).unwrap();
        let got: Vec<f64> = composed(&x, &cos, &sin)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = [
            1.0 * a0.cos() - 3.0 * a0.sin(),
            2.0 * a1.cos() - 4.0 * a1.sin(),
            3.0 * a0.cos() + 1.0 * a0.sin(),
            4.0 * a1.cos() + 2.0 * a1.sin(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }
}

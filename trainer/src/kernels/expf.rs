//! `exp` of a softmax row or of sigmoids' arguments, eight at a time, with exactly the bits of
//! the C library's `expf`.
//!
//! The softmaxes of attention and the sigmoids of the MLP's gate (in training and in decoding)
//! called `f32::exp` once per entry: glibc's `expf` behind a call, one value at a time, 5% of a
//! GRPO step and 3.5% of an SFT step. Its algorithm (Arm's optimized-routines, which glibc ships)
//! is a few double-precision operations on a 32-entry table, so it vectorizes; done here in the
//! order and with the fused multiply-adds of glibc's x86-64 FMA build (`__expf_fma`, what the
//! CPUs we train on run), each result is the same float `f32::exp` returns there, which the tests
//! check for every float. So swapping it in changes no token, loss or evaluation. Where glibc
//! would pick its non-FMA build (CPUs without FMA) this still computes the FMA build's bits: the
//! same everywhere.

/// `2^(i/32)` rounded to the nearest double, as bits, minus `i << 47`: adding `k << 47` for an
/// integer `k` with `k % 32 == i` gives the bits of `2^(k/32)`.
const TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];

/// `32 / ln 2`.
const INV_LN2_N: f64 = f64::from_bits(0x40471547652b82fe);
/// `1.5 * 2^52`: adding it rounds to an integer held in the low mantissa bits.
const SHIFT: f64 = f64::from_bits(0x4338000000000000);
/// The cubic for `2^(r/32)` on `r` in [-1/2, 1/2], highest degree first.
const C0: f64 = f64::from_bits(0x3ebc6af84b912394);
const C1: f64 = f64::from_bits(0x3f2ebfce50fac4f3);
const C2: f64 = f64::from_bits(0x3f962e42ff0c52d6);
/// Below this `expf` is zero (`log(2^-150)`), below [`MAY_UNDERFLOW`] the smallest subnormal,
/// and above [`OVERFLOW`] infinity: the inputs glibc answers without its polynomial.
const UNDERFLOW: f32 = -103.972_08;
const MAY_UNDERFLOW: f32 = -103.278_93;
const OVERFLOW: f32 = 88.722_83;

/// `expf(x)`, glibc's `__expf_fma` step by step (NaN stays NaN).
#[inline(always)]
fn expf(x: f32) -> f32 {
    let xd = x as f64;
    let kd = INV_LN2_N.mul_add(xd, SHIFT);
    let ki = kd.to_bits();
    let kd = kd - SHIFT;
    let r = INV_LN2_N.mul_add(xd, -kd);
    let s = f64::from_bits(TABLE[(ki & 31) as usize].wrapping_add(ki << 47));
    let z = C0.mul_add(r, C1);
    let r2 = r * r;
    let y = C2.mul_add(r, 1.0);
    let y = z.mul_add(r2, y);
    if x < UNDERFLOW {
        0.0
    } else if x < MAY_UNDERFLOW {
        f32::from_bits(1)
    } else if x > OVERFLOW {
        f32::INFINITY
    } else {
        (y * s) as f32
    }
}

/// `row[i] <- exp(row[i] - max)`: the exponentials of a softmax row whose largest entry is
/// `max` (exactly zero where they underflow, as `expf`'s are). Compiled for AVX-512 and AVX2
/// with FMA where the CPU has them (chosen at run time).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub(crate) fn exp_shifted(row: &mut [f32], max: f32) {
    for v in row.iter_mut() {
        *v = expf(*v - max);
    }
}

/// `out[i] <- exp(-x[i])`: the exponentials of a sigmoid, `1 / (1 + exp(-x))`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub(crate) fn exp_neg(x: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = expf(-x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the softmaxes stopped calling libm before: its `expf` is zero below.
    const EXP_UNDERFLOW: f32 = -104.0;

    /// The reference: what the softmaxes computed before, one libm call per entry.
    fn reference(x: f32) -> f32 {
        if x < EXP_UNDERFLOW {
            0.0
        } else {
            x.exp()
        }
    }

    #[test]
    fn table_is_two_to_the_i_over_32() {
        for (i, &t) in TABLE.iter().enumerate() {
            let v = f64::from_bits(t + ((i as u64) << 47));
            let want = (i as f64 / 32.0).exp2();
            assert!((v - want).abs() <= f64::EPSILON * want, "entry {i}");
        }
    }

    /// Whether libm's `expf` is glibc's FMA build, the one this reproduces.
    fn libm_is_glibc_fma() -> bool {
        cfg!(all(
            target_arch = "x86_64",
            target_os = "linux",
            target_env = "gnu"
        )) && std::arch::is_x86_feature_detected!("fma")
    }

    /// How many floats with bit patterns in `bits` `ours` (over a slice) maps to other bits than
    /// `want` (one at a time); NaN matches NaN.
    fn mismatches(
        bits: std::ops::RangeInclusive<u32>,
        ours: impl Fn(&[f32]) -> Vec<f32> + Sync,
        want: impl Fn(f32) -> f32 + Sync,
    ) -> u64 {
        use rayon::prelude::*;
        let (first, last) = (*bits.start(), *bits.end());
        let chunk = 1u32 << 20;
        (first..=last)
            .step_by(chunk as usize)
            .collect::<Vec<u32>>()
            .into_par_iter()
            .map(|start| {
                let x: Vec<f32> = (start..=start.saturating_add(chunk - 1).min(last))
                    .map(f32::from_bits)
                    .collect();
                let got = ours(&x);
                x.iter()
                    .zip(&got)
                    .filter(|(&x, g)| {
                        let w = want(x);
                        !(w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan()))
                    })
                    .count() as u64
            })
            .sum()
    }

    /// Every float from -104 to 0 (about 1.1 billion: the bit patterns from -0.0's up to
    /// -104's), and a row shifted by its maximum, as the softmaxes pass them.
    #[test]
    fn same_bits_as_libm_for_every_float_a_softmax_passes() {
        if !libm_is_glibc_fma() {
            return;
        }
        let shifted = |x: &[f32]| {
            let mut row = x.to_vec();
            exp_shifted(&mut row, 0.0);
            row
        };
        let bad = mismatches(0x8000_0000..=EXP_UNDERFLOW.to_bits(), shifted, reference);
        assert_eq!(bad, 0, "floats whose exp differs from libm's");
        let mut row: Vec<f32> = (0..4096).map(|i| (i as f32) * 0.037 - 120.0).collect();
        let max = 3.25f32;
        let want: Vec<f32> = row.iter().map(|&v| reference(v - max)).collect();
        exp_shifted(&mut row, max);
        assert!(crate::kernels::testing::same_bits(&row, &want));
    }

    /// All 2^32 floats, as a sigmoid may pass any.
    #[test]
    fn exp_neg_has_the_bits_of_libm_for_every_float() {
        if !libm_is_glibc_fma() {
            return;
        }
        let ours = |x: &[f32]| {
            let mut out = vec![0f32; x.len()];
            exp_neg(x, &mut out);
            out
        };
        let bad = mismatches(0..=u32::MAX, ours, |x| (-x).exp());
        assert_eq!(bad, 0, "floats whose exp(-x) differs from libm's");
    }
}

//! What the CPU custom ops share: one float trait for their f32 and f64 kernels, and the step
//! from candle's storages to a kernel's slices (contiguous inputs of one dtype, f32 or f64, or an
//! error naming the op). Each op's `cpu_fwd` is then one call with its kernel. Row-wise kernels
//! split their work with [`for_row_blocks`].

use candle_core::{CpuStorage, Layout};
use rayon::prelude::*;

/// Where one operand's `[b, heads, positions, d]` entries lie in its storage: start and the
/// strides of the first three dimensions (the last is 1). What kernels reading strided
/// key/value buffers in place (decoding's attention, the KV cache's slot writes) index by.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    pub start: usize,
    pub b: usize,
    pub head: usize,
    pub pos: usize,
}

impl Strided {
    /// The strides of `layout`, or an error naming `op` when it is not 4-D with its last
    /// dimension contiguous.
    pub fn of(layout: &Layout, op: &str) -> candle_core::Result<Self> {
        let s = layout.stride();
        if s.len() != 4 || s[3] != 1 {
            candle_core::bail!("{op}: the last dimension must be contiguous");
        }
        Ok(Strided {
            start: layout.start_offset(),
            b: s[0],
            head: s[1],
            pos: s[2],
        })
    }

    /// Where entry `(b, head, pos, 0)` starts.
    pub fn at(&self, b: usize, head: usize, pos: usize) -> usize {
        self.start + b * self.b + head * self.head + pos * self.pos
    }
}

/// The float operations the kernels use, for f32 and f64. Kernels that accumulate delicate sums
/// (norms) go through `f64` with [`Float::from_f64`] and `Into<f64>`.
pub(crate) trait Float:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Into<f64>
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    /// `row[i] <- exp(row[i] - max)`: a softmax row's exponentials, exactly zero where they
    /// underflow.
    fn exp_shifted(row: &mut [Self], max: Self);
    /// `out[i] <- exp(-x[i])`: a sigmoid's exponentials, many at once.
    fn exp_neg(x: &[Self], out: &mut [Self]);
    fn max(self, other: Self) -> Self;
}

macro_rules! float {
    ($t:ty, $exp_shifted:expr, $exp_neg:expr) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn exp_shifted(row: &mut [Self], max: Self) {
                $exp_shifted(row, max)
            }
            fn exp_neg(x: &[Self], out: &mut [Self]) {
                $exp_neg(x, out)
            }
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
        }
    };
}
// f32 rows take the eight-wide `expf` with libm's bits; f64 rows (reference runs) libm's `exp`.
float!(
    f32,
    crate::kernels::expf::exp_shifted,
    crate::kernels::expf::exp_neg
);
float!(
    f64,
    |row: &mut [f64], max: f64| {
        for v in row.iter_mut() {
            let z = *v - max;
            // Below this `exp` is exactly zero: masked entries skip libm's slow underflow path.
            *v = if z < -746.0 { 0.0 } else { z.exp() };
        }
    },
    |x: &[f64], out: &mut [f64]| {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = (-x).exp();
        }
    }
);

/// Elements per task of a row-wise kernel: enough that rayon's dispatch is noise, few enough
/// that both threads get work from a single attention layer's rows.
pub(crate) const ROW_BLOCK_ELEMS: usize = 16384;

/// Whole rows (of `width`) per task of a row-wise kernel.
pub(crate) fn rows_per_task(width: usize) -> usize {
    (ROW_BLOCK_ELEMS / width.max(1)).max(1)
}

/// Runs `f(first_row, block)` on rayon's pool over blocks of whole rows of `out`.
pub(crate) fn for_row_blocks<T: Send>(
    out: &mut [T],
    width: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    let rows = rows_per_task(width);
    out.par_chunks_mut(rows * width.max(1))
        .enumerate()
        .for_each(|(i, block)| f(i * rows, block));
}

/// `row <- softmax(row)` with max-subtraction, the exponentials a row at a time
/// ([`Float::exp_shifted`]); the training and decoding attentions' softmax.
pub(crate) fn softmax_in_place<T: Float>(row: &mut [T]) {
    let max = row.iter().copied().fold(T::NEG_INFINITY, T::max);
    T::exp_shifted(row, max);
    // Summed in order, one after another: the bits of the single pass this was.
    let mut sum = T::ZERO;
    for &v in row.iter() {
        sum = sum + v;
    }
    for v in row.iter_mut() {
        *v = *v / sum;
    }
}

/// Query rows advancing together in [`softmax_rows_in_place`]: independent chains the core
/// overlaps, where one row's ordered sum waits on each addition.
const SOFTMAX_CHAINS: usize = 4;

/// Each `width`-long row of `rows` through [`softmax_in_place`], with its bits: the same maximum,
/// exponentials and in-order sum per row, four rows' maxima and sums side by side (decoding's
/// attention, whose rows are a few query heads over a long cache).
pub(crate) fn softmax_rows_in_place<T: Float>(rows: &mut [T], width: usize) {
    if width == 0 {
        return;
    }
    for group in rows.chunks_mut(width * SOFTMAX_CHAINS) {
        let live = group.len() / width;
        let mut max = [T::NEG_INFINITY; SOFTMAX_CHAINS];
        for j in 0..width {
            for (r, m) in max.iter_mut().enumerate().take(live) {
                *m = m.max(group[r * width + j]);
            }
        }
        for (row, &max) in group.chunks_mut(width).zip(&max) {
            T::exp_shifted(row, max);
        }
        let mut sum = [T::ZERO; SOFTMAX_CHAINS];
        for j in 0..width {
            for (r, s) in sum.iter_mut().enumerate().take(live) {
                *s = *s + group[r * width + j];
            }
        }
        for (row, &sum) in group.chunks_mut(width).zip(&sum) {
            for v in row.iter_mut() {
                *v = *v / sum;
            }
        }
    }
}

/// `row <- softmax(row * scale + mask)`: one query row of masked attention.
pub(crate) fn masked_softmax_in_place<T: Float>(row: &mut [T], mask: &[T], scale: T) {
    for (x, &m) in row.iter_mut().zip(mask) {
        *x = *x * scale + m;
    }
    softmax_in_place(row);
}

/// `g <- scale * p * (g - sum(g * p))`: the backward of [`masked_softmax_in_place`] (of a plain
/// softmax at `scale` 1) for one row, from the output's gradient `g` and the output `p`.
pub(crate) fn softmax_backward_in_place<T: Float>(g: &mut [T], p: &[T], scale: T) {
    let mut dot = T::ZERO;
    for (&gv, &pv) in g.iter().zip(p) {
        dot = dot + gv * pv;
    }
    for (gv, &pv) in g.iter_mut().zip(p) {
        *gv = (*gv - dot) * pv * scale;
    }
}

/// A kernel of one input.
pub(crate) trait Kernel1 {
    fn run<T: Float>(&self, x: &[T]) -> Vec<T>;
}

/// A kernel of two inputs of one dtype.
pub(crate) trait Kernel2 {
    fn run<T: Float>(&self, a: &[T], b: &[T]) -> Vec<T>;
}

/// A kernel of three inputs of one dtype.
pub(crate) trait Kernel3 {
    fn run<T: Float>(&self, a: &[T], b: &[T], c: &[T]) -> Vec<T>;
}

/// The contiguous part of `layout` in a storage of `len` elements.
fn range(op: &str, layout: &Layout) -> candle_core::Result<std::ops::Range<usize>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(start..end),
        None => candle_core::bail!("{op}: non-contiguous input"),
    }
}

/// The contiguous elements of `s` under `l`, as `T` (an error naming `op` otherwise).
pub(crate) fn slice<'a, T: candle_core::WithDType>(
    op: &str,
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    Ok(&s.as_slice::<T>()?[range(op, l)?])
}

/// Runs `kernel` on the slice of `s` (f32 or f64, contiguous).
pub(crate) fn apply1(
    op: &str,
    (s, l): (&CpuStorage, &Layout),
    kernel: &impl Kernel1,
) -> candle_core::Result<CpuStorage> {
    let r = range(op, l)?;
    Ok(match s {
        CpuStorage::F32(x) => CpuStorage::F32(kernel.run(&x[r])),
        CpuStorage::F64(x) => CpuStorage::F64(kernel.run(&x[r])),
        _ => candle_core::bail!("{op}: f32 or f64 only"),
    })
}

/// Runs `kernel` on the slices of `a` and `b` (one dtype, f32 or f64, contiguous).
pub(crate) fn apply2(
    op: &str,
    (sa, la): (&CpuStorage, &Layout),
    (sb, lb): (&CpuStorage, &Layout),
    kernel: &impl Kernel2,
) -> candle_core::Result<CpuStorage> {
    let (ra, rb) = (range(op, la)?, range(op, lb)?);
    Ok(match (sa, sb) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => CpuStorage::F32(kernel.run(&a[ra], &b[rb])),
        (CpuStorage::F64(a), CpuStorage::F64(b)) => CpuStorage::F64(kernel.run(&a[ra], &b[rb])),
        _ => candle_core::bail!("{op}: f32 or f64 inputs of one dtype"),
    })
}

/// Runs `kernel` on the slices of `a`, `b` and `c` (one dtype, f32 or f64, contiguous).
pub(crate) fn apply3(
    op: &str,
    (sa, la): (&CpuStorage, &Layout),
    (sb, lb): (&CpuStorage, &Layout),
    (sc, lc): (&CpuStorage, &Layout),
    kernel: &impl Kernel3,
) -> candle_core::Result<CpuStorage> {
    let (ra, rb, rc) = (range(op, la)?, range(op, lb)?, range(op, lc)?);
    Ok(match (sa, sb, sc) {
        (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
            CpuStorage::F32(kernel.run(&a[ra], &b[rb], &c[rc]))
        }
        (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
            CpuStorage::F64(kernel.run(&a[ra], &b[rb], &c[rc]))
        }
        _ => candle_core::bail!("{op}: f32 or f64 inputs of one dtype"),
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    struct Sum;
    impl Kernel2 for Sum {
        fn run<T: Float>(&self, a: &[T], b: &[T]) -> Vec<T> {
            a.iter().zip(b).map(|(&x, &y)| x + y).collect()
        }
    }

    #[test]
    fn mixed_dtypes_and_strided_inputs_are_named_errors() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &dev).unwrap();
        let b = a.to_dtype(candle_core::DType::F64).unwrap();
        let (sa, la) = a.storage_and_layout();
        let (sb, lb) = b.storage_and_layout();
        let (candle_core::Storage::Cpu(sa), candle_core::Storage::Cpu(sb)) = (&*sa, &*sb) else {
            panic!("CPU tensors");
        };
        let err = apply2("sum-op", (sa, la), (sb, lb), &Sum).unwrap_err();
        assert!(
            err.to_string()
                .contains("sum-op: f32 or f64 inputs of one dtype"),
            "{err}"
        );
        let summed = apply2("sum-op", (sa, la), (sa, la), &Sum).unwrap();
        assert!(matches!(summed, CpuStorage::F32(v) if v == [2.0, 4.0, 6.0, 8.0]));
        let t = a.t().unwrap();
        let (st, lt) = t.storage_and_layout();
        let candle_core::Storage::Cpu(st) = &*st else {
            panic!("CPU tensor");
        };
        let err = apply2("sum-op", (st, lt), (sa, la), &Sum).unwrap_err();
        assert!(
            err.to_string().contains("sum-op: non-contiguous input"),
            "{err}"
        );
    }
    #[test]
    fn rows_together_have_the_bits_of_one_row_at_a_time() {
        let mut state = 0x51_7cc1_b727_220au64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Masked entries (-1e9) among scores, as decoding's attention has them.
            if state.is_multiple_of(11) {
                -1e9
            } else {
                (state % 20001) as f32 / 1000.0 - 10.0
            }
        };
        for width in [0usize, 1, 7, 300] {
            for count in 1..=9 {
                let scores: Vec<f32> = (0..width * count).map(|_| next()).collect();
                let mut together = scores.clone();
                softmax_rows_in_place(&mut together, width);
                let mut alone = scores;
                alone.chunks_mut(width.max(1)).for_each(softmax_in_place);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&together), bits(&alone), "width {width}, {count} rows");
            }
        }
    }
}

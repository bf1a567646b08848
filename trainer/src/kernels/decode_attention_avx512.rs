//! One task of decoding's attention (one row, one key/value head: see
//! [`super::decode_attention`]) written with AVX-512 registers, computing exactly what the
//! portable loop computes, operation for operation, so that a token decodes to the same bits
//! either way (tested against it).
//!
//! The portable loop left the compiler to keep its accumulators: eight keys' partial sums went
//! through the stack at every step, and every query row's output was loaded and stored again
//! for every key. Here the partial sums of eight keys stay in eight registers and are reduced by
//! one transpose, and up to four query rows' outputs stay in registers across all the keys.
//! Nothing is reordered: each dot product is still eight lane sums of products (multiply, then
//! add: no fused multiply-add), added lane by lane from the first, the softmax is the one both
//! forms share (`custom_op::softmax_rows_in_place`), and each output still adds `p * v` key
//! after key.

#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256, __m512, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_permute2f128_ps,
    _mm256_set1_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_unpackhi_ps,
    _mm256_unpacklo_ps, _mm512_add_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_storeu_ps,
};

/// Keys whose dot products one pass computes (one register of partial sums each).
const KEYS: usize = 8;

/// Whether this CPU has the registers [`task`] needs and `d` (the head size) is one it is
/// written for.
pub(crate) fn applies(d: usize) -> bool {
    (d == 64 || d == 128)
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// Where a task's keys and values lie, and what it computes them with.
pub(crate) struct Task<'a> {
    /// The task's query rows, `rows × d`.
    pub q: &'a [f32],
    /// The key of each position (each `d` long).
    pub keys: &'a dyn Fn(usize) -> &'a [f32],
    /// The value of each position (each `d` long).
    pub values: &'a dyn Fn(usize) -> &'a [f32],
    /// The additive mask of query row `r`'s position `r % t`: `t × total`.
    pub mask: &'a [f32],
    pub t: usize,
    pub scale: f32,
    pub rows: usize,
    pub d: usize,
    pub total: usize,
}

/// Computes the task into `out` (`rows × d`, zeroed), with `scores` (`rows × total`) as
/// scratch. Call only where [`applies`] holds for `task.d`.
pub(crate) fn run(task: &Task<'_>, scores: &mut [f32], out: &mut [f32]) {
    assert!(
        applies(task.d),
        "decode attention: no AVX-512 task for d {}",
        task.d
    );
    // SAFETY: `applies` has just checked that the CPU has AVX-512 F and VL, the only
    // requirement of the target features below; every load and store is within a slice of the
    // length it reads or writes (see each one).
    unsafe {
        scores_of(task, scores);
        crate::kernels::custom_op::softmax_rows_in_place(scores, task.total);
        if task.d == 64 {
            weighted_values::<4, 4>(task, scores, out);
        } else {
            weighted_values::<8, 2>(task, scores, out);
        }
    }
}

/// `scores[r, j] = (q_r . k_j) * scale + mask[r % t, j]`, each dot product summed as
/// `decode_attention::dots` sums it.
#[target_feature(enable = "avx512f,avx512vl")]
fn scores_of(task: &Task<'_>, scores: &mut [f32]) {
    let (d, total) = (task.d, task.total);
    let chunks = d / 8;
    let scale = _mm256_set1_ps(task.scale);
    let mut j = 0;
    while j < total {
        // A short last block repeats its last key; the extra dots are not stored.
        let n = KEYS.min(total - j);
        let keys: [&[f32]; KEYS] = std::array::from_fn(|i| &(task.keys)(j + i.min(n - 1))[..d]);
        for r in 0..task.rows {
            let q = &task.q[r * d..(r + 1) * d];
            let mut acc = [_mm256_setzero_ps(); KEYS];
            for c in 0..chunks {
                // SAFETY: 8c + 8 <= d, the length of `q` and of every key slice.
                let x = unsafe { _mm256_loadu_ps(q.as_ptr().add(8 * c)) };
                for (acc, key) in acc.iter_mut().zip(&keys) {
                    let y = unsafe { _mm256_loadu_ps(key.as_ptr().add(8 * c)) };
                    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(x, y));
                }
            }
            // Lane l of `lanes[l]` holds lane l of every key's sums: added from the first lane
            // on, as the portable loop adds them (from -0.0, which adds exactly).
            let lanes = transpose(acc);
            let mut dot = _mm256_set1_ps(-0.0);
            for lane in lanes {
                dot = _mm256_add_ps(dot, lane);
            }
            let mut scaled = [0f32; KEYS];
            // SAFETY: `scaled` holds 8 floats.
            unsafe { _mm256_storeu_ps(scaled.as_mut_ptr(), _mm256_mul_ps(dot, scale)) };
            let mask = &task.mask[(r % task.t) * total + j..][..n];
            for ((s, x), m) in scores[r * total + j..][..n]
                .iter_mut()
                .zip(scaled)
                .zip(mask)
            {
                *s = x + m;
            }
        }
        j += n;
    }
}

/// The 8 × 8 transpose: lane `k` of result `l` is lane `l` of input `k`.
#[target_feature(enable = "avx512f,avx512vl")]
fn transpose(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// `out[r] = Σ_j p[r, j] v_j`, adding key after key and skipping the zero weights, as the
/// portable loop does: `G` query rows at a time, each output `V` registers (`d = 16 V`) kept in
/// registers across every key.
#[target_feature(enable = "avx512f,avx512vl")]
fn weighted_values<const V: usize, const G: usize>(
    task: &Task<'_>,
    scores: &[f32],
    out: &mut [f32],
) {
    let (d, total) = (task.d, task.total);
    let mut r0 = 0;
    while r0 < task.rows {
        let live = G.min(task.rows - r0);
        let mut acc: [[__m512; V]; G] = [[_mm512_setzero_ps(); V]; G];
        for j in 0..total {
            let p: [f32; G] = std::array::from_fn(|g| {
                if g < live {
                    scores[(r0 + g) * total + j]
                } else {
                    0.0
                }
            });
            if p.iter().all(|&p| p == 0.0) {
                continue;
            }
            let value = &(task.values)(j)[..d];
            let mut v = [_mm512_setzero_ps(); V];
            for (i, v) in v.iter_mut().enumerate() {
                // SAFETY: 16i + 16 <= 16V = d, the length of `value`.
                *v = unsafe { _mm512_loadu_ps(value.as_ptr().add(16 * i)) };
            }
            for (acc, &p) in acc.iter_mut().zip(&p) {
                if p == 0.0 {
                    continue;
                }
                let p = _mm512_set1_ps(p);
                for (a, v) in acc.iter_mut().zip(&v) {
                    *a = _mm512_add_ps(*a, _mm512_mul_ps(p, *v));
                }
            }
        }
        for (g, acc) in acc.iter().enumerate().take(live) {
            let o = &mut out[(r0 + g) * d..(r0 + g + 1) * d];
            for (i, a) in acc.iter().enumerate() {
                // SAFETY: 16i + 16 <= d, the length of `o`.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(16 * i), *a) };
            }
        }
        r0 += live;
    }
}

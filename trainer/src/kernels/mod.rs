//! Kernels: the CPU custom ops the model runs on, each one pass over memory where candle's
//! composed ops take several, and each named for what it computes. The training ops come with a
//! hand-written one-pass backward (candle's fused `rms_norm`, `rope`, `softmax_last_dim` and
//! `sdpa` pass no gradient); every one is tested against the composed candle ops it replaces, in
//! value and in gradient, and falls back to those ops off the CPU and for dtypes it has no kernel
//! for. `custom_op` is their shared plumbing: one float trait, the step from candle's storages to
//! a kernel's slices, and one split of row-wise work over rayon's pool.
//!
//! The bottom room: it may use candle and the crate-wide plumbing (`error`, `process`), nothing
//! of the model, sampling or training. A new kernel goes here beside its reference test; the
//! model (`crate::model`) decides where it is called.

pub mod attention;
pub(crate) mod custom_op;
pub mod decode_attention;
#[cfg(target_arch = "x86_64")]
mod decode_attention_avx512;
pub mod decode_matmul;
mod expf;
pub mod rms_norm;
pub mod rope;
pub mod rotary_heads;
pub mod softmax;
pub mod swiglu;
#[cfg(test)]
mod testing;
pub mod token_logprobs;

//! `log softmax(hidden @ W^T)[target]`, row by row, without ever holding the full
//! `[rows, vocab]` logits — in the forward pass *and* in the backward pass.
//!
//! Composed ops would keep every chunk's logits alive in the autograd graph until backward
//! (about 1.2 GB at 8 x 256 tokens for a 49k vocabulary). Instead the forward values are computed
//! chunk by chunk without a graph, and a custom op carries them into the graph; its backward
//! recomputes each chunk's softmax and accumulates
//! `dL/dh = Σ_c g (onehot - p) W` and `dL/dW = Σ_c (g (onehot - p))^T h`.
//! Only CPU storage can be handed to the custom op, so other devices use composed ops.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor, D};

use crate::error::{Error, Result};

/// Log-probabilities of `targets` (`[n]`) under `softmax(hidden @ weight^T)` for hidden `[n, h]`
/// and weight `[vocab, h]`; returns `[n]`, differentiable w.r.t. `hidden` and `weight`.
pub fn chunked_logprobs(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    chunk: usize,
) -> Result<Tensor> {
    with_backward_blocks(hidden, weight, targets, chunk, BACKWARD_BLOCK_ELEMS)
}

/// [`chunked_logprobs`] with the backward's vocabulary blocks holding `block_elems` logits.
fn with_backward_blocks(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    chunk: usize,
    block_elems: usize,
) -> Result<Tensor> {
    let (n, h) = hidden.dims2()?;
    let (vocab, wh) = weight.dims2()?;
    if wh != h || targets.dims() != [n] {
        return Err(Error::InvalidInput(format!(
            "chunked_logprobs: hidden {:?}, weight {:?}, targets {:?}",
            hidden.dims(),
            weight.dims(),
            targets.dims()
        )));
    }
    let targets = targets.to_dtype(DType::U32)?;
    let max_target = if n > 0 {
        targets.max(0)?.to_scalar::<u32>()? as usize
    } else {
        0
    };
    if max_target >= vocab {
        return Err(Error::InvalidInput(format!(
            "target id {max_target} outside the vocabulary ({vocab})"
        )));
    }
    let chunk = chunk.max(1);
    if !(hidden.track_op() || weight.track_op()) {
        return forward(hidden, weight, &targets, chunk);
    }
    let on_cpu = hidden.device().is_cpu() && weight.device().is_cpu();
    if !on_cpu || !matches!(hidden.dtype(), DType::F32 | DType::F64) {
        return composed(hidden, weight, &targets, chunk);
    }
    let (values, lse) = forward_with_lse(&hidden.detach(), &weight.detach(), &targets, chunk)?;
    let stored = match values.dtype() {
        DType::F64 => CpuStorage::F64(values.to_vec1()?),
        _ => CpuStorage::F32(values.to_dtype(DType::F32)?.to_vec1()?),
    };
    let op = ChunkedLogprobs {
        targets,
        lse,
        values: stored,
        n,
        block_elems,
    };
    Ok(hidden.apply_op2(weight, op)?)
}

/// Graph-free forward: one `[chunk, vocab]` block at a time.
fn forward(hidden: &Tensor, weight: &Tensor, targets: &Tensor, chunk: usize) -> Result<Tensor> {
    Ok(forward_with_lse(hidden, weight, targets, chunk)?.0)
}

/// [`forward`], also returning each row's `logsumexp(logits)` (`[n]`), which the backward needs.
fn forward_with_lse(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    chunk: usize,
) -> Result<(Tensor, Tensor)> {
    let n = hidden.dim(0)?;
    let mut parts = Vec::with_capacity(n.div_ceil(chunk));
    let mut lses = Vec::with_capacity(n.div_ceil(chunk));
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let logits = hidden.narrow(0, start, len)?.matmul(&weight.t()?)?;
        let (picked, lse) = pick(&logits, &targets.narrow(0, start, len)?)?;
        parts.push(picked);
        lses.push(lse);
        start += len;
    }
    if parts.is_empty() {
        let empty = Tensor::zeros(0, hidden.dtype(), hidden.device())?;
        return Ok((empty.clone(), empty));
    }
    Ok((Tensor::cat(&parts, 0)?, Tensor::cat(&lses, 0)?))
}

/// `(logits[i, target[i]] - logsumexp(logits[i]), logsumexp(logits[i]))`, with a detached max
/// for stability.
fn pick(logits: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let z = logits.broadcast_sub(&max)?;
    let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = z.gather(&targets.unsqueeze(1)?, D::Minus1)?;
    let logprob = (picked - &lse)?.squeeze(D::Minus1)?;
    Ok((logprob, (lse + max)?.squeeze(D::Minus1)?))
}

/// Differentiable composed-op version (autograd keeps every chunk; used off the CPU).
fn composed(hidden: &Tensor, weight: &Tensor, targets: &Tensor, chunk: usize) -> Result<Tensor> {
    forward(hidden, weight, targets, chunk)
}

struct ChunkedLogprobs {
    targets: Tensor,
    /// Each row's `logsumexp(logits)` from the forward pass.
    lse: Tensor,
    values: CpuStorage,
    n: usize,
    block_elems: usize,
}

/// Elements of one `[rows, vocab block]` slice of the logits in the backward pass: 16 MiB in
/// f32. It was sized below glibc's largest mmap threshold so the blocks reused heap memory
/// instead of being faulted in afresh; since [`crate::process`] turns mmap off, every block
/// does, and this is only how much of the logits one block holds.
const BACKWARD_BLOCK_ELEMS: usize = 4 << 20;

impl CustomOp2 for ChunkedLogprobs {
    fn name(&self) -> &'static str {
        "chunked-logprobs"
    }

    fn cpu_fwd(
        &self,
        _s1: &CpuStorage,
        _l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        // The values were computed (chunk by chunk) before the op was applied.
        Ok((self.values.clone(), Shape::from(self.n)))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // With G = g (onehot(target) - p), dh = G W and dW = G^T h. The onehot part is a
        // gather and an index_add; the softmax part runs over blocks of the vocabulary, so each
        // block's rows of dW are written once (row chunks would add a full-size dW per chunk).
        let hidden = hidden.detach();
        let weight = weight.detach();
        let vocab = weight.dim(0)?;
        let g = grad.unsqueeze(1)?;
        let neg_g = g.neg()?;
        let lse = self.lse.unsqueeze(1)?;
        let block = (self.block_elems / self.n.max(1)).clamp(1, vocab.max(1));
        let mut d_hidden = weight.index_select(&self.targets, 0)?.broadcast_mul(&g)?;
        let mut d_weight_blocks = Vec::with_capacity(vocab.div_ceil(block));
        let mut start = 0;
        while start < vocab {
            let len = block.min(vocab - start);
            let w = weight.narrow(0, start, len)?;
            let probs = hidden.matmul(&w.t()?)?.broadcast_sub(&lse)?.exp()?;
            let d_logits = probs.broadcast_mul(&neg_g)?;
            d_hidden = (d_hidden + d_logits.matmul(&w)?)?;
            d_weight_blocks.push(d_logits.t()?.matmul(&hidden)?);
            start += len;
        }
        let d_weight = if d_weight_blocks.is_empty() {
            weight.zeros_like()?
        } else {
            Tensor::cat(&d_weight_blocks, 0)?
        };
        let d_weight = d_weight.index_add(&self.targets, &hidden.broadcast_mul(&g)?, 0)?;
        Ok((Some(d_hidden), Some(d_weight)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn custom_op_matches_composed_ops_values_and_gradients() {
        let dev = Device::Cpu;
        let hidden = Var::from_tensor(&Tensor::randn(0f64, 1.0, (7, 5), &dev).unwrap()).unwrap();
        let weight = Var::from_tensor(&Tensor::randn(0f64, 1.0, (11, 5), &dev).unwrap()).unwrap();
        let targets = Tensor::new(&[0u32, 3, 10, 5, 5, 1, 9], &dev).unwrap();
        let scale = Tensor::new(&[1.0f64, -2.0, 0.5, 3.0, 0.0, 1.5, -1.0], &dev).unwrap();
        // Row chunks of 3 forward, vocabulary blocks of 2 (14 / 7 rows) backward: both split.
        let ours =
            with_backward_blocks(hidden.as_tensor(), weight.as_tensor(), &targets, 3, 14).unwrap();
        let reference = composed(hidden.as_tensor(), weight.as_tensor(), &targets, 7).unwrap();
        assert!(max_diff(&ours, &reference) < 1e-12);
        let g1 = (ours * &scale)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (reference * &scale)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in [&hidden, &weight] {
            let a = g1.get(var.as_tensor()).unwrap();
            let b = g2.get(var.as_tensor()).unwrap();
            assert!(
                max_diff(a, b) < 1e-12,
                "gradient differs by {}",
                max_diff(a, b)
            );
        }
    }

    #[test]
    fn out_of_range_targets_are_an_error() {
        let dev = Device::Cpu;
        let hidden = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let weight = Tensor::zeros((4, 3), DType::F32, &dev).unwrap();
        let targets = Tensor::new(&[1u32, 4], &dev).unwrap();
        assert!(chunked_logprobs(&hidden, &weight, &targets, 8).is_err());
    }
}

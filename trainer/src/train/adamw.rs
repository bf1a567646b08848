//! AdamW with decoupled weight decay (Loshchilov & Hutter; the same update as `torch.optim.AdamW`).
//!
//! candle-nn's AdamW spends about ten tensor ops, each a full pass over memory with a fresh
//! allocation, per parameter. Here f32 parameters on the CPU are updated in place in one fused
//! pass (candle's in-place custom op gives the parameter's buffer; the moments are plain vectors
//! owned by the optimizer), split across threads. Other devices and dtypes use tensor ops.
//!
//! For each parameter `p` with gradient `g`, at step `t`:
//! `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g²`,
//! `p = p (1 - lr wd) - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// AdamW hyper-parameters (defaults as in PyTorch).
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

enum Moments {
    /// Fused CPU path.
    Cpu { m: Vec<f32>, v: Vec<f32> },
    /// Tensor-op path for other devices and dtypes.
    Tensors { m: Tensor, v: Tensor },
}

/// AdamW over a set of variables.
pub struct AdamW {
    params: Vec<(Var, Moments)>,
    config: AdamWConfig,
    step: u64,
}

impl AdamW {
    /// An optimizer for `vars` with zeroed moments.
    pub fn new(vars: Vec<Var>, config: AdamWConfig) -> Result<Self> {
        let params = vars
            .into_iter()
            .map(|var| {
                let t = var.as_tensor();
                let moments = if t.device().is_cpu() && t.dtype() == DType::F32 {
                    let n = t.elem_count();
                    Moments::Cpu {
                        m: vec![0.0; n],
                        v: vec![0.0; n],
                    }
                } else {
                    Moments::Tensors {
                        m: t.zeros_like()?,
                        v: t.zeros_like()?,
                    }
                };
                Ok((var, moments))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            params,
            config,
            step: 0,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Changes the learning rate (for schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The first and second moments of every variable, in the order the variables were given,
    /// as f32 CPU tensors of the variable's shape (for checkpoints).
    pub fn moments(&self) -> Result<Vec<(Tensor, Tensor)>> {
        self.params
            .iter()
            .map(|(var, moments)| {
                let shape = var.as_tensor().shape().clone();
                Ok(match moments {
                    Moments::Cpu { m, v } => (
                        Tensor::from_slice(m, shape.clone(), &candle_core::Device::Cpu)?,
                        Tensor::from_slice(v, shape, &candle_core::Device::Cpu)?,
                    ),
                    Moments::Tensors { m, v } => (
                        m.to_dtype(DType::F32)?
                            .to_device(&candle_core::Device::Cpu)?,
                        v.to_dtype(DType::F32)?
                            .to_device(&candle_core::Device::Cpu)?,
                    ),
                })
            })
            .collect()
    }

    /// Restores the moments (as [`AdamW::moments`] returns them) and the step count.
    pub fn restore(&mut self, moments: Vec<(Tensor, Tensor)>, steps: u64) -> Result<()> {
        if moments.len() != self.params.len() {
            return Err(Error::InvalidInput(format!(
                "{} optimizer moments for {} parameters",
                moments.len(),
                self.params.len()
            )));
        }
        for (i, ((var, slot), (m, v))) in self.params.iter_mut().zip(moments).enumerate() {
            let dims = var.as_tensor().dims();
            if m.dims() != dims || v.dims() != dims {
                return Err(Error::InvalidInput(format!(
                    "optimizer moment {i} has shape {:?}, the parameter {:?}",
                    m.dims(),
                    dims
                )));
            }
            match slot {
                Moments::Cpu { m: sm, v: sv } => {
                    *sm = m.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
                    *sv = v.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
                }
                Moments::Tensors { m: sm, v: sv } => {
                    let t = var.as_tensor();
                    *sm = m.to_dtype(t.dtype())?.to_device(t.device())?;
                    *sv = v.to_dtype(t.dtype())?.to_device(t.device())?;
                }
            }
        }
        self.step = steps;
        Ok(())
    }

    /// One update from `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_scaled(grads, 1.0)
    }

    /// One update from `grads` multiplied by `scale` (gradient clipping folds into the update
    /// instead of rewriting every gradient first).
    pub fn step_scaled(&mut self, grads: &GradStore, scale: f64) -> Result<()> {
        if !scale.is_finite() {
            return Err(Error::InvalidInput(format!(
                "gradient scale {scale} is not finite"
            )));
        }
        self.step += 1;
        let c = self.config.clone();
        let t = self.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        for (var, moments) in &mut self.params {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            if grad.dims() != var.as_tensor().dims() {
                return Err(Error::InvalidInput(format!(
                    "gradient shape {:?} does not match parameter shape {:?}",
                    grad.dims(),
                    var.as_tensor().dims()
                )));
            }
            match moments {
                Moments::Cpu { m, v } => {
                    let grad = grad.to_dtype(DType::F32)?.contiguous()?;
                    let op = FusedStep {
                        scale: scale as f32,
                        m: Mutex::new(m),
                        v: Mutex::new(v),
                        lr: c.lr as f32,
                        beta1: c.beta1 as f32,
                        beta2: c.beta2 as f32,
                        eps: c.eps as f32,
                        decay: (1.0 - c.lr * c.weight_decay) as f32,
                        bias1: bias1 as f32,
                        bias2_sqrt: bias2.sqrt() as f32,
                    };
                    var.as_tensor().inplace_op2(&grad, &op)?;
                }
                Moments::Tensors { m, v } => {
                    let grad = (grad.to_dtype(var.as_tensor().dtype())? * scale)?;
                    *m = ((&*m * c.beta1)? + (&grad * (1.0 - c.beta1))?)?;
                    *v = ((&*v * c.beta2)? + (grad.sqr()? * (1.0 - c.beta2))?)?;
                    let m_hat = (&*m / bias1)?;
                    let v_hat = (&*v / bias2)?;
                    let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
                    let p = var.as_tensor();
                    let next = ((p * (1.0 - c.lr * c.weight_decay))? - (update * c.lr)?)?;
                    var.set(&next)?;
                }
            }
        }
        Ok(())
    }
}

/// The fused update of one f32 CPU parameter.
struct FusedStep<'a> {
    scale: f32,
    m: Mutex<&'a mut Vec<f32>>,
    v: Mutex<&'a mut Vec<f32>>,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    bias1: f32,
    bias2_sqrt: f32,
}

impl FusedStep<'_> {
    fn update(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        // Written as `lr/bias1 * m / (sqrt(v)/sqrt(bias2) + eps)`, the PyTorch formulation.
        let step = self.lr / self.bias1;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * self.scale;
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            let denom = v.sqrt() / self.bias2_sqrt + self.eps;
            *p = *p * self.decay - step * *m / denom;
        }
    }
}

impl InplaceOp2 for FusedStep<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("fused-adamw: f32 parameters and gradients only");
        };
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("fused-adamw: non-contiguous parameter or gradient");
        };
        let p = &mut p[p0..p1];
        let g = &g[g0..g1];
        let mut m = self
            .m
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        let mut v = self
            .v
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        if p.len() != g.len() || p.len() != m.len() || p.len() != v.len() {
            candle_core::bail!("fused-adamw: length mismatch");
        }
        let threads = candle_core::utils::get_num_threads().max(1);
        // Small tensors are not worth a thread each. On rayon's pool, whose threads persist:
        // spawning two threads per tensor made ~500 short-lived threads a step.
        let chunk = p.len().div_ceil(threads).max(1 << 16);
        p.par_chunks_mut(chunk)
            .zip(g.par_chunks(chunk))
            .zip(m.par_chunks_mut(chunk))
            .zip(v.par_chunks_mut(chunk))
            .for_each(|(((p, g), m), v)| self.update(p, g, m, v));
        Ok(())
    }
}

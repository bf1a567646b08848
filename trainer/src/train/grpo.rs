//! The GRPO objective as small pure functions: group-normalised (or batch-scaled, or only
//! centred) advantages, the clipped
//! policy-ratio loss with an optional k3 KL penalty, the learning-rate schedule and global
//! gradient-norm clipping. Everything here is plain arithmetic on numbers, pinned to the
//! reference figures of `trainer/tests/reference/grpo_reference.py`; the training loop turns
//! the per-token weights into a differentiable tensor loss (see [`surrogate_weights`]).
//!
//! Notation, per generated token `t` of a completion in group `g`:
//! `r_t = exp(logp_new_t - logp_old_t)` (the policy ratio), `A_t` the completion's advantage,
//! `ε_lo, ε_hi` the clip range, `β` the KL coefficient and `N` the number of generated tokens in
//! the whole batch of the update.

/// Advantages of one group and whether the group carried any signal.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAdvantages {
    /// One advantage per completion, in order.
    pub advantages: Vec<f64>,
    /// True when every reward in the group was equal: all advantages are 0 and the group adds
    /// nothing to the gradient (it is still counted, as `zero_spread_groups` in the metrics).
    pub zero_spread: bool,
}

/// How a group's centred rewards `r_i - mean_g` are scaled into advantages (TRL's
/// `scale_rewards`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardScale {
    /// Divided by the group's standard deviation (DeepSeekMath's GRPO; the verl code ToolRL
    /// trains with). A group whose rewards differ only a little, e.g. in the format term alone,
    /// then pushes as hard as one whose answers differ.
    Group,
    /// Divided by the standard deviation of every reward of the step: groups keep their
    /// relative spread, and the step its overall scale.
    Batch,
    /// Not scaled (Dr. GRPO, Liu et al. 2025): a completion's push is its reward's distance
    /// from its group's mean, so the reward's weights say what matters.
    None,
}

/// Group-normalised advantages, `A_i = (r_i - mean_g) / (std_g + ε)`.
///
/// `std_g` is the sample standard deviation (Bessel's `n-1`, as `torch.std` and the verl code
/// ToolRL trains with). A group of one completion has no spread: its advantage is 0.
pub fn group_advantages(rewards: &[f64], eps: f64) -> GroupAdvantages {
    centred(rewards, sample_std(rewards) + eps)
}

/// Advantages of a step's completions, laid out as consecutive groups of `group_size`, scaled
/// as `scale` says (`ε` is added to every divisor).
pub fn step_advantages(
    rewards: &[f64],
    group_size: usize,
    scale: RewardScale,
    eps: f64,
) -> Vec<GroupAdvantages> {
    let batch_std = sample_std(rewards);
    rewards
        .chunks(group_size.max(1))
        .map(|group| match scale {
            RewardScale::Group => group_advantages(group, eps),
            RewardScale::Batch => centred(group, batch_std + eps),
            RewardScale::None => centred(group, 1.0),
        })
        .collect()
}

/// `(r_i - mean) / divisor`, or all zeros when every reward is the same.
fn centred(rewards: &[f64], divisor: f64) -> GroupAdvantages {
    let n = rewards.len();
    // Exactly equal rewards, not merely close ones: tiny real differences still rank completions.
    let zero_spread = n < 2 || rewards.iter().all(|&r| r == rewards[0]);
    let advantages = if zero_spread {
        vec![0.0; n]
    } else {
        let mean = rewards.iter().sum::<f64>() / n as f64;
        rewards.iter().map(|r| (r - mean) / divisor).collect()
    };
    GroupAdvantages {
        advantages,
        zero_spread,
    }
}

/// Sample standard deviation (Bessel's `n-1`); 0 for fewer than two values.
fn sample_std(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    (values.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

/// Clip range and KL settings of the objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// `ε_lo`: the ratio is clipped below at `1 - ε_lo`.
    pub clip_low: f64,
    /// `ε_hi`: the ratio is clipped above at `1 + ε_hi`.
    pub clip_high: f64,
    /// `β`, the weight of the KL penalty (0 = off, no reference model needed).
    pub kl_coef: f64,
}

/// One generated token's share of the loss, before division by `N`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenTerm {
    /// `-min(r A, clip(r, 1-ε_lo, 1+ε_hi) A)`.
    pub policy: f64,
    /// `k3 = exp(q - p) - (q - p) - 1` with `p = logp_new`, `q = logp_ref` (0 without a
    /// reference); an unbiased, always non-negative estimator of `KL(π_new || π_ref)`.
    pub kl: f64,
    /// True when the clipped branch is the one taken (its gradient is 0).
    pub clipped: bool,
    /// The ratio `r`.
    pub ratio: f64,
}

/// The loss terms of one token (see [`TokenTerm`]).
pub fn token_term(
    objective: &Objective,
    logp_new: f64,
    logp_old: f64,
    logp_ref: Option<f64>,
    advantage: f64,
) -> TokenTerm {
    let ratio = (logp_new - logp_old).exp();
    let clipped_ratio = ratio.clamp(1.0 - objective.clip_low, 1.0 + objective.clip_high);
    let unclipped = ratio * advantage;
    let clipped = clipped_ratio * advantage;
    let kl = match logp_ref {
        Some(q) => {
            let d = q - logp_new;
            d.exp() - d - 1.0
        }
        None => 0.0,
    };
    TokenTerm {
        policy: -unclipped.min(clipped),
        kl,
        // The clipped branch is strictly smaller only when the ratio left the range in the
        // direction the advantage rewards; then the token's gradient is zero.
        clipped: clipped < unclipped,
        ratio,
    }
}

/// The loss of a batch with token-level averaging:
/// `L = (1/N) Σ_t [ -min(r_t A_t, clip(r_t) A_t) + β k3_t ]` over all `N` generated tokens of
/// all completions (long completions weigh more than short ones, as in DAPO and verl's
/// `token-mean`; each completion is not averaged first).
pub fn batch_loss(terms: &[TokenTerm], kl_coef: f64) -> f64 {
    if terms.is_empty() {
        return 0.0;
    }
    terms.iter().map(|t| t.policy + kl_coef * t.kl).sum::<f64>() / terms.len() as f64
}

/// Per-token weights `w_t` of the differentiable surrogate `Σ_t w_t r_t`, whose gradient equals
/// the policy part of [`batch_loss`]'s: `w_t = -A_t / N` where the unclipped branch is taken and
/// 0 where the clipped one is (a clipped ratio is a constant). The KL part is added separately
/// as `(β/N) Σ_t (exp(q_t - p_t) + p_t)`, whose gradient is that of `β k3_t / N`.
pub fn surrogate_weights(terms: &[TokenTerm], advantages: &[f64], total_tokens: usize) -> Vec<f64> {
    let n = total_tokens.max(1) as f64;
    terms
        .iter()
        .zip(advantages)
        .map(|(t, a)| if t.clipped { 0.0 } else { -a / n })
        .collect()
}

/// Shape of the learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Stay at the peak rate.
    Constant,
    /// Half a cosine from the peak down to `min_lr_ratio × peak` at the last step.
    Cosine,
}

/// Learning rate of 1-based `step` out of `total`: linear warm-up from `peak/warmup` to `peak`
/// over the first `warmup` steps, then `schedule`:
/// cosine: `lr = min + (peak - min) (1 + cos(π p)) / 2`, `p = (step - warmup) / (total - warmup)`.
pub fn learning_rate(
    step: u64,
    total: u64,
    warmup: u64,
    peak: f64,
    min_lr_ratio: f64,
    schedule: Schedule,
) -> f64 {
    if warmup > 0 && step <= warmup {
        return peak * step as f64 / warmup as f64;
    }
    match schedule {
        Schedule::Constant => peak,
        Schedule::Cosine => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let p = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
            let min = peak * min_lr_ratio;
            min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        }
    }
}

/// Factor that brings gradients of global norm `norm` down to `max_norm` (1 when already
/// within): `min(1, max_norm / (norm + 1e-6))`, as `torch.nn.utils.clip_grad_norm_`.
/// `max_norm <= 0` turns clipping off.
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm <= 0.0 {
        return 1.0;
    }
    (max_norm / (norm + 1e-6)).min(1.0)
}

/// Mean and (population) standard deviation, for metrics.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rewards_give_no_signal() {
        let g = group_advantages(&[0.5, 0.5, 0.5], 1e-6);
        assert!(g.zero_spread);
        assert_eq!(g.advantages, vec![0.0; 3]);
        assert!(group_advantages(&[1.0], 1e-6).zero_spread);
    }

    #[test]
    fn advantages_are_centred_and_scaled() {
        let g = group_advantages(&[1.0, 0.0, 0.0, 1.0], 0.0);
        let sum: f64 = g.advantages.iter().sum();
        assert!(sum.abs() < 1e-12);
        // sample std of {1,0,0,1} is sqrt(1/3)
        assert!((g.advantages[0] - 0.5 / (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn clipping_zeroes_the_gradient_only_on_the_rewarded_side() {
        let o = Objective {
            clip_low: 0.2,
            clip_high: 0.2,
            kl_coef: 0.0,
        };
        // Ratio 1.5 with a positive advantage: clipped (no push further up).
        assert!(token_term(&o, 1.5f64.ln(), 0.0, None, 1.0).clipped);
        // Ratio 1.5 with a negative advantage: not clipped (the penalty still applies).
        assert!(!token_term(&o, 1.5f64.ln(), 0.0, None, -1.0).clipped);
        // Ratio 0.5 with a negative advantage: clipped.
        assert!(token_term(&o, 0.5f64.ln(), 0.0, None, -1.0).clipped);
        let t = token_term(&o, 0.0, 0.0, Some(0.0), 2.0);
        assert_eq!((t.policy, t.kl, t.ratio), (-2.0, 0.0, 1.0));
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let lr = |s| learning_rate(s, 10, 2, 1.0, 0.1, Schedule::Cosine);
        assert!((lr(1) - 0.5).abs() < 1e-12);
        assert!((lr(2) - 1.0).abs() < 1e-12);
        assert!((lr(10) - 0.1).abs() < 1e-12);
        assert!(lr(6) < lr(3));
        assert_eq!(learning_rate(7, 10, 0, 0.3, 0.0, Schedule::Constant), 0.3);
    }

    #[test]
    fn clip_scale_matches_torch() {
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert!((clip_scale(4.0, 1.0) - 1.0 / (4.0 + 1e-6)).abs() < 1e-15);
        assert_eq!(clip_scale(100.0, 0.0), 1.0);
    }
}

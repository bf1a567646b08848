"""Reference figures for the GRPO math in trainer/src/train/grpo.rs, written independently in plain
Python after the formulas of DeepSeekMath's GRPO, PPO's clipped objective and Schulman's k3 KL
estimator, with torch's conventions (Bessel std, clip_grad_norm_'s 1e-6).

Run: python3 trainer/tests/reference/grpo_reference.py > trainer/tests/reference/grpo_reference.json
"""
import json
import math


def advantages(rewards, eps):
    n = len(rewards)
    if n < 2 or all(r == rewards[0] for r in rewards):
        return [0.0] * n
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (n - 1))
    return [(r - mean) / (std + eps) for r in rewards]


def token_loss(new, old, ref, adv, clip_low, clip_high, beta):
    ratio = math.exp(new - old)
    clipped = min(max(ratio, 1 - clip_low), 1 + clip_high)
    pg = -min(ratio * adv, clipped * adv)
    kl = 0.0 if ref is None else math.exp(ref - new) - (ref - new) - 1
    return pg + beta * kl, kl, (clipped * adv) < (ratio * adv)


def lr_at(step, total, warmup, peak, min_ratio, schedule):
    if warmup > 0 and step <= warmup:
        return peak * step / warmup
    if schedule == "constant":
        return peak
    p = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
    lo = peak * min_ratio
    return lo + (peak - lo) * 0.5 * (1 + math.cos(math.pi * p))


groups = [
    [1.0, 0.0, 0.5, 0.25],
    [0.0, 0.0, 0.0, 0.0],
    [2.0, -1.0],
    [0.3, 0.3, 0.3, 0.9, 0.1, -0.4],
]
adv_cases = [{"rewards": g, "eps": 1e-6, "advantages": advantages(g, 1e-6)} for g in groups]


def sample_std(values):
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def step_advantages(rewards, group_size, scale, eps):
    """TRL's scale_rewards: "group" (÷ the group's std), "batch" (÷ the std of every reward of
    the step) or "none" (Dr. GRPO: centred only)."""
    out = []
    for i in range(0, len(rewards), group_size):
        g = rewards[i:i + group_size]
        if len(g) < 2 or all(r == g[0] for r in g):
            out.append([0.0] * len(g))
            continue
        mean = sum(g) / len(g)
        div = {"group": sample_std(g) + eps, "batch": sample_std(rewards) + eps, "none": 1.0}[scale]
        out.append([(r - mean) / div for r in g])
    return out


step_rewards = [1.0, 0.0, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 1.25, 0.0, 1.0, 0.0]
step_cases = [{"rewards": step_rewards, "group_size": 4, "scale": scale, "eps": 1e-6,
               "advantages": step_advantages(step_rewards, 4, scale, 1e-6)}
              for scale in ["group", "batch", "none"]]

# Tokens of three completions: (new logprob, old logprob, ref logprob, completion index).
tokens = [
    (-1.20, -1.00, -1.10, 0), (-0.30, -0.50, -0.35, 0), (-2.00, -2.40, -2.10, 0),
    (-0.70, -0.70, -0.90, 1), (-1.50, -1.10, -1.40, 1),
    (-0.05, -0.40, -0.10, 2), (-3.00, -2.90, -2.80, 2), (-0.90, -1.30, -1.00, 2), (-0.20, -0.10, -0.25, 2),
]
adv = [1.3, -0.8, 0.4]
loss_cases = []
for clip_low, clip_high, beta in [(0.2, 0.2, 0.0), (0.2, 0.28, 0.05), (0.1, 0.1, 0.5)]:
    terms = [token_loss(n, o, r, adv[c], clip_low, clip_high, beta) for n, o, r, c in tokens]
    loss_cases.append({
        "clip_low": clip_low, "clip_high": clip_high, "kl_coef": beta,
        "loss": sum(t[0] for t in terms) / len(terms),
        "kl_mean": sum(t[1] for t in terms) / len(terms),
        "clipped": [t[2] for t in terms],
    })

lr_cases = []
for step in [1, 2, 3, 5, 8, 10, 12]:
    lr_cases.append({"step": step, "total": 10, "warmup": 2, "peak": 3e-4, "min_ratio": 0.1,
                     "cosine": lr_at(step, 10, 2, 3e-4, 0.1, "cosine"),
                     "constant": lr_at(step, 10, 2, 3e-4, 0.1, "constant")})

clip_cases = [{"norm": n, "max": m, "scale": 1.0 if m <= 0 else min(1.0, m / (n + 1e-6))}
              for n, m in [(0.5, 1.0), (3.0, 1.0), (1.0, 1.0), (10.0, 0.0)]]

print(json.dumps({
    "advantages": adv_cases,
    "step_advantages": step_cases,
    "tokens": [{"new": n, "old": o, "ref": r, "completion": c} for n, o, r, c in tokens],
    "completion_advantages": adv,
    "loss": loss_cases,
    "lr": lr_cases,
    "clip": clip_cases,
}, indent=1))

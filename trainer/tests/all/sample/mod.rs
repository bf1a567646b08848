//! Sampling: the batched sampler on SmolLM2 and the local model as a rollout policy.

mod local_policy;
mod sampler;

//! Sampling: the batched sampler on SmolLM2, the local model as a rollout policy, and the
//! episode caches that let a later turn feed only what is new.

mod episode_cache;
mod local_policy;
mod sampler;

//! Sampling: text from a model. The batched, seeded sampler with a KV cache and a shared-prefix
//! prefill ([`sampler`]), the lockstep batching that serves many concurrent episodes one batched
//! forward per round ([`lockstep`]), and the local model behind `toolenv`'s `Policy` interface, so
//! an evaluation runs the same code on a local model as on an endpoint ([`local_policy`]).
//!
//! It uses the model (`crate::model`) and never trains: no gradients, losses or optimizers here,
//! and nothing of `crate::train`.

pub mod local_policy;
pub mod lockstep;
pub mod sampler;

pub use local_policy::LocalPolicy;
pub use lockstep::{BatchedPolicy, Participant, SamplingStats};
pub use sampler::{generate, FinishReason, Generation, SamplingParams};

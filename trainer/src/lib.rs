//! `trainer`: the model side of tool-use reinforcement learning.
//!
//! A Llama/Qwen2 decoder whose gradients reach every weight (one-pass CPU custom ops with their
//! own backward where candle's fused kernels have none; [`model`]), loaded from GGUF files or
//! Hugging Face directories ([`weights`], [`load`]), with
//! its tokenizer and chat template ([`tokenizer`], [`chat`]) and a batched, seeded sampler with a
//! KV cache ([`sampler`]).

pub mod batched;
pub mod chat;
pub mod config;
mod cpu_op;
pub mod error;
pub mod few_rows;
pub mod grpo;
pub mod heads;
pub mod load;
pub mod logprobs;
pub mod model;
pub mod norm;
pub mod optim;
pub mod policy;
pub mod process;
mod rng;
pub mod rope;
pub mod sampler;
pub mod softmax;
pub mod swiglu;
#[cfg(test)]
mod testing;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use batched::{BatchedPolicy, Participant, SamplingStats};
pub use chat::{ChatTemplate, Message};
pub use config::{Architecture, ModelConfig};
pub use error::{Error, Result};
pub use load::{load, load_weights, LoadedModel};
pub use model::{KvCache, Model};
pub use optim::{AdamW, AdamWConfig};
pub use policy::LocalPolicy;
pub use sampler::{generate, FinishReason, Generation, SamplingParams};
pub use tokenizer::TextTokenizer;

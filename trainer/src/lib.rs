//! `trainer`: the model side of tool-use reinforcement learning, in four rooms whose dependencies
//! run one way, `train → sample → model → kernels`:
//!
//! - [`kernels`]: one-pass CPU custom ops with hand-written backwards (RMS norm, the rotary head
//!   layout, the masked softmax, SwiGLU, chunked token log-probabilities) and the weight-streaming
//!   matmul of decoding, each pinned to the composed candle ops it replaces.
//! - [`model`]: a Llama/Qwen2 decoder whose gradients reach every weight, loaded from GGUF files
//!   or Hugging Face directories, with its tokenizer and chat template.
//! - [`sample`]: the batched, seeded, KV-cached sampler, lockstep batching of concurrent episodes,
//!   and the local model as a `toolenv` policy.
//! - [`train`]: the GRPO objective, AdamW, updates, episodes, the GRPO and SFT runs, checkpoints,
//!   plots and the training config.
//!
//! Beside them, the crate-wide plumbing every room may use: [`error`] (the typed error),
//! [`process`] (process-wide tuning for tensor work) and `rng` (a seeded generator).

pub mod error;
pub mod kernels;
pub mod model;
pub mod process;
mod rng;
pub mod sample;
pub mod train;

pub use error::{Error, Result};
pub use model::{
    load, load_weights, Architecture, ChatTemplate, KvCache, LoadedModel, Message, Model,
    ModelConfig, TextTokenizer,
};
pub use sample::{
    generate, BatchedPolicy, FinishReason, Generation, LocalPolicy, Participant, SamplingParams,
    SamplingStats,
};
pub use train::adamw::{AdamW, AdamWConfig};

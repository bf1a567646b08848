//! The model: a Llama/Qwen2 decoder whose gradients reach every weight ([`Model`], with the
//! sampling KV cache [`KvCache`]), its hyper-parameters ([`config`]), checkpoints read into named
//! f32 tensors ([`weights`]: GGUF files and Hugging Face directories), the one entry point from a
//! path to a model and its tokenizer ([`load()`]), the tokenizer ([`tokenizer`]) and the chat
//! template ([`chat_template`]).
//!
//! It runs on the kernels (`crate::kernels`) and may not touch sampling or training: nothing here
//! knows about prompts, episodes, rewards or optimizers. A new model family is a new
//! [`config::Architecture`], its weight names in `weights` and its differences in the decoder.

pub mod chat_template;
pub mod config;
mod decoder;
mod kv_slots;
pub mod load;
pub mod tokenizer;
pub mod weights;

pub use chat_template::{ChatTemplate, Message};
pub use config::{Architecture, ModelConfig};
pub use decoder::{
    random_weights, KvCache, Model, PrefixActivations, RestackRow, DEFAULT_LOGPROB_CHUNK,
};
pub use load::{load, load_weights, LoadedModel};
pub use tokenizer::TextTokenizer;

//! Integration tests of the trainer crate, one module per feature. Numbers are pinned to
//! `tests/reference/*.json`, produced by `tests/reference/make_reference.py` (transformers).

mod common;
mod errors;
mod gradients;
mod grpo;
mod hf_dir;
mod optim;
mod policy;
mod sampler;
mod smollm2;

//! Integration tests of the trainer crate, in the rooms of `src/`: `model` (loading, numbers
//! against transformers, gradients), `sample` (the sampler, the local policy) and `train` (the
//! GRPO math and runs, AdamW); the kernels' tests sit beside each kernel in `src/kernels/`, and
//! `layout` checks that the rooms depend one way.
//! Numbers are pinned to `tests/reference/*.json`, produced by `tests/reference/make_reference.py`
//! (transformers).

mod common;
mod layout;
mod model;
mod sample;
mod train;

//! Integration tests that cross crates: real wasm tools and hostile guests run through the
//! registry, the reward against the shared vectors, rollouts, datasets; one module per feature
//! (wasmtime's `tests/all` layout).

mod bfcl;
mod common;
mod components;
mod determinism;
mod eval;
mod limits;
mod loading;
mod python;
mod reward;
mod rollout;
mod tasks;
mod tools;

//! `toolenv`: the host side of tool-use reinforcement learning.
//!
//! Tools are WebAssembly modules described by JSON Schemas ([`tooldef`]), registered in a TOML
//! config ([`config`], [`registry`]) and run in a wasmtime sandbox ([`sandbox`]) that gives every
//! call a fresh, isolated instance with bounded CPU, memory and output. An [`episode::Episode`]
//! holds the per-episode state of stateful tools. [`tir`] parses and renders the
//! tool-integrated-reasoning text format, and [`reward`] scores it (ToolRL's reward, exact to the
//! reference, plus execution-aware rewards). [`serve`] puts all of it behind HTTP for RL
//! frameworks in other processes. The crate knows nothing about gradients; the `trainer` crate
//! builds on it.

pub mod chat;
pub mod config;
pub mod dataset;
pub mod episode;
pub mod eval;
pub mod policy;
pub mod registry;
pub mod report;
pub mod reward;
pub mod rollout;
pub mod sandbox;
pub mod serve;
pub mod tir;
pub mod tooldef;

pub use config::{EnvConfig, LoadedConfig};
pub use episode::Episode;
pub use registry::{LoadError, Registry, Tool};
pub use sandbox::{CallOutcome, HostError, ToolError};

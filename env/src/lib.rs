//! Tool-use RL environment: the tool-integrated-reasoning (TIR) text format and the rewards.

pub mod reward;
pub mod tir;

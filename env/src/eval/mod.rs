//! Evaluation metrics over datasets: pure functions from a model's outputs to scores, so the eval
//! command, the trainer's periodic evals and the tests all compute them the same way.
//!
//! [`apibank`] is API-Bank's accuracy exactly as the ToolRL paper computes it; [`bfcl`] is BFCL
//! scored as bfcl-eval scores it; [`evaluate`] runs a
//! whole dataset through a policy.

pub mod apibank;
mod args;
pub mod bfcl;
mod run;

pub use args::{EvalArgs, EvalSetupError};

pub use run::{
    bfcl_messages, episode_task, evaluate, evaluate_blocking, reference_turns, solution_script,
    summarize, summary_table, EvalError, EvalOptions, SampleResult,
};

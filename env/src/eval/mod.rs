//! Evaluation metrics over datasets: pure functions from a model's outputs to scores, so the eval
//! command, the trainer's periodic evals and the tests all compute them the same way.
//!
//! [`apibank`] is API-Bank's accuracy exactly as the ToolRL paper computes it.

pub mod apibank;

//! Reward configuration as it appears in the project's TOML (the `[reward]` table) or JSON.

use serde::{Deserialize, Serialize};

/// How predicted calls are paired with ground-truth calls in the correctness reward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matching {
    /// The paper's pairing: each ground-truth call in turn takes its best unused candidate.
    #[default]
    Greedy,
    /// Hungarian assignment maximising the total match score. A departure from the paper.
    Optimal,
}

/// Configuration of the ToolRL rubric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Variant expression: names from the paper's ablations joined by `+`, e.g. `"refined+length"`.
    /// `"default"` is the paper's main reward. Known names: default, coarse, refined, intermediate,
    /// equalmax, twostage, schedule, length, schedlength, hungarian. An unknown name is an error.
    pub variant: String,
    /// Pairing of predicted with ground-truth calls: `"greedy"` (the paper) or `"optimal"`
    /// (Hungarian, not in the paper). The variant name `hungarian` also selects `"optimal"`.
    pub matching: Matching,
    /// Weight of each component in the total; a weight of 0 keeps a component as a logged metric.
    pub weights: Weights,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            variant: "default".to_owned(),
            matching: Matching::Greedy,
            weights: Weights::default(),
        }
    }
}

/// Weights of the rubric's components. The paper's total is the plain sum (all weights 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Weight of the format reward.
    pub format: f64,
    /// Weight of the tool-call correctness reward.
    pub correctness: f64,
    /// Weight of the think-length reward (it is 0 unless a length variant is on).
    pub length: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            format: 1.0,
            correctness: 1.0,
            length: 1.0,
        }
    }
}

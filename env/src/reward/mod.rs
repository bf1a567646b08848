//! Rewards: the ToolRL rubric (Qian et al., 2025) reproduced exactly, and execution-aware
//! rewards for multi-step episodes.
//!
//! The rubric scores one completion against a ground-truth completion with three small named
//! rewards — [`format`](format::format_reward), [`correctness`](correctness::correctness_reward)
//! and [`length`](length::length_reward) — whose ranges the paper's [`Variant`]s move; the total
//! is their weighted sum. The reference is Python, and its Python-isms (`1 == 1.0`, `round`,
//! `str.strip`, exceptions ending in the lowest score) are reproduced in [`py`], so scores agree
//! with it to the last bit. `docs/reward.md` in the shared folder is the specification.
//!
//! Optimal (Hungarian) matching of calls is available as [`Matching::Optimal`] or the variant name
//! `hungarian`; it departs from the paper and is off unless asked for.

pub mod calls;
pub mod config;
pub mod correctness;
pub mod episode;
pub mod format;
mod hungarian;
pub mod length;
pub mod py;
pub mod range;
pub mod rubric;
pub mod variant;

pub use calls::{GroundTruth, GroundTruthError};
pub use config::{Matching, RewardConfig, Weights};
pub use episode::{
    AnswerExactMatch, AnswerNormalizedMatch, CallOutcome, Episode, EpisodeReward, EpisodeTurn,
    MeanTurnCorrectness, ToolSuccessRate,
};
pub use range::Range;
pub use rubric::{Rubric, Scores};
pub use variant::{UnknownVariant, Variant};

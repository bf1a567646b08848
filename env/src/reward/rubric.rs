//! The ToolRL rubric: format, correctness and length rewards combined with weights.

use serde::{Deserialize, Serialize};

use super::calls::{GroundTruth, GroundTruthError};
use super::config::{Matching, RewardConfig, Weights};
use super::correctness::{correctness_reward, MatchRules};
use super::format::format_reward;
use super::length::length_reward;
use super::range::{correctness_range, format_range, length_cap, LENGTH};
use super::variant::{UnknownVariant, Variant};

/// The components of one completion's reward and their weighted total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// `w_format·format + w_correctness·correctness + w_length·length`.
    pub total: f64,
    /// Format reward.
    pub format: f64,
    /// Tool-call correctness reward.
    pub correctness: f64,
    /// Think-length reward (0 unless a length variant is on).
    pub length: f64,
}

/// A configured ToolRL reward, ready to score completions.
#[derive(Debug, Clone, PartialEq)]
pub struct Rubric {
    variant: Variant,
    rules: MatchRules,
    weights: Weights,
}

impl Rubric {
    /// The rubric a configuration describes.
    pub fn new(config: &RewardConfig) -> Result<Self, UnknownVariant> {
        let variant: Variant = config.variant.parse()?;
        Ok(Self::from_variant(variant, config.matching, config.weights))
    }

    /// The paper's rubric for a variant expression (greedy unless it names `hungarian`, weights 1).
    pub fn for_variant(expression: &str) -> Result<Self, UnknownVariant> {
        Ok(Self::from_variant(
            expression.parse()?,
            Matching::Greedy,
            Weights::default(),
        ))
    }

    /// A rubric from parsed parts.
    pub fn from_variant(variant: Variant, matching: Matching, weights: Weights) -> Self {
        let rules = MatchRules {
            coarse: variant.coarse,
            strict: variant.refined,
            whole_call: variant.intermediate,
            optimal: variant.hungarian || matching == Matching::Optimal,
        };
        Self {
            variant,
            rules,
            weights,
        }
    }

    /// The variant switches in force.
    pub fn variant(&self) -> &Variant {
        &self.variant
    }

    /// The format reward of `text` at training step `step`.
    pub fn format(&self, text: &str, truth: &GroundTruth, step: u64) -> f64 {
        format_reward(text, truth.shape, format_range(&self.variant, step))
    }

    /// The correctness reward of `text` at training step `step`.
    pub fn correctness(&self, text: &str, truth: &GroundTruth, step: u64) -> f64 {
        correctness_reward(
            text,
            truth,
            self.rules,
            correctness_range(&self.variant, step),
        )
    }

    /// The length reward of `text` at training step `step` (0 when no length variant is on).
    pub fn length(&self, text: &str, step: u64) -> f64 {
        if self.variant.with_length() {
            length_reward(text, length_cap(&self.variant, step), LENGTH)
        } else {
            0.0
        }
    }

    /// All components and the weighted total.
    pub fn score(&self, text: &str, truth: &GroundTruth, step: u64) -> Scores {
        let format = self.format(text, truth, step);
        let correctness = self.correctness(text, truth, step);
        let length = self.length(text, step);
        let w = self.weights;
        Scores {
            total: w.format * format + w.correctness * correctness + w.length * length,
            format,
            correctness,
            length,
        }
    }

    /// [`Rubric::score`] with the ground truth given as text.
    pub fn score_text(
        &self,
        text: &str,
        ground_truth: &str,
        step: u64,
    ) -> Result<Scores, GroundTruthError> {
        Ok(self.score(text, &GroundTruth::parse(ground_truth)?, step))
    }
}

impl Default for Rubric {
    fn default() -> Self {
        Self::from_variant(Variant::default(), Matching::Greedy, Weights::default())
    }
}

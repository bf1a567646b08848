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
    AnswerExactMatch, AnswerNormalizedMatch, CallOutcome, Episode, EpisodeCall, EpisodeReward,
    EpisodeTurn, MeanTurnCorrectness, MeanTurnFormat, ToolNameMatch, ToolSuccessRate,
};
pub use range::Range;
pub use rubric::{Rubric, Scores};
pub use variant::{UnknownVariant, Variant};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn config_from_toml() {
        let c: RewardConfig = toml::from_str(
            "variant = \"refined+length\"\nmatching = \"optimal\"\n[weights]\nlength = 0.0\n",
        )
        .unwrap();
        assert_eq!(c.matching, Matching::Optimal);
        assert_eq!(c.weights.format, 1.0);
        assert_eq!(c.weights.length, 0.0);
        let rubric = Rubric::new(&c).unwrap();
        assert!(rubric.variant().refined && rubric.variant().length);
        let s = rubric.score(
            &format!("<think>{}</think>", "w ".repeat(256)),
            &GroundTruth::parse("<think></think>").unwrap(),
            0,
        );
        // A weight of 0 keeps the component as a logged metric only.
        assert_eq!((s.length, s.total), (0.5, 1.0));
        assert_eq!(
            toml::from_str::<RewardConfig>("").unwrap(),
            RewardConfig::default()
        );
        assert!(toml::from_str::<RewardConfig>("varient = \"x\"").is_err());
        let unknown = RewardConfig {
            variant: "refined+turbo".into(),
            ..RewardConfig::default()
        };
        assert!(Rubric::new(&unknown)
            .unwrap_err()
            .to_string()
            .contains("\"turbo\""));
    }

    /// Fragments that steer random text into the tagged format and its near misses.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("<think>".to_owned()),
            Just("</think>".to_owned()),
            Just("<tool_call>".to_owned()),
            Just("</tool_call>".to_owned()),
            Just("<response>".to_owned()),
            Just("</response>".to_owned()),
            Just("\n".to_owned()),
            Just("{\"name\": \"f\", \"parameters\": {\"a\": 1}}".to_owned()),
            Just("{\"name\": [1], \"parameters\": 3}".to_owned()),
            Just("{\"name\": \"f\", \"parameters\": \"abc\"}".to_owned()),
            Just("[{\"name\": \"f\"}]".to_owned()),
            Just("\"name\"".to_owned()),
            any::<String>(),
        ]
    }

    fn tagged() -> impl Strategy<Value = String> {
        prop::collection::vec(fragment(), 0..12).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn scoring_never_panics(text in tagged(), truth in tagged(), step in any::<u64>()) {
            for variant in ["default", "coarse+length", "refined+schedule", "intermediate+twostage",
                            "equalmax+schedlength", "hungarian", "hungarian+intermediate"] {
                let rubric = Rubric::for_variant(variant).unwrap();
                if let Ok(s) = rubric.score_text(&text, &truth, step) {
                    prop_assert!(s.total.is_finite());
                }
            }
        }
    }
}

//! Execution-aware rewards of a finished trajectory, each logged under its own name.

use super::Trajectory;
use crate::reward::episode::{
    AnswerExactMatch, AnswerNormalizedMatch, CallOutcome, Episode, EpisodeCall, EpisodeReward,
    EpisodeTurn, MeanTurnCorrectness, MeanTurnFormat, ToolNameMatch, ToolSuccessRate,
};
use crate::reward::{GroundTruth, Rubric};

/// Fills `trajectory.rewards` with `answer_exact_match`, `answer_normalized_match`,
/// `tool_success_rate`, `mean_turn_format`, `mean_turn_correctness` (ToolRL correctness of turn k
/// against `reference[k]`, averaged over the turns that have one) and `tool_name_match` (ToolRL's
/// name term over the whole episode against the whole reference). A term that is a rate over zero
/// events keeps its training value in `rewards` and its name in `unmeasured`.
pub fn score_trajectory(
    trajectory: &mut Trajectory,
    reference: &[GroundTruth],
    rubric: &Rubric,
    step: u64,
) {
    let calls: Vec<Vec<EpisodeCall<'_>>> = trajectory
        .turns
        .iter()
        .map(|t| {
            t.calls
                .iter()
                .map(|c| EpisodeCall {
                    outcome: match c.succeeded() {
                        true => CallOutcome::Ok,
                        false => CallOutcome::Error,
                    },
                    name: c.name.as_deref(),
                })
                .collect()
        })
        .collect();
    let turns: Vec<EpisodeTurn<'_>> = trajectory
        .turns
        .iter()
        .zip(&calls)
        .map(|(t, calls)| EpisodeTurn {
            text: &t.text,
            calls,
        })
        .collect();
    let episode = Episode {
        turns: &turns,
        expected_answer: trajectory.expected_answer.as_deref(),
        reference,
        step,
    };
    let rewards: [&dyn EpisodeReward; 6] = [
        &AnswerExactMatch,
        &AnswerNormalizedMatch,
        &ToolSuccessRate,
        &MeanTurnFormat,
        &MeanTurnCorrectness {
            rubric: rubric.clone(),
        },
        &ToolNameMatch,
    ];
    let scored: Vec<(&'static str, f64, bool)> = rewards
        .iter()
        .map(|r| (r.name(), r.score(&episode), r.measure(&episode).is_none()))
        .collect();
    trajectory.unmeasured.clear();
    for (name, value, unmeasured) in scored {
        trajectory.rewards.insert(name.to_string(), value);
        if unmeasured {
            trajectory.unmeasured.push(name.to_string());
        }
    }
}

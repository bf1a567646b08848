//! Sampling scored episodes for training and evaluation.
//!
//! A [`Prompt`] is an executable task (a multi-turn episode with the real tools, scored by the
//! weighted episode terms of `[reward.terms]`) or a ToolRL sample (one turn from its own system
//! and user text, scored by the ToolRL rubric as in the paper). Every episode of a call runs
//! concurrently in one lockstep round of the [`BatchedPolicy`]: while some episodes' tools run,
//! the others wait for the next batch, and each batch holds every live episode.

use std::collections::BTreeMap;

use futures::future::join_all;
use toolenv::chat::Message;
use toolenv::dataset::{Dataset, Sample, Task};
use toolenv::eval::{episode_task, reference_turns};
use toolenv::policy::{Policy, TurnRequest};
use toolenv::reward::episode::answers_match;
use toolenv::reward::range::{CORRECTNESS, FORMAT};
use toolenv::reward::{GroundTruth, Rubric};
use toolenv::rollout::{score_trajectory, Roller, TokenSequence};

use crate::error::{Error, Result};
use crate::sample::lockstep::BatchedPolicy;

/// One training or evaluation prompt.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// An executable task, run as an episode with tools.
    Task(Task),
    /// A ToolRL sample: one turn, scored by the rubric against its expected output.
    ToolRl {
        /// The sample's id.
        id: String,
        /// System text (instructions and tools).
        system: String,
        /// User text (the dialogue so far).
        user: String,
        /// The parsed expected output.
        truth: GroundTruth,
    },
}

impl Prompt {
    /// The prompt's id.
    pub fn id(&self) -> &str {
        match self {
            Prompt::Task(t) => &t.id,
            Prompt::ToolRl { id, .. } => id,
        }
    }
}

/// The prompts of a dataset (executable tasks and ToolRL samples; API-Bank has no reward to
/// train on and is refused).
pub fn prompts(dataset: &Dataset, limit: Option<usize>) -> Result<Vec<Prompt>> {
    let mut out = Vec::new();
    for sample in dataset.iter().take(limit.unwrap_or(usize::MAX)) {
        match sample {
            Sample::Task(t) => out.push(Prompt::Task(t.clone())),
            Sample::ToolRl(s) => {
                let truth = s.ground_truth().map_err(|e| {
                    Error::InvalidInput(format!(
                        "{}: sample {}: the expected output does not parse: {e}",
                        dataset.name, s.id
                    ))
                })?;
                out.push(Prompt::ToolRl {
                    id: s.id.clone(),
                    system: s.system.clone(),
                    user: s.user.clone(),
                    truth,
                });
            }
            Sample::ApiBank(s) => {
                return Err(Error::InvalidInput(format!(
                    "{}: sample {} is API-Bank, which has no training reward; use tasks or \
                     ToolRL data",
                    dataset.name, s.id
                )))
            }
            Sample::Bfcl(e) => {
                return Err(Error::InvalidInput(format!(
                    "{}: entry {} is BFCL, a benchmark to evaluate on, not to train on; use \
                     tasks or ToolRL data",
                    dataset.name, e.id
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no samples to use",
            dataset.name
        )));
    }
    Ok(out)
}

/// One finished, scored episode.
#[derive(Debug, Clone, Default)]
pub struct Scored {
    /// The prompt's id.
    pub prompt_id: String,
    /// Index of the prompt in the call (the GRPO group).
    pub group: usize,
    /// The scalar reward trained on.
    pub reward: f64,
    /// Every reward term by name that measured something (logged; a rate over zero events,
    /// such as `tool_success_rate` without a call, is absent).
    pub terms: BTreeMap<String, f64>,
    /// Whether the final answer was right (executable tasks), or the calls fully right
    /// (ToolRL samples: see [`calls_fully_right`]).
    pub correct: Option<bool>,
    /// The task's kind (executable tasks), for accuracy per kind.
    pub kind: Option<&'static str>,
    /// Token sequences to train on (one per assistant turn).
    pub sequences: Vec<TokenSequence>,
    /// Assistant turns.
    pub turns: usize,
    /// Tool calls made and how many failed.
    pub tool_calls: usize,
    /// Failed tool calls.
    pub tool_errors: usize,
    /// Milliseconds spent running tools.
    pub tools_ms: f64,
    /// Milliseconds spent scoring.
    pub scoring_ms: f64,
    /// The episode's failure, if the policy failed (the episode then has reward 0 and no
    /// sequences).
    pub error: Option<String>,
    /// The final assistant text.
    pub output: String,
}

/// How episodes are scored.
pub struct Scorer {
    /// The ToolRL rubric.
    pub rubric: Rubric,
    /// Weights of the episode terms (executable tasks).
    pub terms: BTreeMap<String, f64>,
    /// Step passed to scheduled reward variants.
    pub step: u64,
}

impl Scorer {
    /// The scorer of held-out evaluations: the run's episode terms with the paper's default
    /// rubric at step 0, whatever the run's variant and step, so that evaluations of runs with
    /// different variants, and of one scheduled run at different steps, measure the same thing.
    pub fn held_out(terms: BTreeMap<String, f64>) -> Self {
        Scorer {
            rubric: Rubric::default(),
            terms,
            step: 0,
        }
    }
}

/// Runs `copies` episodes of each prompt, all in one lockstep round, and scores them. Episode
/// `g * copies + j` is copy `j` of prompt `g`; tool seeds derive from `seed`.
pub async fn run_episodes(
    policy: &BatchedPolicy,
    roller: &Roller,
    scorer: &Scorer,
    prompts: &[&Prompt],
    copies: usize,
    seed: u64,
) -> Vec<Scored> {
    let n = prompts.len() * copies;
    let ids: Vec<u64> = (0..n as u64).collect();
    let participants = policy.round(&ids);
    let futures = participants
        .into_iter()
        .enumerate()
        .map(|(e, participant)| {
            let prompt = prompts[e / copies];
            async move {
                let scored = run_one(policy, roller, scorer, prompt, e, seed).await;
                drop(participant);
                Scored {
                    group: e / copies,
                    ..scored
                }
            }
        });
    join_all(futures).await
}

async fn run_one(
    policy: &BatchedPolicy,
    roller: &Roller,
    scorer: &Scorer,
    prompt: &Prompt,
    episode: usize,
    seed: u64,
) -> Scored {
    let mut scored = Scored {
        prompt_id: prompt.id().to_string(),
        ..Scored::default()
    };
    match prompt {
        Prompt::Task(task) => {
            scored.kind = Some(task.kind.name());
            let ep = episode_task(task);
            let tool_seed = seed.wrapping_add(episode as u64);
            match roller.run(policy, &ep, episode as u64, tool_seed).await {
                Ok(mut trajectory) => {
                    let started = std::time::Instant::now();
                    let reference = reference_turns(task);
                    score_trajectory(&mut trajectory, &reference, &scorer.rubric, scorer.step);
                    scored.reward = scorer
                        .terms
                        .iter()
                        .map(|(name, w)| w * trajectory.rewards.get(name).copied().unwrap_or(0.0))
                        .sum();
                    scored.correct = Some(
                        trajectory
                            .final_response
                            .as_deref()
                            .is_some_and(|got| answers_match(got, &task.answer)),
                    );
                    scored.terms = trajectory.measured();
                    scored.scoring_ms = started.elapsed().as_secs_f64() * 1e3;
                    scored.sequences = trajectory.token_sequences();
                    scored.turns = trajectory.turns.len();
                    scored.tool_calls = trajectory.calls().count();
                    scored.tool_errors = trajectory.calls().filter(|c| !c.succeeded()).count();
                    scored.tools_ms = trajectory.tools_ms;
                    scored.output = trajectory
                        .turns
                        .last()
                        .map(|t| t.text.clone())
                        .unwrap_or_default();
                }
                Err(e) => scored.error = Some(e.to_string()),
            }
        }
        Prompt::ToolRl {
            system,
            user,
            truth,
            ..
        } => {
            let messages = [Message::system(system), Message::user(user)];
            let request = TurnRequest {
                messages: &messages,
                max_new_tokens: roller.config().max_new_tokens,
                episode: episode as u64,
                tools: None,
            };
            match policy.next_turn(request).await {
                Ok(turn) => {
                    let started = std::time::Instant::now();
                    let s = scorer.rubric.score(&turn.text, truth, scorer.step);
                    scored.reward = s.total;
                    scored.correct = Some(calls_fully_right(&turn.text, truth));
                    scored.terms = BTreeMap::from([
                        ("total".to_string(), s.total),
                        ("format".to_string(), s.format),
                        ("correctness".to_string(), s.correctness),
                        ("length".to_string(), s.length),
                    ]);
                    scored.scoring_ms = started.elapsed().as_secs_f64() * 1e3;
                    scored.turns = 1;
                    if let Some(tokens) = turn.tokens {
                        scored.sequences = vec![TokenSequence {
                            mask: [
                                vec![0; tokens.context.len()],
                                vec![1; tokens.generated.len()],
                            ]
                            .concat(),
                            logprobs: [vec![0.0; tokens.context.len()], tokens.logprobs].concat(),
                            ids: [tokens.context, tokens.generated].concat(),
                        }];
                    }
                    scored.output = turn.text;
                }
                Err(e) => scored.error = Some(e.to_string()),
            }
        }
    }
    scored
}

/// Whether a ToolRL completion is exactly right: the paper's default rubric gives it full format
/// and full correctness (every expected call, by name, parameter names and values, and no other
/// call; no call where none is expected). Judged by the default rubric whatever the run's
/// variant, so runs of different variants are compared on one measure.
pub fn calls_fully_right(text: &str, truth: &GroundTruth) -> bool {
    let s = Rubric::default().score(text, truth, 0);
    s.format == FORMAT.hi && s.correctness == CORRECTNESS.hi
}

/// Held-out figures of one evaluation pass.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalFigures {
    /// Samples evaluated.
    pub samples: usize,
    /// Accuracy in percent: answers right (executable tasks) or calls fully right (ToolRL
    /// samples, [`calls_fully_right`]).
    pub accuracy: Option<f64>,
    /// Answer accuracy in percent per task kind (executable tasks only).
    #[serde(default)]
    pub accuracy_by_kind: BTreeMap<String, f64>,
    /// Mean reward: the training reward during training; in held-out evaluations, scored by
    /// the paper's default rubric at step 0 (see [`Scorer::held_out`]).
    pub mean_reward: f64,
    /// Mean of every term over the episodes where it measured something (a term that measured
    /// nothing anywhere is absent).
    pub terms: BTreeMap<String, f64>,
    /// Episodes whose policy failed.
    pub errors: usize,
}

/// Summarises scored episodes.
pub fn figures(scored: &[Scored]) -> EvalFigures {
    let n = scored.len().max(1) as f64;
    let judged: Vec<bool> = scored.iter().filter_map(|s| s.correct).collect();
    let mut terms: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in scored {
        for (k, v) in &s.terms {
            let t = terms.entry(k.clone()).or_default();
            t.0 += v;
            t.1 += 1;
        }
        if let (Some(kind), Some(correct)) = (s.kind, s.correct) {
            let (right, all) = kinds.entry(kind.to_string()).or_default();
            *right += usize::from(correct);
            *all += 1;
        }
    }
    EvalFigures {
        samples: scored.len(),
        accuracy: (!judged.is_empty())
            .then(|| 100.0 * judged.iter().filter(|&&c| c).count() as f64 / judged.len() as f64),
        accuracy_by_kind: kinds
            .into_iter()
            .map(|(kind, (right, all))| (kind, 100.0 * right as f64 / all as f64))
            .collect(),
        mean_reward: scored.iter().map(|s| s.reward).sum::<f64>() / n,
        terms: terms
            .into_iter()
            .map(|(k, (sum, count))| (k, sum / count as f64))
            .collect(),
        errors: scored.iter().filter(|s| s.error.is_some()).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_fully_right_takes_only_the_exact_calls() {
        let truth = GroundTruth::parse(
            "<think>x</think>\n<tool_call>\n{\"name\": \"f\", \"parameters\": {\"a\": 1}}\n</tool_call>",
        )
        .unwrap();
        let exact = "<think>y</think>\n<tool_call>\n{\"name\": \"f\", \"parameters\": {\"a\": 1}}\n</tool_call>";
        assert!(calls_fully_right(exact, &truth));
        for near in [
            // A wrong value, an extra call, no think block.
            "<think>y</think>\n<tool_call>\n{\"name\": \"f\", \"parameters\": {\"a\": 2}}\n</tool_call>",
            "<think>y</think>\n<tool_call>\n{\"name\": \"f\", \"parameters\": {\"a\": 1}}\n{\"name\": \"g\", \"parameters\": {}}\n</tool_call>",
            "<tool_call>\n{\"name\": \"f\", \"parameters\": {\"a\": 1}}\n</tool_call>",
        ] {
            assert!(!calls_fully_right(near, &truth), "{near}");
        }
    }
}

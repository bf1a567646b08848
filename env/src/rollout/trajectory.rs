//! The record of one episode, and its wire format: one JSON object per line of a trajectory JSONL
//! file.
//!
//! ```text
//! {
//!   "task_id": "calc-0001",            // the dataset's id
//!   "episode": 3,                      // index within the run; with "seed", identifies the episode
//!   "seed": 7,                         // seed of the episode's tool randomness
//!   "style": "chat" | "paper",         // prompt style
//!   "turns": [{
//!     "text": "<think> … </think>\n<tool_call>\n…\n</tool_call>",   // the assistant turn, verbatim
//!     "calls": [{                      // one per non-blank line of the <tool_call> block, in order
//!       "line": 3,                     // 1-based line in the turn
//!       "name": "calculator",          // absent when the line is not a call
//!       "arguments": {…},              // absent when the line is not a call
//!       "result": {…},                 // the tool's JSON result, or
//!       "error": {"kind": "…", "message": "…"},  // why there is none (parse errors have kind "parse")
//!       "elapsed_us": 41, "fuel": 52311
//!     }],
//!     "observation": "<obs> […] </obs>",   // what the model was shown next (absent if none)
//!     "tokens": {"context": [..], "generated": [..], "logprobs": [..], "restart": false},  // local policies only
//!     "policy_ms": 812.5, "tools_ms": 0.3
//!   }],
//!   "stop": "response" | "no_action" | "max_turns" | "token_budget",
//!   "final_response": "126",           // content of the last turn's <response>, if any
//!   "expected_answer": "126",          // from the task, if any
//!   "rewards": {"answer_exact_match": 1.0, …},  // every reward term, by name (training values)
//!   "unmeasured": ["tool_success_rate"],  // terms that measured nothing (no call); absent if none
//!   "policy_ms": 1625.0, "tools_ms": 0.6, "total_ms": 1626.1
//! }
//! ```
//!
//! Tokens: the trajectory of a local policy is the concatenation, turn after turn, of `context`
//! (loss mask 0: prompt, observations, template tokens) and `generated` (mask 1); a turn with
//! `restart: true` starts a new sequence (paper style re-renders the prompt each turn).

use super::prompt::PromptStyle;
use crate::policy::TurnTokens;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Why an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A turn gave a response and made no calls.
    Response,
    /// A turn made no calls and gave no response: nothing left to do.
    NoAction,
    /// The turn limit was reached.
    MaxTurns,
    /// The episode's generated-token budget is spent.
    TokenBudget,
}

/// A tool error as recorded: its kind and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// `parse` for a line that is not a call, else a [`ToolError`](crate::ToolError) kind.
    pub kind: String,
    /// What the model was told.
    pub message: String,
}

/// One line of a turn's `<tool_call>` block and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// 1-based line in the turn.
    pub line: usize,
    /// The tool named, when the line is a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The arguments, when the line is a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// The tool's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why there is no result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// Wall time of the call in microseconds (0 for lines that are not calls).
    pub elapsed_us: u64,
    /// Fuel the guest used.
    pub fuel: u64,
}

impl CallRecord {
    /// Whether the call ran and returned a result.
    pub fn succeeded(&self) -> bool {
        self.result.is_some()
    }
}

/// One assistant turn of an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// The assistant text, verbatim.
    pub text: String,
    /// The lines of its `<tool_call>` block.
    pub calls: Vec<CallRecord>,
    /// The observation shown to the model after this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<String>,
    /// Token ids and log-probabilities, for local policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TurnTokens>,
    /// Time waiting for the policy.
    pub policy_ms: f64,
    /// Time running this turn's tool calls.
    pub tools_ms: f64,
}

/// A finished episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// The task's id.
    pub task_id: String,
    /// The episode's index in its run.
    pub episode: u64,
    /// The seed of the episode's tool randomness.
    pub seed: u64,
    /// The prompt style used.
    pub style: PromptStyle,
    /// The assistant turns.
    pub turns: Vec<TurnRecord>,
    /// Why the episode ended.
    pub stop: StopReason,
    /// The last turn's response, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_response: Option<String>,
    /// The task's expected answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_answer: Option<String>,
    /// Every reward term, by name, as the training signal.
    pub rewards: BTreeMap<String, f64>,
    /// The terms of `rewards` that measured nothing in this episode (a rate over zero events,
    /// such as `tool_success_rate` without a call): their value there is only the training
    /// default, and reports leave them out. See [`Trajectory::measured`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmeasured: Vec<String>,
    /// Total time waiting for the policy.
    pub policy_ms: f64,
    /// Total time running tools.
    pub tools_ms: f64,
    /// Wall time of the episode.
    pub total_ms: f64,
}

/// One training sequence: token ids with their loss mask and sampling log-probabilities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenSequence {
    /// Token ids in order.
    pub ids: Vec<u32>,
    /// 1 where the model generated the token, 0 elsewhere (prompt, observations, template).
    pub mask: Vec<u8>,
    /// The sampling log-probability where `mask` is 1, 0 elsewhere.
    pub logprobs: Vec<f32>,
}

impl Trajectory {
    /// Every tool call the episode made (lines that parsed as calls).
    pub fn calls(&self) -> impl Iterator<Item = &CallRecord> {
        self.turns
            .iter()
            .flat_map(|t| &t.calls)
            .filter(|c| c.name.is_some())
    }

    /// The token sequences to train on; empty for policies that report no tokens.
    pub fn token_sequences(&self) -> Vec<TokenSequence> {
        let mut out: Vec<TokenSequence> = Vec::new();
        for t in self.turns.iter().filter_map(|t| t.tokens.as_ref()) {
            if t.restart || out.is_empty() {
                out.push(TokenSequence::default());
            }
            let Some(seq) = out.last_mut() else { break };
            seq.ids.extend(&t.context);
            seq.mask.extend(std::iter::repeat_n(0, t.context.len()));
            seq.logprobs
                .extend(std::iter::repeat_n(0.0, t.context.len()));
            seq.ids.extend(&t.generated);
            seq.mask.extend(std::iter::repeat_n(1, t.generated.len()));
            // A policy that reports fewer log-probabilities than tokens is a bug upstream; pad so
            // the sequence stays aligned and the gap is visible as zeros.
            seq.logprobs
                .extend((0..t.generated.len()).map(|i| t.logprobs.get(i).copied().unwrap_or(0.0)));
        }
        out
    }

    /// The reward terms that measured something: `rewards` without the `unmeasured` ones. What
    /// an evaluation averages.
    pub fn measured(&self) -> BTreeMap<String, f64> {
        self.rewards
            .iter()
            .filter(|(name, _)| !self.unmeasured.contains(name))
            .map(|(name, v)| (name.clone(), *v))
            .collect()
    }

    /// The line of a trajectory JSONL file.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            serde_json::json!({"task_id": self.task_id, "error": e.to_string()}).to_string()
        })
    }
}

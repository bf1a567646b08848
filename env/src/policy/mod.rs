//! Policies: whatever writes the assistant's next turn.
//!
//! A [`Policy`] gets the conversation so far and returns the next assistant turn. Implementations
//! here are [`ScriptedPolicy`] (replays canned turns, for tests) and [`OpenAiPolicy`] (any
//! OpenAI-compatible chat-completions endpoint); the `trainer` crate adds the local candle
//! sampler, which also returns token ids and log-probabilities so trajectories can be trained on
//! without re-tokenizing generated text.

mod openai;
mod scripted;

pub use openai::{OpenAiConfig, OpenAiPolicy};

pub use scripted::ScriptedPolicy;

use crate::chat::Message;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// What the rollout asks of a policy for one turn.
#[derive(Debug, Clone, Copy)]
pub struct TurnRequest<'a> {
    /// The whole conversation so far, starting with the system message.
    pub messages: &'a [Message],
    /// Most tokens the turn may generate (the episode's remaining budget, capped by the policy's
    /// own setting).
    pub max_new_tokens: u32,
    /// Which episode of a batch this turn belongs to (local policies use it to keep a KV cache
    /// or a token history per episode; remote ones may ignore it).
    pub episode: u64,
    /// Functions to offer through the endpoint's native tool calling (an OpenAI `tools` array),
    /// for policies that have it; `None`: the tools are in the prompt's text, as in TIR.
    pub tools: Option<&'a [serde_json::Value]>,
}

/// Token-level record of one turn, for policies that run the model themselves.
///
/// The trajectory of an episode is the concatenation, turn after turn, of `context` (loss mask
/// 0) and `generated` (loss mask 1): exactly the tokens the model saw and wrote, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnTokens {
    /// Tokens fed to the model before this turn's generation that it has not seen in earlier
    /// turns: the whole rendered prompt on the first turn; afterwards the end of the previous
    /// assistant message, the observation and the next assistant header.
    pub context: Vec<u32>,
    /// The tokens the model generated, as sampled (not re-tokenized from text).
    pub generated: Vec<u32>,
    /// log p of each generated token under the sampling policy, aligned with `generated`.
    pub logprobs: Vec<f32>,
    /// True when `context` is a whole new prompt rather than a continuation of the tokens of
    /// earlier turns (a policy that re-renders the conversation each turn sets it; the rollout
    /// also sets it on the first turn and in the paper style, which re-renders every turn).
    #[serde(default)]
    pub restart: bool,
}

/// Token counts reported by a remote endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

/// A call made through an endpoint's native tool calling (`choices[0].message.tool_calls`).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeCall {
    /// The function's name.
    pub name: String,
    /// Its arguments as sent: usually a string holding JSON, sometimes an object.
    pub arguments: serde_json::Value,
}

/// One assistant turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyTurn {
    /// The assistant's text.
    pub text: String,
    /// Calls made through native tool calling (only when the request offered `tools`).
    pub tool_calls: Vec<NativeCall>,
    /// Token ids and log-probabilities, for local policies.
    pub tokens: Option<TurnTokens>,
    /// Token counts, when the policy reports them.
    pub usage: Option<Usage>,
    /// Why generation stopped (`stop`, `length`, …), when known.
    pub finish_reason: Option<String>,
}

/// Why a policy could not produce a turn.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The endpoint answered with an HTTP error that retrying does not fix (or retries ran out).
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// The status code.
        status: u16,
        /// The URL requested.
        url: String,
        /// The start of the response body.
        body: String,
    },
    /// The endpoint could not be reached or the connection failed.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What failed.
        message: String,
    },
    /// The endpoint answered 200 with something that is not a chat completion.
    #[error("malformed response from {url}: {message}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A retryable failure (429, 5xx, connection, timeout) persisted through every retry.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// Requests made, the first included.
        attempts: u32,
        /// The last attempt's error.
        last: Box<PolicyError>,
    },
    /// The policy is misconfigured (e.g. the API key variable is unset).
    #[error("policy configuration: {0}")]
    Config(String),
    /// A scripted policy has no more turns to replay.
    #[error("scripted policy has no turn {turn} for episode {episode}")]
    Exhausted {
        /// The episode.
        episode: u64,
        /// The 0-based turn that was asked for.
        turn: usize,
    },
    /// A local model failed.
    #[error("model: {0}")]
    Model(String),
}

/// Writes assistant turns. `Sync` so one policy serves many concurrent episodes.
pub trait Policy: Send + Sync {
    /// A short name for logs and result files (the model name, `scripted`, …).
    fn name(&self) -> String;

    /// The next assistant turn for `request.messages`.
    fn next_turn(
        &self,
        request: TurnRequest<'_>,
    ) -> impl Future<Output = Result<PolicyTurn, PolicyError>> + Send;

    /// Called as an episode starts; the guard is held until the episode ends. A policy that
    /// batches the turns of concurrent episodes in lockstep counts the live episodes with it (a
    /// batch waits for every live episode, and an ended one must stop being waited for). Others
    /// need nothing. `episode` is the id its turns will carry ([`TurnRequest::episode`]), so a
    /// policy that keeps state per episode (a KV cache) can free it when the guard drops.
    fn begin_episode(&self, episode: u64) -> EpisodeGuard {
        let _ = episode;
        EpisodeGuard::default()
    }
}

/// Held for the length of an episode (see [`Policy::begin_episode`]); whatever it owns is
/// dropped when the episode ends.
#[derive(Default)]
pub struct EpisodeGuard(Option<Box<dyn Send + Sync>>);

impl EpisodeGuard {
    /// A guard that owns `value` until the episode ends.
    pub fn new(value: impl Send + Sync + 'static) -> Self {
        EpisodeGuard(Some(Box::new(value)))
    }
}

impl std::fmt::Debug for EpisodeGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "EpisodeGuard(held)"
        } else {
            "EpisodeGuard"
        })
    }
}

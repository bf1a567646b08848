//! Multi-turn rollouts: a policy writes TIR turns, the sandbox runs the calls, observations go
//! back, until the policy responds or a limit is reached.
//!
//! Each turn is parsed with the TIR codec. Lines of the `<tool_call>` block that are not valid
//! calls become error entries of the observation, so the model learns from them; valid calls run
//! in the wasm sandbox on tokio's blocking pool (never on the async executor), bounded by a
//! semaphore shared by every episode of the [`Roller`]. Calls of one turn run concurrently, except
//! calls to stateful tools, which run one after another in the order written so that a `set`
//! before a `get` in one turn means what it says. The observation lists every line's outcome in
//! order.

mod prompt;
mod score;
mod trajectory;

pub use prompt::{render, system_prompt, system_prompt_with, PromptStyle, Step, ToolListing};
pub use score::score_trajectory;
pub use trajectory::{CallRecord, ErrorRecord, StopReason, TokenSequence, Trajectory, TurnRecord};

use crate::episode::Episode;
use crate::policy::{Policy, PolicyError, PolicyTurn, TurnRequest};
use crate::registry::Registry;
use crate::sandbox::CallOutcome;
use crate::tir::{parse_turn, render_call_observations, CallObservation, ToolCall};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// Limits and layout of episodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// Most assistant turns per episode.
    pub max_turns: u32,
    /// Most tokens one turn may generate.
    pub max_new_tokens: u32,
    /// Most tokens the whole episode may generate; the episode stops when it is spent.
    pub max_episode_tokens: u32,
    /// Most tool calls one turn may make; further lines get an error observation.
    pub max_calls_per_turn: usize,
    /// Most tool calls running at once across every episode of a roller.
    pub max_calls_in_flight: usize,
    /// How the dialogue is laid out for the policy.
    pub style: PromptStyle,
    /// How much of each tool's documentation the system prompt shows.
    pub tool_listing: ToolListing,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            max_turns: 6,
            max_new_tokens: 512,
            max_episode_tokens: 1536,
            max_calls_per_turn: 8,
            max_calls_in_flight: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            style: PromptStyle::Chat,
            tool_listing: ToolListing::Full,
        }
    }
}

/// What an episode starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeTask {
    /// The dataset's id.
    pub id: String,
    /// The user's request.
    pub question: String,
    /// The expected final answer, if the task has one.
    pub expected_answer: Option<String>,
    /// Reference assistant turns, if the task has them (for per-turn correctness).
    pub reference_turns: Vec<String>,
}

/// Why an episode could not be run to the end. Tool failures are never here: they are
/// observations.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The policy failed (unreachable endpoint, model error, exhausted script).
    #[error("task {task}, turn {turn}: {source}")]
    Policy {
        /// The task's id.
        task: String,
        /// The 0-based turn.
        turn: usize,
        /// What failed.
        source: PolicyError,
    },
    /// The host failed to run a call (state directory, instance pool).
    #[error("task {task}: {message}")]
    Host {
        /// The task's id.
        task: String,
        /// What failed.
        message: String,
    },
}

/// Runs episodes against one registry with one system prompt and shared limits.
pub struct Roller {
    registry: Arc<Registry>,
    config: RolloutConfig,
    system: String,
    calls_in_flight: Arc<Semaphore>,
}

/// A call to run: its index among the turn's lines, its 1-based line, the call.
type Job = (usize, usize, ToolCall);

/// The outcome of one call line before it is recorded.
struct LineOutcome {
    record: CallRecord,
    observation: CallObservation,
}

/// What one assistant turn did, as [`Roller::step`] reports it.
#[derive(Debug, Clone)]
pub struct TurnStep {
    /// One record per non-blank line of the turn's `<tool_call>` block, in order.
    pub calls: Vec<CallRecord>,
    /// The `<obs>` text the policy reads next; `None` when the turn made no call.
    pub observation: Option<String>,
    /// Why the episode ends with this turn, if it does: it answered, or did nothing.
    pub stop: Option<StopReason>,
}

impl Roller {
    /// A roller whose system prompt lists every tool of `registry`.
    pub fn new(registry: Arc<Registry>, config: RolloutConfig) -> Self {
        let system =
            system_prompt_with(registry.tools().iter().map(|t| &t.def), config.tool_listing);
        let permits = config.max_calls_in_flight.max(1);
        Roller {
            registry,
            config,
            system,
            calls_in_flight: Arc::new(Semaphore::new(permits)),
        }
    }

    /// The system prompt episodes start with.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The registry the calls run in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The rollout limits.
    pub fn config(&self) -> &RolloutConfig {
        &self.config
    }

    /// Runs one episode of `task` with `policy`. `episode` identifies it to the policy (and in the
    /// trajectory); `seed` seeds the tools' randomness.
    pub async fn run<P: Policy>(
        &self,
        policy: &P,
        task: &EpisodeTask,
        episode: u64,
        seed: u64,
    ) -> Result<Trajectory, RolloutError> {
        let start = Instant::now();
        let state = Arc::new(self.registry.episode_with_seed(seed));
        let mut steps = vec![Step::User(task.question.clone())];
        let mut turns: Vec<TurnRecord> = Vec::new();
        let mut tokens_used: u64 = 0;
        let budget = u64::from(self.config.max_episode_tokens);
        let mut stop = StopReason::MaxTurns;

        for turn_index in 0..self.config.max_turns as usize {
            let remaining = budget.saturating_sub(tokens_used);
            if remaining == 0 {
                stop = StopReason::TokenBudget;
                break;
            }
            let messages = render(self.config.style, &self.system, &steps);
            let request = TurnRequest {
                messages: &messages,
                max_new_tokens: remaining.min(u64::from(self.config.max_new_tokens)) as u32,
                episode,
                tools: None,
            };
            let asked = Instant::now();
            let reply: PolicyTurn =
                policy
                    .next_turn(request)
                    .await
                    .map_err(|source| RolloutError::Policy {
                        task: task.id.clone(),
                        turn: turn_index,
                        source,
                    })?;
            let policy_ms = ms(asked);
            tokens_used += generated_tokens(&reply);

            let ran = Instant::now();
            let step = self.step(&state, &reply.text, &task.id).await?;
            let tools_ms = ms(ran);
            let restart = self.config.style == PromptStyle::Paper || turn_index == 0;
            turns.push(TurnRecord {
                text: reply.text.clone(),
                calls: step.calls,
                observation: step.observation.clone(),
                tokens: reply.tokens.map(|mut tokens| {
                    tokens.restart |= restart;
                    tokens
                }),
                policy_ms,
                tools_ms,
            });
            steps.push(Step::Assistant(reply.text));
            match (step.observation, step.stop) {
                (Some(obs), _) => steps.push(Step::Observation(obs)),
                (None, reason) => {
                    stop = reason.unwrap_or(StopReason::NoAction);
                    break;
                }
            }
            if tokens_used >= budget {
                stop = StopReason::TokenBudget;
                break;
            }
        }
        if let Ok(state) = Arc::try_unwrap(state) {
            // A leftover temporary directory is not worth failing an episode over.
            let _ = state.close();
        }
        let final_response = turns
            .last()
            .and_then(|t| crate::reward::episode::response_of(&t.text))
            .map(str::to_string);
        let policy_ms = turns.iter().map(|t| t.policy_ms).sum();
        let tools_ms = turns.iter().map(|t| t.tools_ms).sum();
        Ok(Trajectory {
            task_id: task.id.clone(),
            episode,
            seed,
            style: self.config.style,
            turns,
            stop,
            final_response,
            expected_answer: task.expected_answer.clone(),
            rewards: BTreeMap::new(),
            unmeasured: Vec::new(),
            policy_ms,
            tools_ms,
            total_ms: ms(start),
        })
    }

    /// One assistant turn's effect on the world: the turn is parsed, its calls run (see the
    /// module's rule on order), and the observation the policy reads next is rendered. The rollout
    /// loop and `toolenv serve`'s step endpoint both go through here, so a served episode sees
    /// exactly what a local one would.
    pub async fn step(
        &self,
        state: &Arc<Episode>,
        text: &str,
        task: &str,
    ) -> Result<TurnStep, RolloutError> {
        let parsed = parse_turn(text);
        let outcomes = match &parsed.tool_calls {
            Some(lines) if !lines.is_empty() => self.run_calls(lines, state, task).await?,
            _ => Vec::new(),
        };
        let observation = (!outcomes.is_empty()).then(|| {
            let obs: Vec<CallObservation> =
                outcomes.iter().map(|o| o.observation.clone()).collect();
            render_call_observations(&obs)
        });
        let stop = observation.is_none().then(|| {
            if parsed.response.is_some() {
                StopReason::Response
            } else {
                StopReason::NoAction
            }
        });
        Ok(TurnStep {
            calls: outcomes.into_iter().map(|o| o.record).collect(),
            observation,
            stop,
        })
    }

    /// Whether an episode is over after its turn `turn_index` (0-based) gave `step`: the turn
    /// ended it, or it was the last turn allowed. The token budget is the loop's own rule (a
    /// served episode's tokens are counted by its client).
    pub fn done_after(&self, turn_index: usize, step: &TurnStep) -> bool {
        step.stop.is_some() || turn_index + 1 >= self.config.max_turns as usize
    }

    /// Runs the lines of one `<tool_call>` block; returns one outcome per line, in order.
    async fn run_calls(
        &self,
        lines: &[crate::tir::ParsedCall],
        state: &Arc<Episode>,
        task: &str,
    ) -> Result<Vec<LineOutcome>, RolloutError> {
        let mut outcomes: Vec<Option<LineOutcome>> = Vec::with_capacity(lines.len());
        let mut stateless = Vec::new();
        let mut stateful = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            match &line.result {
                Err(e) => outcomes.push(Some(refused(line.line, None, "parse", e.to_string()))),
                Ok(call) if i >= self.config.max_calls_per_turn => outcomes.push(Some(refused(
                    line.line,
                    Some(call),
                    "too_many_calls",
                    format!(
                        "only {} calls per turn are run; this one was skipped",
                        self.config.max_calls_per_turn
                    ),
                ))),
                Ok(call) => {
                    outcomes.push(None);
                    let job = (i, line.line, call.clone());
                    match self.registry.tool(&call.name) {
                        Some(tool) if tool.stateful => stateful.push(job),
                        _ => stateless.push(vec![job]),
                    }
                }
            }
        }
        for (i, line, call, outcome) in self.execute(stateless, stateful, state, task).await? {
            let (result, error, shown) = match outcome.result {
                Ok(v) => (Some(v.clone()), None, Ok(v)),
                Err(e) => {
                    let message = e.to_string();
                    let record = ErrorRecord {
                        kind: e.kind().to_string(),
                        message: message.clone(),
                    };
                    (None, Some(record), Err(message))
                }
            };
            let observation = CallObservation {
                name: call.name.clone(),
                outcome: shown,
            };
            outcomes[i] = Some(LineOutcome {
                record: CallRecord {
                    line,
                    name: Some(call.name),
                    arguments: Some(Value::Object(call.parameters)),
                    result,
                    error,
                    elapsed_us: outcome.elapsed.as_micros() as u64,
                    fuel: outcome.fuel_used,
                },
                observation,
            });
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Runs `calls` within `state` by the module's rule (stateful calls one after another in
    /// order, the rest concurrently), under the roller's bound on calls in flight; one outcome per
    /// call, in order. A tool's failure is in its outcome; `Err` is a host fault.
    pub async fn call_all(
        &self,
        calls: Vec<ToolCall>,
        state: &Arc<Episode>,
        task: &str,
    ) -> Result<Vec<CallOutcome>, RolloutError> {
        let mut stateless = Vec::new();
        let mut stateful = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            match self.registry.tool(&call.name) {
                Some(tool) if tool.stateful => stateful.push((i, i + 1, call)),
                _ => stateless.push(vec![(i, i + 1, call)]),
            }
        }
        let mut done = self.execute(stateless, stateful, state, task).await?;
        done.sort_by_key(|(i, ..)| *i);
        Ok(done.into_iter().map(|(.., outcome)| outcome).collect())
    }

    /// Runs the jobs: each stateless job on its own, the stateful chain in order.
    async fn execute(
        &self,
        stateless: Vec<Vec<Job>>,
        stateful: Vec<Job>,
        state: &Arc<Episode>,
        task: &str,
    ) -> Result<Vec<(usize, usize, ToolCall, CallOutcome)>, RolloutError> {
        let mut jobs = stateless;
        if !stateful.is_empty() {
            jobs.push(stateful);
        }
        let mut handles = Vec::with_capacity(jobs.len());
        for job in jobs {
            let registry = self.registry.clone();
            let state = state.clone();
            let semaphore = self.calls_in_flight.clone();
            handles.push(tokio::spawn(async move {
                let mut done = Vec::with_capacity(job.len());
                for (i, line, call) in job {
                    // The semaphore is never closed, so acquiring cannot fail.
                    let permit = semaphore.clone().acquire_owned().await.ok();
                    let registry = registry.clone();
                    let state = state.clone();
                    let ran = tokio::task::spawn_blocking(move || {
                        let args = Value::Object(call.parameters.clone());
                        let outcome = registry.call(&state, &call.name, &args);
                        (call, outcome)
                    })
                    .await;
                    drop(permit);
                    done.push((i, line, ran));
                }
                done
            }));
        }
        let mut finished = Vec::new();
        for handle in handles {
            let done = handle.await.map_err(|e| RolloutError::Host {
                task: task.to_string(),
                message: format!("a tool-call task failed: {e}"),
            })?;
            for (i, line, ran) in done {
                let (call, outcome) = ran.map_err(|e| RolloutError::Host {
                    task: task.to_string(),
                    message: format!("a tool call panicked: {e}"),
                })?;
                let outcome = outcome.map_err(|e| RolloutError::Host {
                    task: task.to_string(),
                    message: e.to_string(),
                })?;
                finished.push((i, line, call, outcome));
            }
        }
        Ok(finished)
    }
}

/// A line that did not run: a parse error or a call over the per-turn limit.
fn refused(line: usize, call: Option<&ToolCall>, kind: &str, message: String) -> LineOutcome {
    LineOutcome {
        record: CallRecord {
            line,
            name: call.map(|c| c.name.clone()),
            arguments: call.map(|c| Value::Object(c.parameters.clone())),
            result: None,
            error: Some(ErrorRecord {
                kind: kind.to_string(),
                message: message.clone(),
            }),
            elapsed_us: 0,
            fuel: 0,
        },
        observation: CallObservation {
            name: call.map_or_else(|| format!("line {line}"), |c| c.name.clone()),
            outcome: Err(message),
        },
    }
}

/// Tokens a turn generated: exact for local policies, the endpoint's count for remote ones,
/// else an estimate of one token per four bytes (what budgets need, not what is billed).
fn generated_tokens(turn: &PolicyTurn) -> u64 {
    if let Some(t) = &turn.tokens {
        return t.generated.len() as u64;
    }
    if let Some(u) = &turn.usage {
        return u.completion_tokens;
    }
    (turn.text.len() as u64).div_ceil(4)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

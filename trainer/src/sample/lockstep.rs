//! Lockstep batched sampling behind [`toolenv::policy::Policy`], for training and evaluation.
//!
//! Episodes run as concurrent tasks, each asking for its next turn when its tools have answered.
//! Sampling them one at a time wastes the batch dimension; sampling whatever happens to be
//! waiting makes the result depend on timing. Here a *round* is declared with the number of
//! episodes taking part ([`BatchedPolicy::round`]); a batch is launched exactly when every episode
//! still running has asked for its turn, so turn `k` of every live episode is sampled together,
//! in episode order, each row with its own seed derived from (episode, turn). The batches, and so
//! the tokens, are the same from run to run whatever the scheduling, which checkpoint resume
//! relies on. The shared system prompt is computed once per batch (see
//! [`crate::sample::sampler::generate_rows`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;
use toolenv::policy::{
    EpisodeGuard, Policy, PolicyError, PolicyTurn, TurnRequest, TurnTokens, Usage,
};

use crate::model::LoadedModel;
use crate::sample::local_policy::{model_error, template_messages};
use crate::sample::sampler::{generate_rows_cached, row_seed, PrefixCache, Row};
use crate::sample::sampler::{FinishReason, SamplingParams};

/// Counters of the sampling done since the last [`BatchedPolicy::take_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SamplingStats {
    /// Batches launched.
    pub batches: u64,
    /// Rows sampled (assistant turns).
    pub turns: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Prompt tokens fed.
    pub prompt_tokens: u64,
    /// Sum over generated tokens of the entropy of the model's distribution (nats).
    pub entropy_sum: f64,
    /// Wall time spent inside the sampler, seconds.
    pub seconds: f64,
}

/// A model shared with the trainer, sampled in lockstep rounds.
#[derive(Clone)]
pub struct BatchedPolicy {
    shared: Arc<Shared>,
    name: String,
}

struct Shared {
    loaded: Arc<LoadedModel>,
    params: SamplingParams,
    max_batch: usize,
    state: Mutex<State>,
    stats: Mutex<SamplingStats>,
    /// The shared prompt prefix's keys and values, reused by every batch of this policy (the
    /// weights do not change while a policy samples; the trainer makes a new one per step).
    prefix: Mutex<Option<PrefixCache>>,
}

#[derive(Default)]
struct State {
    /// Episodes of the current round that have not finished.
    active: usize,
    pending: Vec<Pending>,
}

struct Pending {
    episode: u64,
    turn: u64,
    prompt: Vec<u32>,
    max_new_tokens: usize,
    reply: oneshot::Sender<Result<PolicyTurn, PolicyError>>,
}

/// Membership of one episode in a round; dropping it (the episode ended, or failed) lets the
/// remaining episodes' batches launch without it.
pub struct Participant {
    shared: Arc<Shared>,
}

impl Drop for Participant {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.active = state.active.saturating_sub(1);
        launch_if_ready(&self.shared, &mut state);
    }
}

impl BatchedPolicy {
    /// A policy sampling from `loaded` with `params` (its `max_new_tokens` caps every turn; the
    /// tokenizer's EOS is added to the stop ids), at most `max_batch` rows per forward pass.
    pub fn new(
        loaded: Arc<LoadedModel>,
        params: SamplingParams,
        max_batch: usize,
        name: impl Into<String>,
    ) -> Self {
        let mut params = params;
        if let Some((_, eos)) = loaded.tokenizer.eos() {
            if !params.stop_token_ids.contains(&eos) {
                params.stop_token_ids.push(eos);
            }
        }
        BatchedPolicy {
            shared: Arc::new(Shared {
                loaded,
                params,
                max_batch: max_batch.max(1),
                state: Mutex::new(State::default()),
                stats: Mutex::new(SamplingStats::default()),
                prefix: Mutex::new(None),
            }),
            name: name.into(),
        }
    }

    /// Starts a round of `episodes` episodes and returns one [`Participant`] per episode; each
    /// must be dropped when its episode ends.
    pub fn round(&self, episodes: usize) -> Vec<Participant> {
        let mut state = lock(&self.shared.state);
        state.active += episodes;
        (0..episodes)
            .map(|_| Participant {
                shared: self.shared.clone(),
            })
            .collect()
    }

    /// The counters since the last call, reset.
    pub fn take_stats(&self) -> SamplingStats {
        std::mem::take(&mut *lock(&self.shared.stats))
    }

    /// The sampling parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.shared.params
    }
}

impl Policy for BatchedPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn next_turn(&self, request: TurnRequest<'_>) -> Result<PolicyTurn, PolicyError> {
        let messages = template_messages(request.messages);
        let tokenizer = &self.shared.loaded.tokenizer;
        let prompt = tokenizer
            .apply_chat_template(&messages, true)
            .and_then(|text| tokenizer.encode(&text, false))
            .map_err(model_error)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&self.shared.state);
            if state.active == 0 {
                return Err(PolicyError::Model(
                    "BatchedPolicy: a turn was asked outside a round (call `round` first)".into(),
                ));
            }
            state.pending.push(Pending {
                episode: request.episode,
                turn: messages.len() as u64,
                prompt,
                max_new_tokens: request.max_new_tokens as usize,
                reply: tx,
            });
            launch_if_ready(&self.shared, &mut state);
        }
        rx.await
            .map_err(|_| PolicyError::Model("the sampling batch was dropped".into()))?
    }

    /// Joins the episode to the running round (a round of one, added to any live one), so an
    /// evaluation that starts episodes as others end keeps every batch full.
    fn begin_episode(&self) -> EpisodeGuard {
        let mut participants = self.round(1);
        EpisodeGuard::new(participants.pop())
    }
}

/// Launches the waiting turns once every live episode of the round is waiting.
fn launch_if_ready(shared: &Arc<Shared>, state: &mut State) {
    if state.pending.is_empty() || state.pending.len() < state.active {
        return;
    }
    let mut batch = std::mem::take(&mut state.pending);
    batch.sort_by_key(|p| (p.episode, p.turn));
    let shared = shared.clone();
    // Dropping the join handle detaches the task; every reply goes through its channel.
    drop(tokio::task::spawn_blocking(move || sample(&shared, batch)));
}

fn sample(shared: &Shared, batch: Vec<Pending>) {
    for chunk in chunks(batch, shared.max_batch) {
        let started = Instant::now();
        let rows: Vec<Row> = chunk
            .iter()
            .map(|p| Row {
                prompt: p.prompt.clone(),
                seed: row_seed(
                    row_seed(shared.params.seed, p.episode),
                    p.turn.wrapping_add(1 << 32),
                ),
                max_new_tokens: p.max_new_tokens,
            })
            .collect();
        let loaded = &shared.loaded;
        let result = generate_rows_cached(
            &loaded.model,
            &loaded.tokenizer,
            &rows,
            &shared.params,
            &mut lock(&shared.prefix),
        );
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(generations) => {
                let mut stats = lock(&shared.stats);
                stats.batches += 1;
                stats.seconds += seconds;
                for (pending, g) in chunk.into_iter().zip(generations) {
                    stats.turns += 1;
                    stats.generated_tokens += g.tokens.len() as u64;
                    stats.prompt_tokens += pending.prompt.len() as u64;
                    stats.entropy_sum += g.mean_entropy * g.tokens.len() as f64;
                    let finish = match g.finish {
                        FinishReason::Length => "length",
                        FinishReason::StopToken(_) | FinishReason::StopString(_) => "stop",
                    };
                    let turn = PolicyTurn {
                        text: g.text.trim().to_string(),
                        usage: Some(Usage {
                            prompt_tokens: pending.prompt.len() as u64,
                            completion_tokens: g.tokens.len() as u64,
                        }),
                        tokens: Some(TurnTokens {
                            context: pending.prompt,
                            generated: g.tokens,
                            logprobs: g.logprobs,
                            restart: true,
                        }),
                        finish_reason: Some(finish.to_string()),
                    };
                    // The episode may have been dropped meanwhile; nothing to tell it then.
                    let _ = pending.reply.send(Ok(turn));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for pending in chunk {
                    let _ = pending.reply.send(Err(PolicyError::Model(message.clone())));
                }
            }
        }
    }
}

fn chunks(batch: Vec<Pending>, size: usize) -> Vec<Vec<Pending>> {
    let mut out: Vec<Vec<Pending>> = Vec::new();
    for p in batch {
        match out.last_mut() {
            Some(last) if last.len() < size => last.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters and queues, still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! Lockstep batched sampling behind [`toolenv::policy::Policy`], for training and evaluation.
//!
//! Episodes run as concurrent tasks, each asking for its next turn when its tools have answered.
//! Sampling them one at a time wastes the batch dimension; sampling whatever happens to be
//! waiting makes the result depend on timing. Here a *round* is declared with the number of
//! episodes taking part ([`BatchedPolicy::round`]); a batch is launched exactly when every episode
//! still running has asked for its turn, so turn `k` of every live episode is sampled together,
//! in episode order, each row with its own seed derived from (episode, turn). The batches, and so
//! the tokens, are the same from run to run whatever the scheduling, which checkpoint resume
//! relies on.
//!
//! Prefill costs only what is new, as prefix caching does in SGLang and vLLM: the shared system
//! prompt is computed once per policy, the copies of a group's prompt once per batch, and each
//! episode keeps its keys and values from turn to turn, so a later turn feeds only the last
//! sampled token, the end of the assistant message, the observation and the next header. Those
//! tokens are the turn's `context` (with `restart: false`), so an episode's training sequence is
//! exactly the tokens the model saw and wrote, in order. A conversation that is not the previous
//! one extended (the paper style re-renders the history) starts over from its whole prompt.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;
use toolenv::policy::{
    EpisodeGuard, Policy, PolicyError, PolicyTurn, TurnRequest, TurnTokens, Usage,
};

use std::collections::HashMap;

use crate::model::{KvCache, LoadedModel, Message};
use crate::sample::local_policy::{model_error, template_messages};
use crate::sample::sampler::{generate_continuations, row_seed, Continuation, PrefixCache};
use crate::sample::sampler::{FinishReason, SamplingParams};

/// Counters of the sampling done since the last [`BatchedPolicy::take_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SamplingStats {
    /// Sampling batches: the chunks of at most `max_batch` rows prefilled together (decoding
    /// keeps `max_batch` rows running, the next chunk's rows joining as rows finish).
    pub batches: u64,
    /// Rows sampled (assistant turns).
    pub turns: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Prompt tokens of the turns: each turn's whole rendered conversation, what a sampler
    /// without any cache would prefill.
    pub prompt_tokens: u64,
    /// Context tokens new to each episode (a first turn's prompt, a later turn's observation
    /// and template tokens): the turns' `context`.
    pub context_tokens: u64,
    /// Tokens actually run through the model before decoding (the shared prefix and a group's
    /// prompt once, then only what each episode has not fed).
    pub prefilled_tokens: u64,
    /// Turns that could not go on from their episode's cache and prefilled their whole prompt
    /// (first turns are not counted).
    pub restarts: u64,
    /// Sum over generated tokens of the entropy of the model's distribution (nats).
    pub entropy_sum: f64,
    /// Wall time spent inside the sampler, seconds.
    pub seconds: f64,
    /// Decoding steps (one token per row of the batch).
    pub decode_steps: u64,
    /// Rows summed over the decoding steps: `row_steps / decode_steps` is how full the batch ran.
    pub row_steps: u64,
    /// Of `seconds`: prefilling what each turn adds.
    pub prefill_s: f64,
    /// Of `seconds`: the decoding steps' forward passes.
    pub decode_s: f64,
    /// Of `seconds`: rows leaving and joining the batch (copies of keys and values).
    pub rebuild_s: f64,
    /// Times a batch was rebuilt as rows left and joined it.
    pub rebuilds: u64,
    /// Of `rebuilds`: those that copied every row into new buffers (the others wrote only the
    /// rows joining, in place).
    pub restacks: u64,
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
    /// What each live episode's model has seen, kept between its turns.
    memory: Mutex<HashMap<u64, Memory>>,
}

/// How a turn goes on from its episode's memory.
struct Carried {
    /// The episode's keys and values so far.
    cache: KvCache,
    /// The tokens they hold.
    fed: Vec<u32>,
    /// What to feed after them: the unfed sampled token, then `context`.
    new: Vec<u32>,
    /// The turn's context tokens.
    context: Vec<u32>,
}

/// An episode's state between turns.
struct Memory {
    /// The conversation as the model saw it, with its last reply appended.
    messages: Vec<Message>,
    /// Keys and values of every token fed so far.
    cache: KvCache,
    /// Those tokens.
    fed: Vec<u32>,
    /// Sampled tokens not yet fed (the last one of the reply).
    unfed: Vec<u32>,
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
    /// The conversation rendered for this turn.
    messages: Vec<Message>,
    /// Its whole prompt length in tokens.
    prompt_tokens: usize,
    /// What to feed: after `cache` when there is one, else the whole prompt.
    new: Vec<u32>,
    cache: Option<KvCache>,
    /// The tokens `cache` holds (empty without one).
    fed: Vec<u32>,
    /// The turn's `context` (the whole prompt on a restart).
    context: Vec<u32>,
    restart: bool,
    max_new_tokens: usize,
    reply: oneshot::Sender<Result<PolicyTurn, PolicyError>>,
}

/// Membership of one episode in a round; dropping it (the episode ended, or failed) lets the
/// remaining episodes' batches launch without it and frees what the episode kept.
pub struct Participant {
    shared: Arc<Shared>,
    episode: u64,
}

impl Drop for Participant {
    fn drop(&mut self) {
        lock(&self.shared.memory).remove(&self.episode);
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
                memory: Mutex::new(HashMap::new()),
            }),
            name: name.into(),
        }
    }

    /// Starts a round of the given episodes and returns one [`Participant`] per episode, in
    /// order; each must be dropped when its episode ends.
    pub fn round(&self, episodes: &[u64]) -> Vec<Participant> {
        let mut state = lock(&self.shared.state);
        state.active += episodes.len();
        episodes
            .iter()
            .map(|&episode| Participant {
                shared: self.shared.clone(),
                episode,
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
        let memory = lock(&self.shared.memory).remove(&request.episode);
        let first = memory.is_none();
        let carried = match memory {
            Some(m) => self.continuation(m, &messages).map_err(model_error)?,
            None => None,
        };
        let restart = carried.is_none();
        let (new, cache, fed, context) = match carried {
            Some(c) => (c.new, Some(c.cache), c.fed, c.context),
            None => (prompt.clone(), None, Vec::new(), prompt.clone()),
        };
        if restart && !first {
            lock(&self.shared.stats).restarts += 1;
        }
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
                prompt_tokens: prompt.len(),
                messages,
                new,
                cache,
                fed,
                context,
                restart,
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
    fn begin_episode(&self, episode: u64) -> EpisodeGuard {
        let mut participants = self.round(&[episode]);
        EpisodeGuard::new(participants.pop())
    }
}

impl BatchedPolicy {
    /// How this turn goes on from the episode's memory: its cache, the tokens to feed after it
    /// and the turn's context. `None` when `messages` is not the remembered conversation
    /// extended, or the template does not render it as one (the turn then restarts).
    fn continuation(&self, memory: Memory, messages: &[Message]) -> crate::Result<Option<Carried>> {
        let tokenizer = &self.shared.loaded.tokenizer;
        let eos = tokenizer.eos().map(|(_, id)| id);
        let ended_with_eos = eos.is_some() && memory.unfed.last().copied() == eos;
        let Some(text) = tokenizer.turn_continuation(&memory.messages, messages, ended_with_eos)?
        else {
            return Ok(None);
        };
        let context = tokenizer.encode(&text, false)?;
        let mut new = memory.unfed;
        new.extend_from_slice(&context);
        if new.is_empty() {
            return Ok(None);
        }
        Ok(Some(Carried {
            cache: memory.cache,
            fed: memory.fed,
            new,
            context,
        }))
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
    drop(tokio::task::spawn_blocking(move || {
        crate::process::on_compute_pool(|| sample(&shared, batch))
    }));
}

/// Samples the round's turns, at most `max_batch` rows decoding at once (rows that finish early
/// make room for the next: [`generate_continuations`]), and answers each episode.
fn sample(shared: &Shared, mut batch: Vec<Pending>) {
    let started = Instant::now();
    // What each row's cache will hold before its generated tokens.
    let fed_before: Vec<Vec<u32>> = batch
        .iter()
        .map(|p| [&p.fed[..], &p.new[..]].concat())
        .collect();
    let rows: Vec<Continuation> = batch
        .iter_mut()
        .map(|p| Continuation {
            cache: p.cache.take(),
            fed: std::mem::take(&mut p.fed),
            new: std::mem::take(&mut p.new),
            seed: row_seed(
                row_seed(shared.params.seed, p.episode),
                p.turn.wrapping_add(1 << 32),
            ),
            max_new_tokens: p.max_new_tokens,
        })
        .collect();
    let loaded = &shared.loaded;
    let result = generate_continuations(
        &loaded.model,
        &loaded.tokenizer,
        rows,
        &shared.params,
        &mut lock(&shared.prefix),
        true,
        shared.max_batch,
    );
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(done) => {
            let mut stats = lock(&shared.stats);
            // The chunks of `max_batch` rows prefilled together (what were separate batches
            // before rows joined a running batch), for comparable metrics.
            stats.batches += batch.len().div_ceil(shared.max_batch) as u64;
            stats.seconds += seconds;
            stats.prefilled_tokens += done.prefilled as u64;
            stats.decode_steps += done.cost.steps as u64;
            stats.row_steps += done.cost.row_steps as u64;
            stats.prefill_s += done.cost.prefill_s;
            stats.decode_s += done.cost.decode_s;
            stats.rebuild_s += done.cost.rebuild_s;
            stats.rebuilds += done.cost.rebuilds as u64;
            stats.restacks += done.cost.restacks as u64;
            for (((pending, g), cache), mut fed) in batch
                .into_iter()
                .zip(done.generations)
                .zip(done.caches)
                .zip(fed_before)
            {
                stats.turns += 1;
                stats.generated_tokens += g.tokens.len() as u64;
                stats.prompt_tokens += pending.prompt_tokens as u64;
                stats.context_tokens += pending.context.len() as u64;
                stats.entropy_sum += g.mean_entropy * g.tokens.len() as f64;
                let finish = match g.finish {
                    FinishReason::Length => "length",
                    FinishReason::StopToken(_) | FinishReason::StopString(_) => "stop",
                };
                let text = g.text.trim().to_string();
                let mut messages = pending.messages;
                messages.push(Message::new("assistant", text.clone()));
                lock(&shared.memory).insert(
                    pending.episode,
                    Memory {
                        messages,
                        cache,
                        fed: {
                            // Every generated token but the last, which is fed next turn.
                            fed.extend(&g.tokens[..g.tokens.len().saturating_sub(1)]);
                            fed
                        },
                        unfed: g.tokens.last().copied().into_iter().collect(),
                    },
                );
                let turn = PolicyTurn {
                    text,
                    tool_calls: Vec::new(),
                    usage: Some(Usage {
                        prompt_tokens: pending.prompt_tokens as u64,
                        completion_tokens: g.tokens.len() as u64,
                    }),
                    tokens: Some(TurnTokens {
                        context: pending.context,
                        generated: g.tokens,
                        logprobs: g.logprobs,
                        restart: pending.restart,
                    }),
                    finish_reason: Some(finish.to_string()),
                };
                // The episode may have been dropped meanwhile; nothing to tell it then.
                let _ = pending.reply.send(Ok(turn));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for pending in batch {
                let _ = pending.reply.send(Err(PolicyError::Model(message.clone())));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters and queues, still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

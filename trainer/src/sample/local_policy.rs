//! The local model as a [`toolenv::policy::Policy`]: the candle sampler behind the same interface
//! as a remote endpoint, so `trainer eval` and `toolenv eval` run the same evaluation code.
//!
//! Each turn renders the whole conversation with the model's chat template, tokenizes it and
//! samples on tokio's blocking pool (never on the async executor). Generation is serialized by a
//! lock: one model on one device, whose kernels already use every core. The turn's tokens come
//! back exactly as sampled; the rendered prompt is its `context` with `restart` set, so every
//! turn is its own training sequence whose loss mask covers only what the model generated.

use std::sync::{Arc, Mutex};

use toolenv::chat::Role;
use toolenv::policy::{Policy, PolicyError, PolicyTurn, TurnRequest, TurnTokens, Usage};

use crate::model::{LoadedModel, Message};
use crate::sample::sampler::{generate, FinishReason, SamplingParams};

/// A loaded model that writes assistant turns.
pub struct LocalPolicy {
    inner: Arc<Inner>,
    name: String,
}

struct Inner {
    loaded: LoadedModel,
    params: SamplingParams,
    gate: Mutex<()>,
}

impl LocalPolicy {
    /// A policy sampling from `loaded` with `params` (its `max_new_tokens` caps every turn; the
    /// tokenizer's EOS is added to the stop ids). `name` labels results and logs.
    pub fn new(loaded: LoadedModel, params: SamplingParams, name: impl Into<String>) -> Self {
        let mut params = params;
        if let Some((_, eos)) = loaded.tokenizer.eos() {
            if !params.stop_token_ids.contains(&eos) {
                params.stop_token_ids.push(eos);
            }
        }
        LocalPolicy {
            inner: Arc::new(Inner {
                loaded,
                params,
                gate: Mutex::new(()),
            }),
            name: name.into(),
        }
    }
}

impl Policy for LocalPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn next_turn(&self, request: TurnRequest<'_>) -> Result<PolicyTurn, PolicyError> {
        let messages = template_messages(request.messages);
        // A seed per episode and turn: reruns reproduce, and episodes of a group differ.
        let seed = self.inner.params.seed
            ^ request.episode.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (messages.len() as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let max_new_tokens = request.max_new_tokens as usize;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.turn(&messages, max_new_tokens, seed))
            .await
            .map_err(|e| PolicyError::Model(format!("the sampling task failed: {e}")))?
    }
}

impl Inner {
    fn turn(
        &self,
        messages: &[Message],
        max_new_tokens: usize,
        seed: u64,
    ) -> Result<PolicyTurn, PolicyError> {
        let tokenizer = &self.loaded.tokenizer;
        let prompt = tokenizer
            .apply_chat_template(messages, true)
            .map_err(model_error)?;
        let context = tokenizer.encode(&prompt, false).map_err(model_error)?;
        let mut params = self.params.clone();
        params.max_new_tokens = params.max_new_tokens.min(max_new_tokens);
        params.seed = seed;
        if params.max_new_tokens == 0 {
            return Ok(PolicyTurn {
                finish_reason: Some("length".into()),
                ..PolicyTurn::default()
            });
        }
        let generation = {
            // A poisoned lock means another turn panicked; the model itself is unchanged.
            let _turn = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            // On the pool once the gate is held: a pool thread waiting on the gate could not help.
            crate::process::on_compute_pool(|| {
                generate(
                    &self.loaded.model,
                    tokenizer,
                    std::slice::from_ref(&context),
                    &params,
                )
            })
            .map_err(model_error)?
        };
        let generation = generation
            .into_iter()
            .next()
            .ok_or_else(|| PolicyError::Model("the sampler returned no sequence".into()))?;
        let finish = match generation.finish {
            FinishReason::Length => "length",
            FinishReason::StopToken(_) | FinishReason::StopString(_) => "stop",
        };
        Ok(PolicyTurn {
            text: generation.text.trim().to_string(),
            tool_calls: Vec::new(),
            usage: Some(Usage {
                prompt_tokens: context.len() as u64,
                completion_tokens: generation.tokens.len() as u64,
            }),
            tokens: Some(TurnTokens {
                context,
                generated: generation.tokens,
                logprobs: generation.logprobs,
                restart: true,
            }),
            finish_reason: Some(finish.to_string()),
        })
    }
}

/// The rollout's messages as the chat template takes them.
pub(crate) fn template_messages(messages: &[toolenv::chat::Message]) -> Vec<Message> {
    messages
        .iter()
        .map(|m| Message::new(role_name(m.role), m.content.clone()))
        .collect()
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

pub(crate) fn model_error(e: crate::Error) -> PolicyError {
    PolicyError::Model(e.to_string())
}

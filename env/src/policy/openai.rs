//! OpenAI-compatible chat-completions client: the policy for hosted models and local inference
//! servers (vLLM, llama.cpp, TGI, …) that speak the same API.
//!
//! This module owns the request/response wire format, the API key and the retry policy.
//! Overload and outages are expected during long rollouts, so 429, 5xx, connection failures and
//! timeouts are retried with exponential backoff and jitter (honouring `Retry-After`); anything
//! else fails at once with a typed error. The API key is read once, marked sensitive, and never
//! appears in a log line, an error or a `Debug` output.

use super::{NativeCall, Policy, PolicyError, PolicyTurn, TurnRequest, Usage};
use crate::chat::Message;
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How much of an error body is kept in [`PolicyError::Http`].
const BODY_EXCERPT_CHARS: usize = 512;

/// Settings of an OpenAI-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// Base URL, e.g. `http://127.0.0.1:8000/v1`; requests go to `{base}/chat/completions`.
    pub base_url: String,
    /// The model name sent with each request.
    pub model: String,
    /// Name of the environment variable holding the API key. Unset or empty: no
    /// `Authorization` header is sent (local servers need none).
    pub api_key_env: String,
    /// Fail at construction when the key variable is unset, instead of sending no key.
    pub require_api_key: bool,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus-sampling mass; omitted from requests when unset.
    pub top_p: Option<f32>,
    /// Most tokens per turn; the rollout's remaining budget may lower it further.
    pub max_tokens: u32,
    /// Strings that end generation; omitted from requests when empty.
    pub stop: Vec<String>,
    /// Deadline of one HTTP attempt, in milliseconds, from connecting to the end of the body.
    pub request_timeout_ms: u64,
    /// Deadline for establishing a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Retries after the first attempt on 429, 5xx, connection failures and timeouts.
    pub max_retries: u32,
    /// Delay before the first retry, in milliseconds; doubles on each further retry.
    pub backoff_ms: u64,
    /// Cap on any single delay, in milliseconds, including one asked for by `Retry-After`.
    pub max_backoff_ms: u64,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "http://127.0.0.1:8000/v1".to_string(),
            model: "default".to_string(),
            api_key_env: "OPENAI_API_KEY".to_string(),
            require_api_key: false,
            temperature: 1.0,
            top_p: None,
            max_tokens: 1024,
            stop: Vec::new(),
            request_timeout_ms: 120_000,
            connect_timeout_ms: 10_000,
            max_retries: 4,
            backoff_ms: 500,
            max_backoff_ms: 30_000,
        }
    }
}

/// A policy backed by an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiPolicy {
    config: OpenAiConfig,
    url: String,
    /// `Bearer <key>`, marked sensitive so `Debug` hides it.
    auth: Option<HeaderValue>,
    client: Client,
}

impl OpenAiPolicy {
    /// A client for `config`, reading the API key from its variable now.
    pub fn new(config: OpenAiConfig) -> Result<Self, PolicyError> {
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PolicyError::Config(format!(
                "base_url {:?} is not an http(s) URL",
                config.base_url
            )));
        }
        if config.model.is_empty() {
            return Err(PolicyError::Config("model is empty".to_string()));
        }
        if config.request_timeout_ms == 0 || config.connect_timeout_ms == 0 {
            return Err(PolicyError::Config("timeouts must be positive".to_string()));
        }
        let url = format!("{base}/chat/completions");
        let auth = match std::env::var(&config.api_key_env) {
            Ok(key) if !key.is_empty() => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    PolicyError::Config(format!(
                        "${} holds characters not allowed in a header",
                        config.api_key_env
                    ))
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(PolicyError::Config(format!(
                    "${} is not valid UTF-8",
                    config.api_key_env
                )))
            }
            _ if config.require_api_key => {
                return Err(PolicyError::Config(format!(
                    "the API key variable ${} is unset or empty",
                    config.api_key_env
                )))
            }
            _ => None,
        };
        let client = Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .build()
            .map_err(|e| PolicyError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(OpenAiPolicy {
            config,
            url,
            auth,
            client,
        })
    }

    /// One HTTP exchange. `Err((error, retry, retry_after))` says whether retrying may help.
    async fn attempt(
        &self,
        body: &ChatRequest<'_>,
    ) -> Result<PolicyTurn, (PolicyError, bool, Option<Duration>)> {
        let mut request = self.client.post(&self.url).json(body);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            let retry = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            let error = PolicyError::Http {
                status: status.as_u16(),
                url: self.url.clone(),
                body: self.excerpt(&text),
            };
            return Err((error, retry, retry_after));
        }
        self.parse(&text).map_err(|e| (e, false, None))
    }

    fn transport(&self, e: reqwest::Error) -> (PolicyError, bool, Option<Duration>) {
        // `is_request` covers connections dropped mid-exchange, which overloaded servers do.
        let retry = e.is_connect() || e.is_timeout() || e.is_request();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        let error = PolicyError::Transport {
            url: self.url.clone(),
            message,
        };
        (error, retry, None)
    }

    /// The start of an error body, with the key scrubbed in case the server echoes it.
    fn excerpt(&self, text: &str) -> String {
        let mut body: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
        if let Some(key) = self.auth.as_ref().and_then(|a| a.to_str().ok()) {
            if let Some(key) = key.strip_prefix("Bearer ") {
                body = body.replace(key, "<redacted>");
            }
        }
        body
    }

    fn parse(&self, text: &str) -> Result<PolicyTurn, PolicyError> {
        let bad = |message: String| PolicyError::BadResponse {
            url: self.url.clone(),
            message,
        };
        let response: ChatResponse =
            serde_json::from_str(text).map_err(|e| bad(format!("not a chat completion: {e}")))?;
        let choice = response
            .choices
            .ok_or_else(|| bad("no `choices`".to_string()))?
            .into_iter()
            .next()
            .ok_or_else(|| bad("`choices` is empty".to_string()))?;
        let (content, calls) = match choice.message {
            Some(m) => (m.content, m.tool_calls.unwrap_or_default()),
            None => (None, Vec::new()),
        };
        let tool_calls: Vec<NativeCall> = calls
            .into_iter()
            .map(|c| NativeCall {
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect();
        // A turn cut off or filtered before any text, or one that only calls tools,
        // legitimately has no content; otherwise a missing content means the server sent
        // something other than a text completion.
        let text = match (content, choice.finish_reason.as_deref()) {
            (Some(text), _) => text,
            (None, Some("length" | "content_filter")) => String::new(),
            (None, _) if !tool_calls.is_empty() => String::new(),
            (None, reason) => {
                return Err(bad(format!(
                    "no `choices[0].message.content` (finish_reason {reason:?})"
                )))
            }
        };
        Ok(PolicyTurn {
            text,
            tool_calls,
            tokens: None,
            // A partial `usage` is not worth failing a turn over.
            usage: response
                .usage
                .and_then(|u| serde_json::from_value::<Usage>(u).ok()),
            finish_reason: choice.finish_reason,
        })
    }

    /// Exponential backoff with jitter in [delay/2, delay], so parallel episodes spread out.
    fn backoff(&self, retry: u32) -> Duration {
        let delay = self
            .config
            .backoff_ms
            .saturating_mul(2u64.saturating_pow(retry))
            .min(self.config.max_backoff_ms);
        let jitter = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let half = delay / 2;
        Duration::from_millis(half + jitter % (delay - half + 1))
    }
}

impl Policy for OpenAiPolicy {
    fn name(&self) -> String {
        self.config.model.clone()
    }

    /// A zero token budget gives an empty turn with `finish_reason` `length`, without a request.
    async fn next_turn(&self, request: TurnRequest<'_>) -> Result<PolicyTurn, PolicyError> {
        let max_tokens = self.config.max_tokens.min(request.max_new_tokens);
        if max_tokens == 0 {
            return Ok(PolicyTurn {
                finish_reason: Some("length".to_string()),
                ..PolicyTurn::default()
            });
        }
        let body = ChatRequest {
            model: &self.config.model,
            messages: request.messages,
            temperature: self.config.temperature,
            top_p: self.config.top_p,
            max_tokens,
            stop: &self.config.stop,
            tools: request.tools,
        };
        let mut retry = 0;
        loop {
            let (error, retryable, retry_after) = match self.attempt(&body).await {
                Ok(turn) => return Ok(turn),
                Err(e) => e,
            };
            if !retryable {
                return Err(error);
            }
            if retry >= self.config.max_retries {
                return Err(PolicyError::GaveUp {
                    attempts: retry.saturating_add(1),
                    last: Box::new(error),
                });
            }
            let cap = Duration::from_millis(self.config.max_backoff_ms);
            let delay = retry_after.map_or_else(|| self.backoff(retry), |d| d.min(cap));
            tracing::warn!(url = %self.url, error = %error, ?delay, "retrying chat completion");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [serde_json::Value]>,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Option<Vec<Choice>>,
    usage: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ChoiceMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: serde_json::Value,
}

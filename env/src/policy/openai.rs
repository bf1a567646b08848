//! OpenAI-compatible chat-completions client (placeholder: being written).

use super::{Policy, PolicyError, PolicyTurn, TurnRequest};

/// Settings of an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL, e.g. `http://127.0.0.1:8000/v1`; requests go to `{base}/chat/completions`.
    pub base_url: String,
    /// The model name sent with each request.
    pub model: String,
}

/// A policy backed by an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiPolicy {
    config: OpenAiConfig,
}

impl OpenAiPolicy {
    /// A client for `config`.
    pub fn new(config: OpenAiConfig) -> Result<Self, PolicyError> {
        Ok(OpenAiPolicy { config })
    }
}

impl Policy for OpenAiPolicy {
    fn name(&self) -> String {
        self.config.model.clone()
    }

    async fn next_turn(&self, _request: TurnRequest<'_>) -> Result<PolicyTurn, PolicyError> {
        Err(PolicyError::Config(format!(
            "the OpenAI client for {} is not implemented yet",
            self.config.base_url
        )))
    }
}

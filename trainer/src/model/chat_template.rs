//! Chat templates: the Jinja template shipped with a model (GGUF `tokenizer.chat_template` or
//! `tokenizer_config.json`'s `chat_template`), rendered with minijinja the way transformers
//! renders it (`trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`).

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One chat message. Extra fields (tool calls, names) can be passed through
/// [`ChatTemplate::render_value`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The text of the message.
    pub content: String,
}

impl Message {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template plus the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `source`. `bos_token`/`eos_token` are exposed to the template as variables.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        // transformers compiles chat templates with these two options; without them the
        // whitespace around `{% %}` blocks differs and the prompt tokens change.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<Value, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned(NAME.to_string(), source.to_string())
            .map_err(|e| Error::Template(e.to_string()))?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's reply
    /// should begin.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let messages = serde_json::to_value(messages)
            .map_err(|e| Error::Template(format!("messages: {e}")))?;
        self.render_value(messages, None, add_generation_prompt)
    }

    /// Renders arbitrary JSON messages (e.g. with `tool_calls`) and optional tool definitions
    /// (exposed as `tools`).
    pub fn render_value(
        &self,
        messages: serde_json::Value,
        tools: Option<serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| Error::Template(e.to_string()))?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(&messages),
            tools => Value::from_serialize(&tools),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        tmpl.render(ctx)
            .map_err(|e| Error::Template(format!("{e:#}")))
    }
}

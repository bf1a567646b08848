//! What the model reads: the system prompt listing the tools, and the two prompt styles.
//!
//! The system prompt reproduces the layout of the ToolRL and API-Bank data (`data/`), so a
//! model trained on that data sees the tools of this environment the way it saw tools in
//! training. The fixed instructions after the tool list are kept verbatim in `system_tail.txt`.
//!
//! Two styles lay out a multi-turn episode:
//! - [`PromptStyle::Chat`]: each assistant turn and each observation is its own message
//!   (`assistant`, then `user` holding `<obs>…</obs>`), so a local policy can extend its KV cache
//!   turn after turn.
//! - [`PromptStyle::Paper`]: as in the paper's data, the whole dialogue so far is re-rendered into
//!   one user message under `**Dialogue Records History**`, with `<user>`, the earlier turns
//!   (`<think>`, `<tool_call>`, `<response>`) and `<obs>` marks; every turn is a fresh prompt.

use crate::chat::Message;
use crate::tir::to_python_json;
use crate::tooldef::ToolDef;
use serde::{Deserialize, Serialize};

const SYSTEM_HEAD: &str = "You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks and provide structured chat responses.\n\n**Available Tools**\nIn your response, you can use the following tools:\n";
const SYSTEM_TAIL: &str = include_str!("system_tail.txt");
const HISTORY_HEADER: &str = "**Dialogue Records History**";

/// How an episode's dialogue is laid out for the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// One message per turn and per observation.
    #[default]
    Chat,
    /// The whole history re-rendered into one user message each turn (the paper's layout).
    Paper,
}

impl std::str::FromStr for PromptStyle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chat" => Ok(PromptStyle::Chat),
            "paper" => Ok(PromptStyle::Paper),
            other => Err(format!(
                "unknown prompt style {other:?}: expected chat or paper"
            )),
        }
    }
}

/// The system prompt for `tools`, in the shared data's layout: numbered entries with name,
/// description and the JSON of the parameters' `properties`.
pub fn system_prompt<'a>(tools: impl IntoIterator<Item = &'a ToolDef>) -> String {
    system_prompt_with(tools, ToolListing::Full)
}

/// How much of each tool's documentation the system prompt shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolListing {
    /// The whole description and every property's JSON Schema, as written.
    #[default]
    Full,
    /// The first sentence of the description, and for each property only its type, enum and
    /// the first sentence of its description: a fraction of the tokens, for small models and
    /// for training, where the prompt's length is most of the cost.
    Brief,
}

impl std::str::FromStr for ToolListing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(ToolListing::Full),
            "brief" => Ok(ToolListing::Brief),
            other => Err(format!(
                "unknown tool listing {other:?}: expected full or brief"
            )),
        }
    }
}

/// The system prompt for `tools` with their documentation shown as `listing` says.
pub fn system_prompt_with<'a>(
    tools: impl IntoIterator<Item = &'a ToolDef>,
    listing: ToolListing,
) -> String {
    let mut out = String::from(SYSTEM_HEAD);
    for (i, tool) in tools.into_iter().enumerate() {
        let mut properties = tool
            .parameters
            .get("properties")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        let description = match listing {
            ToolListing::Full => tool.description.clone(),
            ToolListing::Brief => {
                properties = brief_properties(&properties);
                first_sentence(&tool.description).to_string()
            }
        };
        out.push_str(&format!(
            "{}. Name: {}\nDescription: {}\nParameters: {}\n",
            i + 1,
            tool.name,
            description,
            to_python_json(&properties)
        ));
    }
    out.push('\n');
    out.push_str(SYSTEM_TAIL);
    out
}

/// Text up to and including the first ". " (or all of it).
fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(at) => &text[..=at],
        None => text,
    }
}

fn brief_properties(properties: &serde_json::Value) -> serde_json::Value {
    let Some(map) = properties.as_object() else {
        return properties.clone();
    };
    let brief = map
        .iter()
        .map(|(name, schema)| {
            let mut b = serde_json::Map::new();
            for key in ["type", "enum"] {
                if let Some(v) = schema.get(key) {
                    b.insert(key.to_string(), v.clone());
                }
            }
            if let Some(d) = schema.get("description").and_then(|d| d.as_str()) {
                b.insert("description".into(), first_sentence(d).into());
            }
            (name.clone(), serde_json::Value::Object(b))
        })
        .collect();
    serde_json::Value::Object(brief)
}

/// One step of the dialogue, independent of the style it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The user's message.
    User(String),
    /// An assistant turn, verbatim.
    Assistant(String),
    /// The observation answering the previous turn's calls (`<obs>…</obs>`).
    Observation(String),
}

/// The messages the policy sees for `steps` in `style`.
pub fn render(style: PromptStyle, system: &str, steps: &[Step]) -> Vec<Message> {
    let mut messages = vec![Message::system(system)];
    match style {
        PromptStyle::Chat => messages.extend(steps.iter().map(|s| match s {
            Step::User(text) => Message::user(text.clone()),
            Step::Assistant(text) => Message::assistant(text.clone()),
            Step::Observation(text) => Message::user(text.clone()),
        })),
        PromptStyle::Paper => {
            // Segments are separated by a blank line, except that an observation follows the
            // turn it answers on the next line, as in the data.
            let mut history = String::from(HISTORY_HEADER);
            for (i, step) in steps.iter().enumerate() {
                let sep = match (i, step) {
                    (0, _) => "\n",
                    (_, Step::Observation(_)) => "\n",
                    _ => "\n\n",
                };
                history.push_str(sep);
                match step {
                    Step::User(text) => {
                        history.push_str(&format!("<user> {} </user>", text.trim()))
                    }
                    Step::Assistant(text) | Step::Observation(text) => history.push_str(text),
                }
            }
            messages.push(Message::user(history));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn system_prompt_has_the_data_layout() {
        let def = ToolDef {
            name: "calculator".into(),
            description: "Evaluates.".into(),
            parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}}),
        };
        let brief = system_prompt_with([&def], ToolListing::Brief);
        assert!(brief.contains("Description: Evaluates."));
        let p = system_prompt([&def]);
        assert!(p.starts_with("You are a helpful multi-turn dialogue assistant"));
        assert!(p.contains("1. Name: calculator\nDescription: Evaluates.\nParameters: {\"expression\": {\"type\": \"string\"}}\n\n**Steps for Each Turn**"));
        assert!(p.ends_with("(if exists)."));
    }

    #[test]
    fn paper_style_matches_the_sft_data_layout() {
        let steps = [
            Step::User("Hi?".into()),
            Step::Assistant("<think> a </think>\n<tool_call>\n{}\n</tool_call>".into()),
            Step::Observation("<obs> [1] </obs>".into()),
            Step::Assistant("<think> b </think>\n<response> r </response>".into()),
            Step::User("More?".into()),
        ];
        let m = render(PromptStyle::Paper, "S", &steps);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1].content,
            "**Dialogue Records History**\n<user> Hi? </user>\n\n<think> a </think>\n<tool_call>\n{}\n</tool_call>\n<obs> [1] </obs>\n\n<think> b </think>\n<response> r </response>\n\n<user> More? </user>"
        );
        let chat = render(PromptStyle::Chat, "S", &steps);
        assert_eq!(chat.len(), 6);
        assert_eq!(chat[3], Message::user("<obs> [1] </obs>"));
    }
}

//! The JSON of calls and steps on the wire, shared by `toolenv serve`, `toolenv batch` and the
//! Python package: how a call's arguments are read (an object, or a JSON string holding one, as
//! chat-completions `tool_calls` carry them), how its outcome is written, and a step's answer.

use crate::rollout::TurnStep;
use crate::sandbox::CallOutcome;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The arguments of a call as an object. A string is parsed as JSON first. `Err` is the message
/// of a typed `parse` error: the model wrote something that is not a call.
pub fn arguments(value: Option<&Value>) -> Result<Map<String, Value>, String> {
    let parsed;
    let value = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::String(text)) => {
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|e| format!("arguments are a string that is not JSON: {e}"))?;
            &parsed
        }
        Some(v) => v,
    };
    match value {
        Value::Object(map) => Ok(map.clone()),
        other => Err(format!(
            "arguments must be a JSON object, got {}",
            crate::tir::JsonKind::of(other)
        )),
    }
}

/// One completion to score with ToolRL's reward: a `toolenv reward` input line, an item of
/// `/v1/reward`. Other keys (such as `expected` in the reward vectors) are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct RewardItem {
    /// The completion.
    pub text: String,
    /// ToolRL's reference text.
    pub ground_truth: String,
    /// The training step, for the step-scheduled variants.
    #[serde(default)]
    pub step: u64,
    /// The variant expression; the caller's default if absent.
    #[serde(default)]
    pub variant: Option<String>,
}

/// `{"ok": result}` or `{"error": {"kind", "message"}}`.
pub fn outcome(outcome: &CallOutcome) -> Value {
    match &outcome.result {
        Ok(value) => json!({ "ok": value }),
        Err(e) => json!({ "error": e.to_json() }),
    }
}

/// `{"error": {"kind", "message"}}` for a call that could not be run as asked.
pub fn error(kind: &str, message: impl Into<String>) -> Value {
    json!({"error": {"kind": kind, "message": message.into()}})
}

/// A step's answer: `{"turn", "observation", "calls": [{"line", "name", "arguments"}],
/// "results": [result or null], "errors": [{"kind", "message"} or null], "done", "stop"}`, one
/// entry per line of the turn's `<tool_call>` block in the three lists.
pub fn step(step: &TurnStep, turn: usize, done: bool) -> Value {
    let calls: Vec<Value> = step
        .calls
        .iter()
        .map(|c| json!({"line": c.line, "name": c.name, "arguments": c.arguments}))
        .collect();
    let results: Vec<Value> = step.calls.iter().map(|c| json!(c.result)).collect();
    let errors: Vec<Value> = step.calls.iter().map(|c| json!(c.error)).collect();
    json!({
        "turn": turn,
        "observation": step.observation,
        "calls": calls,
        "results": results,
        "errors": errors,
        "done": done,
        "stop": step.stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_objects_or_json_strings_of_objects() {
        let m = arguments(Some(&json!({"a": 1}))).unwrap();
        assert_eq!(Value::Object(m), json!({"a": 1}));
        let m = arguments(Some(&json!("{\"a\": [1, 2]}"))).unwrap();
        assert_eq!(Value::Object(m), json!({"a": [1, 2]}));
        assert!(arguments(None).unwrap().is_empty());
        let e = arguments(Some(&json!("{oops"))).unwrap_err();
        assert!(
            e.starts_with("arguments are a string that is not JSON"),
            "{e}"
        );
        let e = arguments(Some(&json!([1]))).unwrap_err();
        assert!(e.contains("got an array"), "{e}");
        let e = arguments(Some(&json!("3"))).unwrap_err();
        assert!(e.contains("got a number"), "{e}");
    }
}

//! The tool-integrated-reasoning (TIR) text format: reading assistant turns and writing calls,
//! turns and observations.
//!
//! A turn is `<think> … </think>`, then as needed a `<tool_call>` block with one JSON object
//! `{"name": …, "parameters": {…}}` per line, and/or `<response> … </response>`, each part on its
//! own line. Tool output goes back to the model inside `<obs> … </obs>`. Reading keeps the result of
//! every call line — a [`ToolCall`] or a typed [`CallError`] with its position — so the environment
//! can execute the valid calls and report the others.

mod call;
mod render;
mod turn;

pub use call::{json_message, parse_call, CallError, JsonKind, ToolCall};
pub use render::{
    parse_observation, render_call, render_call_observations, render_observation,
    render_tool_calls, render_turn, to_python_json, CallObservation, PythonFormatter,
};
pub use turn::{parse_turn, ParsedCall, Tag, Turn, TurnIssue};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    /// Text free of angle brackets, so it cannot open or close a tag.
    fn plain() -> impl Strategy<Value = String> {
        "[^<>]{0,40}"
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "[^\\x00]{0,12}".prop_map(Value::String),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z_]{1,6}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn tool_call() -> impl Strategy<Value = ToolCall> {
        (
            "[A-Za-z_.][A-Za-z0-9_. ]{0,12}",
            prop::collection::vec(("[a-z_]{1,6}", json_value()), 0..4),
        )
            .prop_map(|(name, kv)| ToolCall::new(name, kv.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(
            think in plain(),
            calls in prop::collection::vec(tool_call(), 0..4),
            response in prop::option::of(plain()),
        ) {
            let text = render_turn(&think, &calls, response.as_deref());
            let turn = parse_turn(&text);
            prop_assert_eq!(turn.think.as_deref(), Some(think.trim()));
            prop_assert_eq!(turn.response.as_deref(), response.as_deref().map(str::trim));
            prop_assert_eq!(turn.calls().cloned().collect::<Vec<_>>(), calls.clone());
            prop_assert_eq!(turn.call_errors().count(), 0);
            prop_assert!(turn.issues.is_empty());
            prop_assert_eq!(turn.tool_calls.is_some(), !calls.is_empty());
        }

        #[test]
        fn parsing_never_panics(text in any::<String>()) {
            let _ = parse_turn(&text);
        }

        #[test]
        fn parsing_tag_soup_never_panics(
            parts in prop::collection::vec(
                prop_oneof![
                    Just("<think>".to_owned()), Just("</think>".to_owned()),
                    Just("<tool_call>".to_owned()), Just("</tool_call>".to_owned()),
                    Just("<response>".to_owned()), Just("</response>".to_owned()),
                    Just("\n".to_owned()), Just("{\"name\": \"f\", \"parameters\": {}}".to_owned()),
                    Just("{".to_owned()), "[^<>]{0,8}",
                ],
                0..16,
            )
        ) {
            let text = parts.concat();
            let turn = parse_turn(&text);
            for call in turn.tool_calls.iter().flatten() {
                prop_assert!(call.line >= 1 && call.line <= text.matches('\n').count() + 1);
            }
        }
    }
}

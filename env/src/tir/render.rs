//! Writing turns, calls and observations as TIR text.
//!
//! JSON is written the way the ToolRL data was (Python's `json.dumps` separators `", "` and
//! `": "`, non-ASCII kept as is), so rendered calls look like the calls the model was trained on.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::Value;

use super::call::ToolCall;
use super::turn::Tag;

/// serde_json's compact output with Python's default separators.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// `value` as one line of JSON in Python's style.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serialising plain data (strings, maps, JSON values) into memory cannot fail, and the output
    // of serde_json is UTF-8; the fallbacks are unreachable but keep this function panic-free.
    if value.serialize(&mut ser).is_err() {
        return String::from("null");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// One call as a line: `{"name": "f", "parameters": {"a": 1}}`.
pub fn render_call(call: &ToolCall) -> String {
    to_python_json(call)
}

/// A `<tool_call>` block, one call per line.
pub fn render_tool_calls(calls: &[ToolCall]) -> String {
    let mut out = String::from("<tool_call>\n");
    for call in calls {
        out.push_str(&render_call(call));
        out.push('\n');
    }
    out.push_str("</tool_call>");
    out
}

/// A whole assistant turn: `<think> … </think>`, then the call block if there are calls, then
/// `<response> … </response>` if there is a response — each part on its own line.
pub fn render_turn(think: &str, calls: &[ToolCall], response: Option<&str>) -> String {
    let mut out = wrap(Tag::Think, think);
    if !calls.is_empty() {
        out.push('\n');
        out.push_str(&render_tool_calls(calls));
    }
    if let Some(response) = response {
        out.push('\n');
        out.push_str(&wrap(Tag::Response, response));
    }
    out
}

/// `<tag> content </tag>`, spaced as in the ToolRL data.
fn wrap(tag: Tag, content: &str) -> String {
    format!("{} {} {}", tag.open(), content, tag.close())
}

/// What one call gave back, for the observation the model reads next.
#[derive(Debug, Clone, PartialEq)]
pub struct CallObservation {
    /// The tool that was called (as the model named it).
    pub name: String,
    /// The tool's result, or the error message the model should see.
    pub outcome: Result<Value, String>,
}

impl CallObservation {
    /// `{"name": …, "results": …}` (the ToolRL layout) or `{"name": …, "error": …}`.
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        match &self.outcome {
            Ok(v) => m.insert("results".into(), v.clone()),
            Err(e) => m.insert("error".into(), Value::String(e.clone())),
        };
        Value::Object(m)
    }
}

/// `<obs> content </obs>`.
pub fn render_observation(content: &str) -> String {
    wrap(Tag::Obs, content)
}

/// The observation for the calls of one turn: a JSON list of their outcomes, in call order.
pub fn render_call_observations(outcomes: &[CallObservation]) -> String {
    let list: Vec<Value> = outcomes.iter().map(CallObservation::to_json).collect();
    render_observation(&to_python_json(&list))
}

/// The content of the first `<obs>…</obs>` in `text`, trimmed.
pub fn parse_observation(text: &str) -> Option<&str> {
    let start = text.find(Tag::Obs.open())? + Tag::Obs.open().len();
    let rest = &text[start..];
    let end = rest.find(Tag::Obs.close())?;
    Some(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call() -> ToolCall {
        let Value::Object(p) = json!({"city": "Zürich", "days": [1, 2.5]}) else {
            unreachable!()
        };
        ToolCall::new("weather", p)
    }

    #[test]
    fn python_style() {
        assert_eq!(
            render_call(&call()),
            r#"{"name": "weather", "parameters": {"city": "Zürich", "days": [1, 2.5]}}"#
        );
        assert_eq!(
            render_turn("go", &[call()], None),
            "<think> go </think>\n<tool_call>\n{\"name\": \"weather\", \"parameters\": {\"city\": \"Zürich\", \"days\": [1, 2.5]}}\n</tool_call>"
        );
    }

    #[test]
    fn observations() {
        let obs = render_call_observations(&[
            CallObservation {
                name: "weather".into(),
                outcome: Ok(json!({"t": 21})),
            },
            CallObservation {
                name: "nope".into(),
                outcome: Err("unknown tool".into()),
            },
        ]);
        assert_eq!(
            obs,
            r#"<obs> [{"name": "weather", "results": {"t": 21}}, {"name": "nope", "error": "unknown tool"}] </obs>"#
        );
        let back: Value = serde_json::from_str(parse_observation(&obs).unwrap()).unwrap();
        assert_eq!(back[1]["error"], "unknown tool");
    }
}

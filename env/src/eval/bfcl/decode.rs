//! Reading a model's calls out of its text the way ToolRL ran BFCL: the text after the last
//! `<tool_call>` up to the next `</tool_call>` (or the end), one JSON object a line with a
//! string `name` and an object `parameters`. A line that does not parse, is not such an object
//! (one with `arguments` instead, say), or names the function `none` in any case, is skipped; no
//! `<tool_call>` means no call. The result is bfcl-eval's decoded form, a list of
//! `{name: {parameter: value}}`.

use super::value::Py;
use serde_json::Value;

/// The calls in `text`, in bfcl-eval's decoded form.
pub fn decode_calls(text: &str) -> Py {
    Py::List(
        call_list(text)
            .into_iter()
            .map(|(name, parameters)| Py::Dict(vec![(name, Py::from_json(&parameters))]))
            .collect(),
    )
}

/// The calls in `text` as JSON: each call's name and its `parameters` object.
pub fn call_list(text: &str) -> Vec<(String, Value)> {
    let Some(at) = text.rfind("<tool_call>") else {
        return Vec::new();
    };
    let body = &text[at + "<tool_call>".len()..];
    let body = body.split("</tool_call>").next().unwrap_or(body);
    body.split('\n')
        .filter_map(|line| {
            // As `json.loads(line)`: JSON's own whitespace around the object, nothing else.
            let value: Value = serde_json::from_str(line).ok()?;
            let Value::Object(mut object) = value else {
                return None;
            };
            let name = object.get("name")?.as_str()?.to_string();
            let parameters = object.remove("parameters")?;
            if !parameters.is_object() || name.eq_ignore_ascii_case("none") {
                return None;
            }
            Some((name, parameters))
        })
        .collect()
}

/// Native tool calls (an OpenAI `tool_calls` list's `name` and `arguments`) in bfcl-eval's
/// decoded form; arguments that are not a JSON object make the call count as absent.
pub fn decode_tool_calls<'a>(calls: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Py {
    Py::List(
        calls
            .into_iter()
            .filter_map(|(name, arguments)| {
                let parsed;
                let arguments = match arguments {
                    Value::String(s) => {
                        parsed = serde_json::from_str::<Value>(s).ok()?;
                        &parsed
                    }
                    other => other,
                };
                arguments
                    .is_object()
                    .then(|| Py::Dict(vec![(name.to_string(), Py::from_json(arguments))]))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Py) -> Vec<String> {
        p.iter_items()
            .unwrap()
            .iter()
            .map(|c| match c {
                Py::Dict(d) => d[0].0.clone(),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn reads_the_last_block_line_by_line() {
        let text = "<tool_call>\n{\"name\": \"old\", \"parameters\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"a\", \"parameters\": {\"x\": 1}}\nnot json\n{\"name\": \"b\", \"arguments\": {}}\n{\"name\": \"NONE\", \"parameters\": {}}\n{\"name\": \"c\", \"parameters\": {}}\n</tool_call> {\"name\": \"after\", \"parameters\": {}}";
        assert_eq!(names(&decode_calls(text)), ["a", "c"]);
        assert_eq!(
            names(&decode_calls(
                "<tool_call>\n{\"name\": \"a\", \"parameters\": {}}"
            )),
            ["a"]
        );
        assert!(decode_calls("{\"name\": \"a\", \"parameters\": {}}")
            .is_empty()
            .unwrap());
    }
}

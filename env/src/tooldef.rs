//! Tool definitions: `schemas/tools/<name>.json`, OpenAI-style functions with a JSON Schema.
//!
//! A definition is checked whole when it is loaded (shape, name, and that `parameters` is itself
//! a valid JSON Schema) and its validator is compiled once; every call then validates against the
//! compiled form. The `jsonschema` crate does the validation (drafts 4 to 2020-12, chosen by
//! `$schema`, 2020-12 when absent) with its network and file resolvers off: a schema may not
//! fetch anything.

use crate::sandbox::Violation;
use jsonschema::Validator;
use serde_json::Value;
use std::path::Path;

/// A loaded tool definition.
#[derive(Debug, Clone)]
pub struct ToolDef {
    /// The tool's name, as the model calls it.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// The JSON Schema of the arguments object.
    pub parameters: Value,
}

impl ToolDef {
    /// The OpenAI function object `{"name", "description", "parameters"}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        })
    }
}

/// A problem in a definition file: the field (JSON Pointer style) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefProblem {
    /// 1-based line when known (JSON syntax errors).
    pub line: Option<usize>,
    /// The field, e.g. `name` or `parameters/properties/x/type`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl DefProblem {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        DefProblem {
            line: None,
            field: field.into(),
            message: message.into(),
        }
    }
}

const ALLOWED_KEYS: &[&str] = &["name", "description", "parameters", "strict", "$comment"];

/// Reads and checks a definition file, returning it with its compiled argument validator.
pub fn load_definition(path: &Path) -> Result<(ToolDef, Validator), Vec<DefProblem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![DefProblem::at("", format!("cannot read file: {e}"))])?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        vec![DefProblem {
            line: Some(e.line()),
            field: String::new(),
            message: format!("not valid JSON: {e}"),
        }]
    })?;
    parse_definition(value)
}

/// Checks a definition already parsed as JSON. Accepts the bare function object or the
/// `{"type": "function", "function": {...}}` wrapper of the chat-completions API.
pub fn parse_definition(value: Value) -> Result<(ToolDef, Validator), Vec<DefProblem>> {
    let mut value = value;
    if value.get("type").and_then(Value::as_str) == Some("function") {
        if let Some(inner) = value.get_mut("function") {
            value = inner.take();
        }
    }
    let Value::Object(obj) = value else {
        return Err(vec![DefProblem::at(
            "",
            "a tool definition must be a JSON object with name, description and parameters",
        )]);
    };
    let mut problems = Vec::new();
    for key in obj.keys() {
        if !ALLOWED_KEYS.contains(&key.as_str()) {
            problems.push(DefProblem::at(
                key.clone(),
                format!("unknown key; expected one of {}", ALLOWED_KEYS.join(", ")),
            ));
        }
    }
    let name = match obj.get("name") {
        Some(Value::String(n)) if valid_name(n) => n.clone(),
        Some(Value::String(n)) => {
            problems.push(DefProblem::at(
                "name",
                format!("{n:?} is not a valid tool name: use 1 to 64 of a-z, A-Z, 0-9, _ and -"),
            ));
            String::new()
        }
        Some(_) => {
            problems.push(DefProblem::at("name", "must be a string"));
            String::new()
        }
        None => {
            problems.push(DefProblem::at("name", "missing"));
            String::new()
        }
    };
    let description = match obj.get("description") {
        Some(Value::String(d)) => d.clone(),
        Some(_) => {
            problems.push(DefProblem::at("description", "must be a string"));
            String::new()
        }
        None => {
            problems.push(DefProblem::at(
                "description",
                "missing: the model needs it to know what the tool does",
            ));
            String::new()
        }
    };
    let parameters = obj.get("parameters").cloned();
    let validator = match &parameters {
        None => {
            problems.push(DefProblem::at(
                "parameters",
                "missing: give the JSON Schema of the arguments object",
            ));
            None
        }
        Some(schema) => match compile_schema(schema, "parameters") {
            Ok(v) => {
                if let Some(t) = schema.get("type") {
                    if t != "object" {
                        problems.push(DefProblem::at(
                            "parameters/type",
                            format!("must be \"object\" (arguments are a JSON object), found {t}"),
                        ));
                    }
                }
                Some(v)
            }
            Err(p) => {
                problems.push(p);
                None
            }
        },
    };
    match (validator, parameters) {
        (Some(validator), Some(parameters)) if problems.is_empty() => Ok((
            ToolDef {
                name,
                description,
                parameters,
            },
            validator,
        )),
        _ => Err(problems),
    }
}

/// Compiles `schema` (checking it against its meta-schema), naming `field` in the problem.
pub fn compile_schema(schema: &Value, field: &str) -> Result<Validator, DefProblem> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(DefProblem::at(
            field,
            "must be a JSON Schema (an object or a boolean)",
        ));
    }
    jsonschema::validator_for(schema).map_err(|e| {
        let at = e.instance_path().as_str();
        DefProblem::at(
            format!("{field}{at}"),
            format!("not a valid JSON Schema: {e}"),
        )
    })
}

/// Checks `instance` against `validator`, returning at most `max` violations.
pub fn violations(validator: &Validator, instance: &Value, max: usize) -> Vec<Violation> {
    if validator.is_valid(instance) {
        return Vec::new();
    }
    validator
        .iter_errors(instance)
        .take(max)
        .map(|e| Violation {
            path: e.instance_path().as_str().to_string(),
            message: e.to_string(),
        })
        .collect()
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_a_function_and_validates_arguments() {
        let (def, v) = parse_definition(json!({
            "name": "add", "description": "adds",
            "parameters": {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}
        }))
        .unwrap();
        assert_eq!(def.name, "add");
        assert!(violations(&v, &json!({"a": 1}), 5).is_empty());
        let bad = violations(&v, &json!({"a": "x"}), 5);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].path, "/a");
        assert!(bad[0].message.contains("number"), "{}", bad[0].message);
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let problems = parse_definition(json!({
            "name": "bad name!", "colour": 1,
            "parameters": {"type": "object", "properties": {"a": {"type": "numbr"}}}
        }))
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"colour"), "{problems:?}");
        assert!(fields.contains(&"name"), "{problems:?}");
        assert!(fields.contains(&"description"), "{problems:?}");
        assert!(
            fields.iter().any(|f| f.starts_with("parameters")),
            "{problems:?}"
        );
    }

    #[test]
    fn unwraps_the_chat_completions_wrapper() {
        let (def, _) = parse_definition(json!({"type": "function", "function": {
            "name": "f", "description": "d", "parameters": {"type": "object"}}}))
        .unwrap();
        assert_eq!(def.name, "f");
    }
}

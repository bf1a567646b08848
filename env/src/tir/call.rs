//! One tool call — a line `{"name": …, "parameters": {…}}` — and the ways a line can fail to be one.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// A well-formed tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool to run.
    pub name: String,
    /// Its arguments, in the order the model wrote them.
    pub parameters: Map<String, Value>,
}

impl ToolCall {
    /// A call from a name and an arguments object.
    pub fn new(name: impl Into<String>, parameters: Map<String, Value>) -> Self {
        Self {
            name: name.into(),
            parameters,
        }
    }
}

/// The kind of a JSON value, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonKind {
    /// The kind of `v`.
    pub fn of(v: &Value) -> Self {
        match v {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Bool,
            Value::Number(_) => Self::Number,
            Value::String(_) => Self::String,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::Number => "a number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        })
    }
}

/// Why a line of a `<tool_call>` block is not a tool call. Lines and columns are 1-based and refer
/// to the whole assistant turn, so the message can be fed back to the model as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallError {
    /// The line is not valid JSON.
    #[error("tool call on line {line}: invalid JSON at column {column}: {message}")]
    BadJson {
        /// Line of the turn.
        line: usize,
        /// Column (in bytes) of the line where decoding failed.
        column: usize,
        /// What the decoder expected.
        message: String,
    },
    /// Valid JSON, but not an object.
    #[error("tool call on line {line}: expected a JSON object, found {found}")]
    NotAnObject {
        /// Line of the turn.
        line: usize,
        /// What was there instead.
        found: JsonKind,
    },
    /// The object has no `name`.
    #[error("tool call on line {line}: missing \"name\"")]
    MissingName {
        /// Line of the turn.
        line: usize,
    },
    /// `name` is not a string.
    #[error("tool call on line {line}: \"name\" must be a string, found {found}")]
    NameNotString {
        /// Line of the turn.
        line: usize,
        /// What was there instead.
        found: JsonKind,
    },
    /// The object has no `parameters`.
    #[error("tool call on line {line}: missing \"parameters\" (use {{}} for no arguments)")]
    MissingParameters {
        /// Line of the turn.
        line: usize,
    },
    /// `parameters` is not an object.
    #[error("tool call on line {line}: \"parameters\" must be a JSON object, found {found}")]
    ParametersNotObject {
        /// Line of the turn.
        line: usize,
        /// What was there instead.
        found: JsonKind,
    },
}

impl CallError {
    /// The 1-based line of the turn the error is about.
    pub fn line(&self) -> usize {
        match self {
            Self::BadJson { line, .. }
            | Self::NotAnObject { line, .. }
            | Self::MissingName { line }
            | Self::NameNotString { line, .. }
            | Self::MissingParameters { line }
            | Self::ParametersNotObject { line, .. } => *line,
        }
    }
}

/// Reads one line of a `<tool_call>` block. `line` is its 1-based line number in the turn and
/// `indent` the bytes of leading white space already cut from it (to report true columns). Keys
/// other than `name` and `parameters` are ignored.
pub fn parse_call(text: &str, line: usize, indent: usize) -> Result<ToolCall, CallError> {
    let value: Value = serde_json::from_str(text).map_err(|e| CallError::BadJson {
        line,
        column: e.column() + indent,
        message: json_message(&e),
    })?;
    let Value::Object(mut object) = value else {
        return Err(CallError::NotAnObject {
            line,
            found: JsonKind::of(&value),
        });
    };
    let name = match object.remove("name") {
        None => return Err(CallError::MissingName { line }),
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(CallError::NameNotString {
                line,
                found: JsonKind::of(&other),
            })
        }
    };
    let parameters = match object.remove("parameters") {
        None => return Err(CallError::MissingParameters { line }),
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Err(CallError::ParametersNotObject {
                line,
                found: JsonKind::of(&other),
            })
        }
    };
    Ok(ToolCall { name, parameters })
}

/// serde_json's message without its " at line L column C" suffix, for errors that report their
/// own position.
pub fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(at) => full[..at].to_owned(),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors() {
        assert_eq!(
            parse_call(r#"{"name": "f", "parameters": {"a": 1}}"#, 3, 0)
                .unwrap()
                .parameters["a"],
            1
        );
        let e = parse_call(r#"{"name": "f",}"#, 3, 2).unwrap_err();
        assert!(
            matches!(
                e,
                CallError::BadJson {
                    line: 3,
                    column: 16,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e
            .to_string()
            .starts_with("tool call on line 3: invalid JSON at column 16: "));
        assert_eq!(
            parse_call("[1]", 1, 0),
            Err(CallError::NotAnObject {
                line: 1,
                found: JsonKind::Array
            })
        );
        assert_eq!(
            parse_call(r#"{"parameters": {}}"#, 2, 0),
            Err(CallError::MissingName { line: 2 })
        );
        assert_eq!(
            parse_call(r#"{"name": 1, "parameters": {}}"#, 2, 0),
            Err(CallError::NameNotString {
                line: 2,
                found: JsonKind::Number
            })
        );
        assert_eq!(
            parse_call(r#"{"name": "f"}"#, 2, 0),
            Err(CallError::MissingParameters { line: 2 })
        );
        assert_eq!(
            parse_call(r#"{"name": "f", "parameters": "a=1"}"#, 2, 0),
            Err(CallError::ParametersNotObject {
                line: 2,
                found: JsonKind::String
            })
        );
    }
}

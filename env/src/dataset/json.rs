//! Typed access to the fields of one dataset line, with errors that name the file, the line and
//! the field (a JSON path such as `solution[1][0].parameters`).

use super::DatasetError;
use crate::config::Location;
use serde_json::{Map, Value};
use std::path::Path;

/// What a JSON value is, with its article, for messages ("expected a string, found a number").
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of one line, and where that line is.
pub(crate) struct Fields<'a> {
    object: &'a Map<String, Value>,
    path: &'a Path,
    line: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(object: &'a Map<String, Value>, path: &'a Path, line: usize) -> Self {
        Fields { object, path, line }
    }

    /// An error at `field` of this line.
    pub(crate) fn error(&self, field: &str, message: impl Into<String>) -> DatasetError {
        DatasetError::Invalid {
            location: Location {
                file: self.path.to_path_buf(),
                line: Some(self.line),
                field: field.to_string(),
            },
            message: message.into(),
        }
    }

    /// A wrong-type error at `field`.
    pub(crate) fn expected(&self, field: &str, what: &str, found: &Value) -> DatasetError {
        self.error(field, format!("expected {what}, found {}", kind(found)))
    }

    /// The value of a top-level field that must be present.
    pub(crate) fn value(&self, field: &str) -> Result<&'a Value, DatasetError> {
        self.object
            .get(field)
            .ok_or_else(|| self.error(field, "missing"))
    }

    /// A top-level string field.
    pub(crate) fn string(&self, field: &str) -> Result<String, DatasetError> {
        let v = self.value(field)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.expected(field, "a string", v))
    }

    /// A top-level string field that must not be empty or blank.
    pub(crate) fn nonblank(&self, field: &str) -> Result<String, DatasetError> {
        let s = self.string(field)?;
        if s.trim().is_empty() {
            return Err(self.error(field, "empty"));
        }
        Ok(s)
    }

    /// An array at `field` (a path, for messages).
    pub(crate) fn array(&self, field: &str, v: &'a Value) -> Result<&'a Vec<Value>, DatasetError> {
        v.as_array()
            .ok_or_else(|| self.expected(field, "an array", v))
    }
}

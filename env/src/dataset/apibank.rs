//! API-Bank samples as ToolRL evaluates them: `id` (`Level1_…` or `Level2_…`), `system`, `user` and
//! `answer`, the expected call(s) as `{name, parameters}`. Level 1 files hold a list of calls,
//! level 2 a single object; both load as a list. The level comes from the id's `LevelN_` prefix,
//! since that is the only place the files record it. Scoring is [`crate::eval::apibank`].

use super::json::Fields;
use super::DatasetError;
use crate::tir::ToolCall;
use serde_json::Value;

/// One API-Bank sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiBankSample {
    /// Unique id, e.g. `Level1_0`.
    pub id: String,
    /// The level (1 or 2, or whatever `LevelN_` says).
    pub level: u32,
    /// The system prompt: instructions and the available APIs.
    pub system: String,
    /// The dialogue history.
    pub user: String,
    /// The expected calls; the metric compares against the first. Never empty.
    pub answer: Vec<ToolCall>,
}

/// The level in an id of the form `LevelN_…`.
pub fn level_of(id: &str) -> Option<u32> {
    let rest = id.strip_prefix("Level")?;
    let (digits, _) = rest.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn parse(f: &Fields<'_>) -> Result<ApiBankSample, DatasetError> {
    let id = f.nonblank("id")?;
    let level = level_of(&id)
        .ok_or_else(|| f.error("id", format!("{id:?} does not start with LevelN_")))?;
    let answer = f.value("answer")?;
    let calls: Vec<(String, &Value)> = match answer {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("answer[{i}]"), v))
            .collect(),
        Value::Object(_) => vec![("answer".to_string(), answer)],
        other => return Err(f.expected("answer", "a call or a list of calls", other)),
    };
    if calls.is_empty() {
        return Err(f.error("answer", "empty: the metric needs an expected call"));
    }
    let answer = calls
        .into_iter()
        .map(|(field, v)| call(f, &field, v))
        .collect::<Result<_, _>>()?;
    Ok(ApiBankSample {
        id,
        level,
        system: f.string("system")?,
        user: f.string("user")?,
        answer,
    })
}

/// A `{name, parameters}` object at `field`, checked as the TIR codec would read it.
pub(super) fn call(f: &Fields<'_>, field: &str, v: &Value) -> Result<ToolCall, DatasetError> {
    let object = v
        .as_object()
        .ok_or_else(|| f.expected(field, "an object {name, parameters}", v))?;
    let name = match object.get("name") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(f.expected(&format!("{field}.name"), "a string", other)),
        None => return Err(f.error(&format!("{field}.name"), "missing")),
    };
    let parameters = match object.get("parameters") {
        Some(Value::Object(p)) => p.clone(),
        Some(other) => {
            return Err(f.expected(&format!("{field}.parameters"), "an object", other));
        }
        None => return Err(f.error(&format!("{field}.parameters"), "missing")),
    };
    Ok(ToolCall::new(name, parameters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_of("Level1_0"), Some(1));
        assert_eq!(level_of("Level12_x"), Some(12));
        assert_eq!(level_of("Level_0"), None);
        assert_eq!(level_of("level1_0"), None);
        assert_eq!(level_of("Level1"), None);
        assert_eq!(level_of("Level-1_0"), None);
    }
}

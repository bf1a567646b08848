//! Reading tool calls out of a completion the way the reference does, and the parsed ground truth.
//!
//! The reference takes `text.split("<tool_call>")[1].split("</tool_call>")[0].strip().split("\n")`
//! and `json.loads` every line. That is stricter than the TIR codec (a blank line is an error) and
//! keeps any JSON value, not only well-formed calls: a list or a string on a line is still "a call"
//! until the scoring looks inside it. Scores depend on those details, so they live here rather
//! than in [`crate::tir`].
//!
//! Lines are decoded with serde_json (objects keep their key order, a repeated key keeps its first
//! position and last value, floats are read exactly), which agrees with Python's `json.loads` on
//! everything but extensions and limits: `NaN`/`Infinity` literals, unpaired `\uD800`-style escapes,
//! numbers beyond the double range and nesting deeper than 128 are not JSON here (the call scores
//! `lo`; in a ground truth it is a data error), and integers beyond 64 bits compare as doubles.

use serde_json::Value;
use thiserror::Error;

use super::format::Shape;
use super::py::py_strip;
use crate::tir::json_message;

/// Python's `text.split("<tool_call>")[1].split("</tool_call>")[0]`: the text after the first
/// `<tool_call>`, cut at the next `<tool_call>` or `</tool_call>`; `None` without `<tool_call>`.
pub fn first_block(text: &str) -> Option<&str> {
    const OPEN: &str = "<tool_call>";
    let after = &text[text.find(OPEN)? + OPEN.len()..];
    let after = after.find(OPEN).map_or(after, |end| &after[..end]);
    Some(
        after
            .find("</tool_call>")
            .map_or(after, |end| &after[..end]),
    )
}

/// The lines of a block as the reference splits them: stripped, then split on `\n`.
pub fn block_lines(block: &str) -> std::str::Split<'_, char> {
    py_strip(block).split('\n')
}

/// The calls predicted by a completion, or `None` where the reference gives the lowest
/// correctness before comparing anything: no `<tool_call>` or no `</tool_call>` anywhere, or a line
/// of the block that is not JSON.
pub fn predicted_calls(text: &str) -> Option<Vec<Value>> {
    if !text.contains("</tool_call>") {
        return None;
    }
    block_lines(first_block(text)?)
        .map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A ground-truth completion, read once and reusable for every completion scored against it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// The shape the format reward expects.
    pub shape: Shape,
    /// The expected calls (any JSON value per line, as decoded), or `None` when the ground truth
    /// has no `<tool_call>`: correctness is then 0.
    pub calls: Option<Vec<Value>>,
}

/// A ground truth whose own tool calls are not JSON: a data error, never scored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "ground truth: line {call} of its <tool_call> block is not valid JSON \
     (column {column}: {message}): {snippet:?}"
)]
pub struct GroundTruthError {
    /// 1-based line of the offending call within the `<tool_call>` block.
    pub call: usize,
    /// 1-based column where the JSON decoder gave up.
    pub column: usize,
    /// The decoder's message.
    pub message: String,
    /// The start of the offending line.
    pub snippet: String,
}

impl GroundTruth {
    /// Reads a ground-truth completion (same tagged format as a completion).
    pub fn parse(text: &str) -> Result<Self, GroundTruthError> {
        let shape = Shape::of_ground_truth(text);
        let calls = match first_block(text) {
            None => None,
            Some(block) => Some(
                block_lines(block)
                    .enumerate()
                    .map(|(i, line)| {
                        serde_json::from_str(line).map_err(|e| GroundTruthError {
                            call: i + 1,
                            column: e.column(),
                            message: json_message(&e),
                            snippet: line.chars().take(80).collect(),
                        })
                    })
                    .collect::<Result<Vec<Value>, _>>()?,
            ),
        };
        Ok(Self { shape, calls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_cuts_like_python() {
        assert_eq!(first_block("a<tool_call>b</tool_call>c"), Some("b"));
        assert_eq!(
            first_block("a<tool_call>b<tool_call>c</tool_call>"),
            Some("b")
        );
        assert_eq!(first_block("</tool_call><tool_call>b"), Some("b"));
        assert_eq!(first_block("no call"), None);
    }

    #[test]
    fn predicted_lines() {
        let calls = predicted_calls("<tool_call>\n{\"a\": 1}\n[1]\n</tool_call>").unwrap();
        assert_eq!(calls.len(), 2);
        assert!(predicted_calls("<tool_call>\n{\"a\": 1}\n\n[1]\n</tool_call>").is_none());
        assert!(predicted_calls("<tool_call>\n{\"a\": 1}\n").is_none());
        assert!(predicted_calls("<tool_call>\n{\"a\": 1},\n</tool_call>").is_none());
    }

    #[test]
    fn ground_truth_errors_name_the_call() {
        let err = GroundTruth::parse("<tool_call>\n{}\n{oops}\n</tool_call>").unwrap_err();
        assert_eq!(err.call, 2);
        assert_eq!(err.column, 2);
        let ok = GroundTruth::parse("<think></think>\n<response>x</response>").unwrap();
        assert_eq!(ok.calls, None);
        assert_eq!(ok.shape, Shape::Response);
    }
}

//! API-Bank accuracy exactly as the ToolRL paper scores it (`data/apibank/README.md`).
//!
//! One generated turn per sample. Extraction takes the text after the *last* `<tool_call>` (the
//! whole output when there is none), cuts it at the next `</tool_call>`, strips it and splits it
//! into lines; every non-empty line that parses as JSON is a predicted call, the rest are skipped.
//! The sample is correct if some predicted call, examined in order, matches the answer's first
//! call: an object with both `name` and `parameters` when both equal the answer's; any other value
//! taken whole as the parameters of the expected tool. A string is first parsed again as JSON; a
//! number, boolean or null, or a string that does not parse, ends the examination (no later call
//! is looked at) — that is how the reference behaves, and scores depend on it. Equality is
//! Python's `==` on decoded JSON ([`py_eq`]: `1 == 1.0`, keys in any order).
//!
//! Known departure: Python's `json.loads` also accepts `NaN` and `Infinity`; serde_json does not,
//! so such a line is skipped here. API-Bank answers contain neither.

use crate::dataset::ApiBankSample;
use crate::reward::py::{py_eq, py_round2, py_strip};
use crate::tir::ToolCall;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// The predicted calls of `output`: every non-empty line of its last `<tool_call>` block (or of
/// the whole output) that parses as JSON, in order, whatever JSON value it holds.
pub fn extract_calls(output: &str) -> Vec<Value> {
    let after = output
        .rfind(OPEN)
        .map_or(output, |i| &output[i + OPEN.len()..]);
    let block = after.find(CLOSE).map_or(after, |end| &after[..end]);
    py_strip(block)
        .split('\n')
        .filter(|line| !py_strip(line).is_empty())
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Whether `predicted` (as [`extract_calls`] returns them) contain a match for `expected`, by the
/// rules of the module doc.
pub fn calls_match(predicted: &[Value], expected: &ToolCall) -> bool {
    let name = Value::String(expected.name.clone());
    let parameters = Value::Object(expected.parameters.clone());
    for call in predicted {
        let reparsed;
        let call = match call {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v) => {
                    reparsed = v;
                    &reparsed
                }
                Err(_) => return false,
            },
            other => other,
        };
        let hit = match call {
            Value::Number(_) | Value::Bool(_) | Value::Null => return false,
            Value::Object(m) => match named_call(m) {
                Some((n, p)) => py_eq(n, &name) && py_eq(p, &parameters),
                None => py_eq(call, &parameters),
            },
            other => py_eq(other, &parameters),
        };
        if hit {
            return true;
        }
    }
    false
}

fn named_call(m: &Map<String, Value>) -> Option<(&Value, &Value)> {
    Some((m.get("name")?, m.get("parameters")?))
}

/// Whether `output` answers `sample` correctly (its first expected call; a sample without one is
/// never correct).
pub fn is_correct(sample: &ApiBankSample, output: &str) -> bool {
    sample
        .answer
        .first()
        .is_some_and(|expected| calls_match(&extract_calls(output), expected))
}

/// Correct out of total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accuracy {
    /// Samples answered correctly.
    pub correct: usize,
    /// Samples scored.
    pub total: usize,
}

impl Accuracy {
    /// Counts one sample.
    pub fn add(&mut self, correct: bool) {
        self.correct += usize::from(correct);
        self.total += 1;
    }

    /// Accuracy in percent, rounded to two decimals as Python's `round(x, 2)` does; 0 when
    /// nothing was scored.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        py_round2(self.correct as f64 / self.total as f64 * 100.0)
    }
}

/// Per-level and overall accuracy, filled one sample at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiBankReport {
    /// Accuracy of each level, by level number.
    pub levels: BTreeMap<u32, Accuracy>,
    /// Accuracy over every sample.
    pub overall: Accuracy,
}

impl ApiBankReport {
    /// Scores `output` for `sample`, counts it, and returns whether it was correct.
    pub fn add(&mut self, sample: &ApiBankSample, output: &str) -> bool {
        let correct = is_correct(sample, output);
        self.levels.entry(sample.level).or_default().add(correct);
        self.overall.add(correct);
        correct
    }

    /// Scores every `(sample, output)` pair.
    pub fn score<'a>(pairs: impl IntoIterator<Item = (&'a ApiBankSample, &'a str)>) -> Self {
        let mut report = Self::default();
        for (sample, output) in pairs {
            report.add(sample, output);
        }
        report
    }

    /// `{"Level1": 61.4, "Level2": 55.22, "overall": 60.3}`: percentages, two decimals.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (level, acc) in &self.levels {
            out.insert(format!("Level{level}"), Value::from(acc.percent()));
        }
        out.insert("overall".into(), Value::from(self.overall.percent()));
        Value::Object(out)
    }
}

impl std::fmt::Display for ApiBankReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (level, acc) in &self.levels {
            writeln!(
                f,
                "Level{level}: {:.2}% ({}/{})",
                acc.percent(),
                acc.correct,
                acc.total
            )?;
        }
        write!(
            f,
            "overall: {:.2}% ({}/{})",
            self.overall.percent(),
            self.overall.correct,
            self.overall.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expected() -> ToolCall {
        let Value::Object(p) = json!({"user_id": "u1", "days": 1}) else {
            unreachable!()
        };
        ToolCall::new("QueryHealthData", p)
    }

    fn ok(output: &str) -> bool {
        calls_match(&extract_calls(output), &expected())
    }

    const GOOD: &str = r#"{"name": "QueryHealthData", "parameters": {"user_id": "u1", "days": 1}}"#;

    #[test]
    fn extraction_takes_the_last_block_cut_at_its_close() {
        let out = format!("<tool_call>\n{GOOD}\n</tool_call>\n<tool_call>\n[1]\n</tool_call>");
        assert_eq!(extract_calls(&out), vec![json!([1])]);
        assert!(!ok(&out), "only the last block counts");
        let out = format!("<tool_call>\n[1]\n</tool_call>\n<tool_call>\n{GOOD}\n</tool_call>");
        assert!(ok(&out));
        // Without a close tag, the rest of the output is the block.
        assert!(ok(&format!("<think>x</think>\n<tool_call>\n{GOOD}")));
        // Text after the close tag is not looked at.
        assert!(!ok(&format!("<tool_call>\n</tool_call>\n{GOOD}")));
        // Without any <tool_call>, the whole output (cut at a stray close tag).
        assert!(ok(&format!("Sure.\n{GOOD}\nDone.")));
        assert!(!ok(&format!("Sure.\n</tool_call>\n{GOOD}")));
    }

    #[test]
    fn lines_that_are_not_json_are_skipped() {
        let out = format!("<tool_call>\nnot json\n\n   \n  {GOOD}  \n</tool_call>");
        assert_eq!(extract_calls(&out).len(), 1);
        assert!(ok(&out));
        assert!(ok(&format!("<tool_call>\r\n{GOOD}\r\n</tool_call>")));
        assert!(extract_calls("<tool_call>\n{\"a\": NaN}\n</tool_call>").is_empty());
    }

    #[test]
    fn named_calls_need_both_name_and_parameters_equal() {
        assert!(ok(&format!("<tool_call>\n{GOOD}\n</tool_call>")));
        let wrong_name = GOOD.replace("QueryHealthData", "Other");
        assert!(!ok(&format!("<tool_call>\n{wrong_name}\n</tool_call>")));
        let wrong_value = GOOD.replace("u1", "u2");
        assert!(!ok(&format!("<tool_call>\n{wrong_value}\n</tool_call>")));
        // A later call may match after a wrong one.
        assert!(ok(&format!(
            "<tool_call>\n{wrong_name}\n{GOOD}\n</tool_call>"
        )));
        // Extra or missing keys are unequal; key order does not matter.
        assert!(!ok(
            r#"{"name": "QueryHealthData", "parameters": {"user_id": "u1"}}"#
        ));
        assert!(ok(
            r#"{"parameters": {"days": 1, "user_id": "u1"}, "name": "QueryHealthData"}"#
        ));
    }

    #[test]
    fn numbers_compare_as_python_does() {
        assert!(ok(
            r#"{"name": "QueryHealthData", "parameters": {"user_id": "u1", "days": 1.0}}"#
        ));
        assert!(!ok(
            r#"{"name": "QueryHealthData", "parameters": {"user_id": "u1", "days": "1"}}"#
        ));
        assert!(!ok(
            r#"{"name": "QueryHealthData", "parameters": {"user_id": "u1", "days": 1.5}}"#
        ));
    }

    #[test]
    fn other_values_are_taken_whole_as_the_parameters() {
        // An object without a name is the parameters of the expected tool.
        assert!(ok(r#"{"user_id": "u1", "days": 1}"#));
        // With a name but no parameters: compared whole, so unequal.
        assert!(!ok(
            r#"{"name": "QueryHealthData", "user_id": "u1", "days": 1}"#
        ));
        // An array is compared whole (unequal) and the examination goes on.
        assert!(ok(&format!("[{GOOD}]\n{GOOD}")));
    }

    #[test]
    fn strings_are_parsed_again() {
        let quoted = serde_json::to_string(GOOD).unwrap();
        assert!(ok(&quoted));
        let quoted_params = serde_json::to_string(r#"{"user_id": "u1", "days": 1}"#).unwrap();
        assert!(ok(&quoted_params));
        // A string that parses to a string is compared whole, and the examination goes on.
        assert!(ok(&format!("\"\\\"x\\\"\"\n{GOOD}")));
    }

    #[test]
    fn scalars_and_unparsable_strings_end_the_examination() {
        for stopper in [
            "3",
            "true",
            "null",
            "-1.5",
            "\"not json\"",
            "\"7\"",
            "\"null\"",
        ] {
            assert!(
                !ok(&format!("<tool_call>\n{stopper}\n{GOOD}\n</tool_call>")),
                "{stopper}"
            );
            // A match before the stopper still counts.
            assert!(
                ok(&format!("<tool_call>\n{GOOD}\n{stopper}\n</tool_call>")),
                "{stopper}"
            );
        }
    }

    #[test]
    fn report_per_level_and_overall() {
        let sample = |id: &str, level| ApiBankSample {
            id: id.into(),
            level,
            system: String::new(),
            user: String::new(),
            answer: vec![expected()],
        };
        let (a, b, c) = (
            sample("Level1_0", 1),
            sample("Level1_1", 1),
            sample("Level2_0", 2),
        );
        let d = sample("Level1_2", 1);
        let report = ApiBankReport::score([(&a, GOOD), (&b, "no"), (&c, GOOD), (&d, "no")]);
        assert_eq!(
            report.levels[&1],
            Accuracy {
                correct: 1,
                total: 3
            }
        );
        assert_eq!(
            report.to_json(),
            json!({"Level1": 33.33, "Level2": 100.0, "overall": 50.0})
        );
        assert_eq!(
            report.to_string(),
            "Level1: 33.33% (1/3)\nLevel2: 100.00% (1/1)\noverall: 50.00% (2/4)"
        );
        let empty = ApiBankSample {
            answer: vec![],
            ..a.clone()
        };
        assert!(!is_correct(&empty, GOOD));
        assert_eq!(Accuracy::default().percent(), 0.0);
        assert_eq!(
            Accuracy {
                correct: 2,
                total: 3
            }
            .percent(),
            66.67
        );
    }
}

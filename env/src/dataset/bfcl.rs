//! BFCL entries, read from bfcl-eval's own files as `scripts/fetch-bfcl.sh` unpacks them into
//! `.bfcl/bfcl_eval/data/`: one question file a category (`BFCL_v4_<category>.json`, JSON Lines
//! despite the name: `id`, `question` (turns of chat messages), `function` (the docs)) and, for
//! the categories that have them, the possible answers in `possible_answer/` under the same name
//! (`id`, `ground_truth`), joined by id. The category is the file's; a question without its
//! answer, or an answer without its question, is an error naming the file and line.

use super::json::Fields;
use super::DatasetError;
use crate::chat::{Message, Role};
use crate::config::Location;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where `scripts/fetch-bfcl.sh` puts bfcl-eval's data, relative to the repository root.
pub const DATA_DIR: &str = ".bfcl/bfcl_eval/data";

/// The single-turn categories, by BFCL's names, in bfcl-eval's order.
pub const SINGLE_TURN: &[&str] = &[
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
];

/// The multi-turn categories.
pub const MULTI_TURN: &[&str] = &[
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
];

/// One BFCL entry.
#[derive(Debug, Clone, PartialEq)]
pub struct BfclEntry {
    /// The entry's id (`simple_python_0`, `live_multiple_12-4-1`, …).
    pub id: String,
    /// Its category, by BFCL's name.
    pub category: String,
    /// The question: its turns, each a list of chat messages (single-turn entries have one).
    pub turns: Vec<Vec<Message>>,
    /// The function docs, as bfcl-eval gives them (the checker reads these, not the prompt's).
    pub functions: Vec<Value>,
    /// The possible answers (`ground_truth`); `None` for relevance and irrelevance. For
    /// multi-turn entries, a list per turn of BFCL call strings.
    pub ground_truth: Option<Value>,
    /// What a multi-turn entry runs on.
    pub multi_turn: Option<MultiTurn>,
}

/// The backends of a multi-turn entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiTurn {
    /// The classes whose methods are the entry's tools, in BFCL's order.
    pub involved_classes: Vec<String>,
    /// Each class's starting state (`_load_scenario`).
    pub initial_config: Value,
    /// miss_func: the docs held out until a turn, by turn index; listed nowhere before it.
    pub held_out: std::collections::BTreeMap<usize, Vec<Value>>,
}

/// bfcl-eval's `MULTI_TURN_FUNC_DOC_FILE_MAPPING` for the multi-turn classes.
pub const FUNC_DOCS: &[(&str, &str)] = &[
    ("GorillaFileSystem", "gorilla_file_system.json"),
    ("MathAPI", "math_api.json"),
    ("MessageAPI", "message_api.json"),
    ("TwitterAPI", "posting_api.json"),
    ("TicketAPI", "ticket_api.json"),
    ("TradingBot", "trading_bot.json"),
    ("TravelAPI", "travel_booking.json"),
    ("VehicleControlAPI", "vehicle_control.json"),
];

impl BfclEntry {
    /// Whether the category is scored by whether a call was made (relevance, irrelevance).
    pub fn is_relevance(&self) -> bool {
        self.category.contains("relevance")
    }
}

/// The category a question file holds, from its name (`BFCL_v4_<category>.json`).
pub fn category_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("BFCL_v")?;
    let (_, rest) = rest.split_once('_')?;
    Some(rest.strip_suffix(".json")?.to_string())
}

/// Whether `object`, a line's fields, is a BFCL question (`question` as a list of turns).
pub(super) fn detect(object: &Map<String, Value>) -> bool {
    object.get("question").is_some_and(Value::is_array)
}

/// Parses one question line of `category`; the ground truth is joined later.
pub(super) fn parse(
    fields: &Fields<'_>,
    category: &str,
    docs_dir: &Path,
) -> Result<BfclEntry, DatasetError> {
    let id = fields.nonblank("id")?;
    let question = fields.value("question")?;
    let mut turns = Vec::new();
    for (t, turn) in fields.array("question", question)?.iter().enumerate() {
        let at = format!("question[{t}]");
        let mut messages = Vec::new();
        for (m, message) in fields.array(&at, turn)?.iter().enumerate() {
            let at = format!("question[{t}][{m}]");
            let role = message
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| fields.error(&format!("{at}.role"), "missing or not a string"))?;
            let role = match role {
                "system" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(fields.error(
                        &format!("{at}.role"),
                        format!("{other:?}: expected system, user or assistant"),
                    ))
                }
            };
            let content = message
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| fields.error(&format!("{at}.content"), "missing or not a string"))?;
            messages.push(Message {
                role,
                content: content.to_string(),
            });
        }
        turns.push(messages);
    }
    let (functions, multi_turn) = if category.starts_with("multi_turn") {
        multi_turn_docs(fields, docs_dir)?
    } else {
        let v = fields.value("function")?;
        (fields.array("function", v)?.clone(), None)
    };
    for (i, f) in functions.iter().enumerate() {
        let at = format!("function[{i}]");
        if !f.get("name").is_some_and(Value::is_string) {
            return Err(fields.error(&format!("{at}.name"), "missing or not a string"));
        }
        if !f.get("parameters").is_some_and(Value::is_object) {
            return Err(fields.error(&format!("{at}.parameters"), "missing or not an object"));
        }
    }
    Ok(BfclEntry {
        id,
        category: category.to_string(),
        turns,
        functions,
        ground_truth: None,
        multi_turn,
    })
}

/// As bfcl-eval's `populate_test_cases_with_predefined_functions`: the involved classes' docs in
/// order, from `multi_turn_func_doc/` beside the question file, with miss_func's held-out
/// functions taken out and kept for their turn.
fn multi_turn_docs(
    fields: &Fields<'_>,
    docs_dir: &Path,
) -> Result<(Vec<Value>, Option<MultiTurn>), DatasetError> {
    let classes = fields.value("involved_classes")?;
    let mut involved = Vec::new();
    let mut docs = Vec::new();
    for (i, c) in fields
        .array("involved_classes", classes)?
        .iter()
        .enumerate()
    {
        let at = format!("involved_classes[{i}]");
        let name = c
            .as_str()
            .ok_or_else(|| fields.expected(&at, "a string", c))?;
        let file = FUNC_DOCS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| docs_dir.join(f))
            .ok_or_else(|| fields.error(&at, format!("{name:?} is not a multi-turn class")))?;
        let text = std::fs::read_to_string(&file).map_err(|source| DatasetError::Io {
            path: file.clone(),
            source,
        })?;
        for (l, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let doc: Value = serde_json::from_str(line).map_err(|e| DatasetError::Invalid {
                location: Location {
                    file: file.clone(),
                    line: Some(l + 1),
                    field: String::new(),
                },
                message: format!("not JSON: {e}"),
            })?;
            docs.push(doc);
        }
        involved.push(name.to_string());
    }
    let mut held_out = std::collections::BTreeMap::new();
    if let Ok(missed) = fields.value("missed_function") {
        let missed = missed
            .as_object()
            .ok_or_else(|| fields.expected("missed_function", "an object", missed))?;
        for (turn, names) in missed {
            let at = format!("missed_function.{turn}");
            let index: usize = turn
                .parse()
                .map_err(|_| fields.error(&at, "the key is a turn index"))?;
            let mut held = Vec::new();
            for name in fields.array(&at, names)? {
                let position = docs
                    .iter()
                    .position(|d| d.get("name") == Some(name))
                    .ok_or_else(|| {
                        fields.error(
                            &at,
                            format!("{name} is not a function of the involved classes"),
                        )
                    })?;
                held.push(docs.remove(position));
            }
            held_out.insert(index, held);
        }
    }
    let initial_config = fields.value("initial_config")?.clone();
    Ok((
        docs,
        Some(MultiTurn {
            involved_classes: involved,
            initial_config,
            held_out,
        }),
    ))
}

/// The possible-answers file beside a question file, if the category has one.
pub fn answers_file(questions: &Path) -> Option<PathBuf> {
    let path = questions
        .parent()?
        .join("possible_answer")
        .join(questions.file_name()?);
    path.is_file().then_some(path)
}

/// Joins the possible answers of `answers` (a file) to `entries`, by id: each entry must get
/// one, and each answer must belong to an entry.
pub(super) fn join_answers(entries: &mut [BfclEntry], answers: &Path) -> Result<(), DatasetError> {
    let text = std::fs::read_to_string(answers).map_err(|source| DatasetError::Io {
        path: answers.to_path_buf(),
        source,
    })?;
    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.clone(), i))
        .collect();
    let at = |line: usize, field: &str| Location {
        file: answers.to_path_buf(),
        line: Some(line),
        field: field.to_string(),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| DatasetError::Invalid {
            location: at(i + 1, ""),
            message: format!("not JSON (column {}): {e}", e.column()),
        })?;
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| DatasetError::Invalid {
                location: at(i + 1, "id"),
                message: "missing or not a string".into(),
            })?;
        let truth = value
            .get("ground_truth")
            .ok_or_else(|| DatasetError::Invalid {
                location: at(i + 1, "ground_truth"),
                message: "missing".into(),
            })?;
        let Some(&e) = index.get(id) else {
            return Err(DatasetError::Invalid {
                location: at(i + 1, "id"),
                message: format!("{id:?} has no question in the category's question file"),
            });
        };
        entries[e].ground_truth = Some(truth.clone());
    }
    if let Some(missing) = entries.iter().find(|e| e.ground_truth.is_none()) {
        return Err(DatasetError::Invalid {
            location: Location {
                file: answers.to_path_buf(),
                line: None,
                field: "id".into(),
            },
            message: format!("no possible answer for {:?}", missing.id),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::load;

    fn write(dir: &std::path::Path, questions: &str, answers: Option<&str>) -> String {
        let path = dir.join("BFCL_v4_simple_python.json");
        std::fs::write(&path, questions).unwrap();
        if let Some(a) = answers {
            std::fs::create_dir_all(dir.join("possible_answer")).unwrap();
            std::fs::write(dir.join("possible_answer/BFCL_v4_simple_python.json"), a).unwrap();
        }
        path.to_str().unwrap().to_string()
    }

    const Q: &str = r#"{"id": "simple_python_0", "question": [[{"role": "user", "content": "hi"}]], "function": [{"name": "f", "description": "d", "parameters": {"type": "dict", "properties": {}, "required": []}}]}"#;

    #[test]
    fn questions_join_their_answers_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            Q,
            Some(r#"{"id": "simple_python_0", "ground_truth": [{"f": {}}]}"#),
        );
        let d = load(&path, None).unwrap();
        let e = d.bfcl().next().unwrap();
        assert_eq!(e.category, "simple_python");
        assert_eq!(e.ground_truth, Some(serde_json::json!([{"f": {}}])));

        let bad_role = Q.replace("\"user\"", "\"tool\"");
        let path = write(dir.path(), &format!("{Q}\n{bad_role}"), None);
        let err = load(&path, None).unwrap_err().to_string();
        assert!(
            err.contains("BFCL_v4_simple_python.json:2: question[0][0].role"),
            "{err}"
        );

        let path = write(
            dir.path(),
            Q,
            Some(r#"{"id": "simple_python_9", "ground_truth": []}"#),
        );
        let err = load(&path, None).unwrap_err().to_string();
        assert!(
            err.contains("possible_answer/BFCL_v4_simple_python.json:1: id"),
            "{err}"
        );
        let no_params = Q.replace(
            r#", "parameters": {"type": "dict", "properties": {}, "required": []}"#,
            "",
        );
        let path = write(dir.path(), &no_params, Some(""));
        let err = load(&path, None).unwrap_err().to_string();
        assert!(err.contains(":1: function[0].parameters"), "{err}");
    }
}

//! Executable tasks: questions over the example tools (`env/config.toml`) with an expected final
//! answer and a reference solution that really runs.
//!
//! # Format
//!
//! One JSON object a line (`env/data/tasks/{train,test}.jsonl`, written by
//! `scripts/make-tasks.py`):
//!
//! ```json
//! {"id": "calc-0001", "kind": "arithmetic", "question": "What is (17+25)*3?", "answer": "126",
//!  "tools": ["calculator"],
//!  "solution": [[{"name": "calculator", "parameters": {"expression": "(17+25)*3"}}]]}
//! ```
//!
//! | field | meaning |
//! | --- | --- |
//! | `id` | unique across both splits; the prefix names the kind |
//! | `kind` | `arithmetic`, `unit_conversion`, `kv_store`, `search` or `multi_tool` ([`TaskKind`]) |
//! | `question` | the user message; it states any rounding the answer uses |
//! | `answer` | the expected final answer, a string compared with [`crate::reward::episode::answers_match`] (numbers within 1e-6 relative, text after SQuAD normalisation) |
//! | `tools` | the tools the solution uses, each registered in `env/config.toml` |
//! | `solution` | a reference solution: a list of turns, each a non-empty list of `{name, parameters}` calls; the calls of a turn run together, turns run in order in one episode (so `kv_store` state carries from turn to turn) |
//!
//! The answer was derived by the generator from the results of running the solution through the
//! real tools, so a scripted policy that replays the solution and then answers `answer` scores
//! full marks. Calls within one turn never depend on each other: a rollout may run them at once.

use super::json::Fields;
use super::DatasetError;
use crate::tir::ToolCall;

/// What a task exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKind {
    /// Arithmetic that needs the calculator.
    Arithmetic,
    /// A conversion with unit_convert.
    UnitConversion,
    /// Multi-step work that stores and reads values with kv_store (and may compute on them).
    KvStore,
    /// A question answered from the search corpus.
    Search,
    /// Search, then a calculation or a conversion (and possibly kv_store) on what was found.
    MultiTool,
}

impl TaskKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [TaskKind; 5] = [
        TaskKind::Arithmetic,
        TaskKind::UnitConversion,
        TaskKind::KvStore,
        TaskKind::Search,
        TaskKind::MultiTool,
    ];

    /// The name used in the `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Arithmetic => "arithmetic",
            TaskKind::UnitConversion => "unit_conversion",
            TaskKind::KvStore => "kv_store",
            TaskKind::Search => "search",
            TaskKind::MultiTool => "multi_tool",
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One executable task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Unique id, e.g. `calc-0001`.
    pub id: String,
    /// What it exercises.
    pub kind: TaskKind,
    /// The user message.
    pub question: String,
    /// The expected final answer.
    pub answer: String,
    /// The tools the solution uses.
    pub tools: Vec<String>,
    /// The reference solution: turns in order, each a list of calls that run together.
    pub solution: Vec<Vec<ToolCall>>,
}

pub(super) fn parse(f: &Fields<'_>) -> Result<Task, DatasetError> {
    let kind_name = f.string("kind")?;
    let kind = TaskKind::from_name(&kind_name).ok_or_else(|| {
        let names: Vec<_> = TaskKind::ALL.iter().map(|k| k.name()).collect();
        f.error(
            "kind",
            format!(
                "unknown kind {kind_name:?}: expected one of {}",
                names.join(", ")
            ),
        )
    })?;
    let tools_value = f.value("tools")?;
    let tools = f
        .array("tools", tools_value)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| f.expected(&format!("tools[{i}]"), "a string", v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let solution_value = f.value("solution")?;
    let turns = f.array("solution", solution_value)?;
    if turns.is_empty() {
        return Err(f.error("solution", "empty: a task needs at least one turn"));
    }
    let mut solution = Vec::with_capacity(turns.len());
    for (t, turn) in turns.iter().enumerate() {
        let field = format!("solution[{t}]");
        let calls = f.array(&field, turn)?;
        if calls.is_empty() {
            return Err(f.error(&field, "empty turn: a turn needs at least one call"));
        }
        let calls = calls
            .iter()
            .enumerate()
            .map(|(c, v)| super::apibank::call(f, &format!("{field}[{c}]"), v))
            .collect::<Result<Vec<_>, _>>()?;
        for (c, call) in calls.iter().enumerate() {
            if !tools.contains(&call.name) {
                return Err(f.error(
                    &format!("{field}[{c}].name"),
                    format!("{:?} is not listed in `tools`", call.name),
                ));
            }
        }
        solution.push(calls);
    }
    Ok(Task {
        id: f.nonblank("id")?,
        kind,
        question: f.nonblank("question")?,
        answer: f.nonblank("answer")?,
        tools,
        solution,
    })
}

#[cfg(test)]
mod tests {
    use crate::dataset::{load, Format};

    fn load_line(line: &str) -> Result<crate::dataset::Dataset, crate::dataset::DatasetError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, line).unwrap();
        load(path.to_str().unwrap(), Some(Format::Tasks))
    }

    #[test]
    fn errors_point_into_the_solution() {
        let base = r#"{"id": "t", "kind": "arithmetic", "question": "q", "answer": "1", "tools": ["calculator"], "solution": SOL}"#;
        for (solution, wanted) in [
            ("[]", "solution: empty"),
            ("[[]]", "solution[0]: empty turn"),
            ("[[{\"name\": \"calculator\"}]]", "solution[0][0].parameters: missing"),
            (
                "[[{\"name\": \"calculator\", \"parameters\": {}}], [{\"name\": \"search\", \"parameters\": {}}]]",
                "solution[1][0].name: \"search\" is not listed in `tools`",
            ),
            ("[[{\"name\": 1, \"parameters\": {}}]]", "solution[0][0].name: expected a string"),
            ("{}", "solution: expected an array, found an object"),
        ] {
            let e = load_line(&base.replace("SOL", solution)).unwrap_err().to_string();
            assert!(e.contains(&format!("t.jsonl:1: {wanted}")), "{e}");
        }
        let e = load_line(&base.replace("SOL", "[]").replace("arithmetic", "poetry"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kind: unknown kind \"poetry\""), "{e}");
    }
}

//! The executable task set (`env/data/tasks`): both splits load by name, ids are unique across
//! them, every tool a task names is registered in `env/config.toml`, and every test-split solution
//! still runs through the real sandbox without a failed call. Deriving the answers is
//! `scripts/make-tasks.py`'s job; where a task ends on a number this also checks the answer still
//! agrees with what the tool now returns, so a changed tool cannot leave stale answers behind.
//! Also: the shared ToolRL and API-Bank files load by name, and API-Bank's own answers, written as
//! a model would write them, score 100%.

use crate::common::repo;
use serde_json::Value;
use std::collections::HashSet;
use toolenv::dataset::{self, Dataset, Format, TaskKind};
use toolenv::eval::apibank::ApiBankReport;
use toolenv::reward::episode::answers_match;
use toolenv::tir::render_turn;
use toolenv::Registry;

fn split(name: &str) -> Dataset {
    let data = dataset::load(name, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(data.format, Format::Tasks, "{name}");
    data
}

#[test]
fn splits_load_with_unique_ids_and_registered_tools() {
    let registry =
        Registry::load(&repo().join("env/config.toml")).unwrap_or_else(|e| panic!("{e}"));
    let (train, test) = (split("tasks-train"), split("tasks"));
    assert!(
        train.len() + test.len() >= 220,
        "{} + {} tasks",
        train.len(),
        test.len()
    );
    let mut ids = HashSet::new();
    for task in train.tasks().chain(test.tasks()) {
        assert!(ids.insert(task.id.as_str()), "duplicate id {}", task.id);
        for tool in &task.tools {
            assert!(
                registry.tool(tool).is_some(),
                "{}: tool {tool} is not in env/config.toml",
                task.id
            );
        }
    }
    for kind in TaskKind::ALL {
        for data in [&train, &test] {
            assert!(
                data.tasks().any(|t| t.kind == kind),
                "{}: no {kind} task",
                data.name
            );
        }
    }
}

#[test]
fn test_split_solutions_run() {
    let registry =
        Registry::load(&repo().join("env/config.toml")).unwrap_or_else(|e| panic!("{e}"));
    let test = split("tasks");
    for task in test.tasks() {
        // One episode per task, as a rollout would have: kv_store state carries across turns.
        let episode = registry.episode();
        let mut last = Value::Null;
        for (t, turn) in task.solution.iter().enumerate() {
            for call in turn {
                let args = Value::Object(call.parameters.clone());
                let outcome = registry
                    .call(&episode, &call.name, &args)
                    .unwrap_or_else(|e| panic!("{}: host fault: {e}", task.id));
                last = outcome.result.unwrap_or_else(|e| {
                    panic!("{} turn {t}: {} {args} failed: {e}", task.id, call.name)
                });
            }
        }
        if let Some(value) = last.get("value").and_then(Value::as_f64) {
            check_numeric_answer(&task.id, &task.question, &task.answer, value);
        }
    }
}

/// The answer is the final value as printed, or rounded to 2 decimals where the question says so.
fn check_numeric_answer(id: &str, question: &str, answer: &str, value: f64) {
    if question.contains("rounded to 2 decimals") {
        let want: f64 = answer
            .parse()
            .unwrap_or_else(|_| panic!("{id}: answer {answer:?} is not a number"));
        assert!(
            (value - want).abs() <= 0.005 + 1e-9,
            "{id}: tool gives {value}, answer {answer}"
        );
    } else {
        assert!(
            answers_match(&value.to_string(), answer),
            "{id}: tool gives {value}, answer {answer}"
        );
    }
}

#[test]
fn repository_datasets_load_and_apibank_answers_score_full_marks() {
    for (name, format, len) in [
        ("toolrl", Format::ToolRl, 80),
        ("toolrl-sft", Format::ToolRl, 400),
        ("apibank-1", Format::ApiBank, 399),
        ("apibank-2", Format::ApiBank, 67),
    ] {
        let data = dataset::load(name, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((data.format, data.len()), (format, len), "{name}");
    }
    let apibank = dataset::load("apibank", None).unwrap_or_else(|e| panic!("{e}"));
    let outputs: Vec<String> = apibank
        .apibank()
        .map(|s| render_turn("gold", &s.answer[..1], None))
        .collect();
    let report = ApiBankReport::score(apibank.apibank().zip(outputs.iter().map(String::as_str)));
    assert_eq!(
        report.to_json(),
        serde_json::json!({"Level1": 100.0, "Level2": 100.0, "overall": 100.0})
    );
    assert_eq!(report.overall.total, 466);
}

/// Every ToolRL sample, SFT split included, has a ground truth to train on, and its own answer
/// (after a plain reasoning) scores full marks under the paper's rubric: the calls are read from
/// the answer, not from reasoning that mentions `<tool_call>` (sft-10 does).
#[test]
fn toolrl_ground_truths_parse_and_score_their_own_output_full() {
    let rubric = toolenv::reward::Rubric::for_variant("default").unwrap();
    for name in ["toolrl", "toolrl-sft"] {
        let data = dataset::load(name, None).unwrap_or_else(|e| panic!("{e}"));
        for sample in data.iter() {
            let toolenv::dataset::Sample::ToolRl(s) = sample else {
                panic!("{name}: not a ToolRL sample")
            };
            let truth = s
                .ground_truth()
                .unwrap_or_else(|e| panic!("{name} {}: {e}", s.id));
            let completion = format!("<think> reasoning </think>{}", s.answer());
            let score = rubric.score(&completion, &truth, 0);
            // Correctness is 0 by definition where the truth makes no call (a pure response).
            let best = if truth.calls.is_some() { 3.0 } else { 0.0 };
            assert_eq!(
                (score.format, score.correctness),
                (1.0, best),
                "{name} {}",
                s.id
            );
        }
    }
    let sft = dataset::load("toolrl-sft", None).unwrap();
    let Some(toolenv::dataset::Sample::ToolRl(s10)) = sft.iter().find(|s| s.id() == "sft-10")
    else {
        panic!("sft-10 missing")
    };
    assert!(s10.output.find("<tool_call>") < s10.output.find("</think>"));
    let calls = s10.ground_truth().unwrap().calls.unwrap();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0]["name"], "RSI Overbought Stocks");
}

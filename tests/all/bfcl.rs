//! BFCL's single-turn scoring against bfcl-eval's own checker: every line of
//! `data/bfcl/checker.jsonl` (written by `bfcl_reference.py` beside this file, which runs
//! bfcl-eval's `ast_checker`) is decoded and scored by our checker, which must give the same
//! verdict and the same `error_type`; where bfcl-eval raises, ours must report an exception too.
//! The datasets' entry counts are checked against BFCL's.

use serde_json::Value;
use std::collections::HashMap;
use toolenv::dataset::{self, bfcl::SINGLE_TURN, BfclEntry};
use toolenv::eval::bfcl::{decode_calls, score_entry};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/bfcl/checker.jsonl");

fn entries() -> HashMap<String, BfclEntry> {
    let mut all = HashMap::new();
    for category in SINGLE_TURN {
        let name = format!("bfcl-{category}");
        let data = dataset::load(&name, None).unwrap_or_else(|e| panic!("{e}"));
        for e in data.bfcl() {
            assert_eq!(e.category, *category);
            all.insert(e.id.clone(), e.clone());
        }
    }
    all
}

#[test]
fn single_turn_datasets_hold_every_entry() {
    let all = dataset::load("bfcl", None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 3641 + 800);
    let data = dataset::load("bfcl-single-turn", None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(data.len(), 3641);
    let counts: Vec<(String, usize)> = SINGLE_TURN
        .iter()
        .map(|c| {
            (
                c.to_string(),
                data.bfcl().filter(|e| e.category == *c).count(),
            )
        })
        .collect();
    let want = [400, 100, 50, 200, 200, 200, 240, 258, 1053, 16, 24, 884, 16];
    for ((c, n), w) in counts.iter().zip(want) {
        assert_eq!(*n, w, "{c}");
    }
    for e in data.bfcl() {
        assert_eq!(e.turns.len(), 1, "{}", e.id);
        assert_eq!(e.ground_truth.is_none(), e.is_relevance(), "{}", e.id);
    }
}

#[test]
fn verdicts_equal_bfcl_evals_checker() {
    let entries = entries();
    let text = std::fs::read_to_string(CASES).unwrap_or_else(|e| panic!("{CASES}: {e}"));
    let mut checked = 0;
    let mut by_kind: HashMap<String, usize> = HashMap::new();
    let mut failures = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let case: Value = serde_json::from_str(line).expect("a case is JSON");
        let entry = match case.get("id").and_then(Value::as_str) {
            Some(id) => entries
                .get(id)
                .unwrap_or_else(|| panic!("line {}: no entry {id}", i + 1))
                .clone(),
            None => {
                let e = &case["entry"];
                BfclEntry {
                    id: format!("line-{}", i + 1),
                    category: e["category"].as_str().unwrap().to_string(),
                    turns: vec![Vec::new()],
                    functions: e["function"].as_array().unwrap().clone(),
                    ground_truth: Some(e["ground_truth"].clone()),
                    multi_turn: None,
                }
            }
        };
        let fc = case.get("fc").and_then(Value::as_bool).unwrap_or(false);
        let output = case["output"].as_str().unwrap();
        let got = score_entry(&entry, &decode_calls(output), fc);
        let want = &case["expected"];
        let want_kind = if want.get("exception").is_some() {
            "checker_exception".to_string()
        } else {
            want["error_type"].as_str().unwrap_or("").to_string()
        };
        let want_valid = want["valid"].as_bool().unwrap_or(false);
        let got_kind = got.error_type.clone().unwrap_or_default();
        *by_kind.entry(want_kind.clone()).or_default() += 1;
        if got.valid != want_valid || got_kind != want_kind {
            failures.push(format!(
                "line {} ({}; {}): got valid={} {:?} {:?}, bfcl-eval: valid={} {:?}",
                i + 1,
                case["label"].as_str().unwrap_or(""),
                entry.id,
                got.valid,
                got_kind,
                got.errors,
                want_valid,
                want_kind
            ));
        }
        checked += 1;
    }
    assert!(checked >= 2000, "only {checked} cases");
    // Both sides of the rules must be exercised, not only correct outputs.
    assert!(by_kind.len() >= 15, "error kinds covered: {by_kind:?}");
    assert!(
        failures.is_empty(),
        "{} of {checked} verdicts differ from bfcl-eval's:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// BFCL's multi-turn backends as sandbox tools (`.bfcl/tools/`, built by `tools/bfcl/build.sh`):
/// the first entry of `multi_turn_base`, its first turn replayed as the ground truth and as the
/// model's JSON calls, on one episode's shared `/state`; bfcl-eval's state checker agrees when
/// the model did the same, and not when it skipped a call.
#[test]
fn multi_turn_backends_run_in_the_sandbox_with_bfcls_semantics() {
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.bfcl/tools/config.toml");
    let registry = toolenv::Registry::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let questions = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.bfcl/bfcl_eval/data/BFCL_v4_multi_turn_base.json"),
    )
    .unwrap();
    let entry: Value = serde_json::from_str(questions.lines().next().unwrap()).unwrap();
    let scenario = serde_json::json!({
        "id": entry["id"],
        "involved_classes": entry["involved_classes"],
        "initial_config": entry["initial_config"],
        "long_context": false,
    });
    let truth = serde_json::json!({"calls": [
        "cd(folder='document')", "mkdir(dir_name='temp')", "mv(source='final_report.pdf', destination='temp')"
    ]});
    let result = |outcome: toolenv::CallOutcome| outcome.result.unwrap_or_else(|e| panic!("{e}"));
    for skip_mkdir in [false, true] {
        let episode = registry.episode();
        let dir = episode.state_dir("group-bfcl").unwrap();
        std::fs::write(dir.join("scenario.json"), scenario.to_string()).unwrap();
        let expected = result(
            registry
                .call(&episode, "bfcl_ground_truth", &truth)
                .unwrap(),
        );
        let mut got = Vec::new();
        got.push(result(
            registry
                .call(&episode, "cd", &serde_json::json!({"folder": "document"}))
                .unwrap(),
        ));
        if !skip_mkdir {
            got.push(result(
                registry
                    .call(&episode, "mkdir", &serde_json::json!({"dir_name": "temp"}))
                    .unwrap(),
            ));
        }
        got.push(result(
            registry
                .call(
                    &episode,
                    "mv",
                    &serde_json::json!({"source": "final_report.pdf", "destination": "temp"}),
                )
                .unwrap(),
        ));
        let state = result(
            registry
                .call(&episode, "bfcl_check_state", &serde_json::json!({}))
                .unwrap(),
        );
        if skip_mkdir {
            assert_eq!(state["valid"], false, "{state}");
            assert_eq!(state["error_type"], "multi_turn:instance_state_mismatch");
        } else {
            assert_eq!(Value::Array(got), expected);
            assert_eq!(state["valid"], true, "{state}");
        }
    }
}

/// A model that answers each turn of a multi-turn entry with its ground-truth calls (as JSON
/// calls, from `bfcl_ground_truth_calls.py`) in one step, then ends the turn; with `drop_last`,
/// the entry's last expected call is left out.
struct GroundTruthPolicy {
    /// Per episode (the entry's index in the evaluated dataset): the calls of each turn.
    turns: Vec<Vec<Vec<Value>>>,
    drop_last: bool,
}

impl toolenv::policy::Policy for GroundTruthPolicy {
    fn name(&self) -> String {
        "ground-truth".into()
    }

    async fn next_turn(
        &self,
        request: toolenv::policy::TurnRequest<'_>,
    ) -> Result<toolenv::policy::PolicyTurn, toolenv::policy::PolicyError> {
        let none = "<think> done </think>\n<response> Done. </response>".to_string();
        let messages = &request.messages[1..];
        let last = messages.last().expect("a user message");
        let text = if last.role != toolenv::chat::Role::User || last.content.starts_with("<obs>") {
            none
        } else {
            let t = messages
                .iter()
                .filter(|m| m.role == toolenv::chat::Role::User && !m.content.starts_with("<obs>"))
                .count()
                - 1;
            let turns = &self.turns[request.episode as usize];
            let mut calls = turns[t].clone();
            let last_turn = turns.iter().rposition(|c| !c.is_empty());
            if self.drop_last && last_turn == Some(t) {
                calls.pop();
            }
            if calls.is_empty() {
                none
            } else {
                let lines: Vec<String> = calls.iter().map(Value::to_string).collect();
                format!(
                    "<think> calling </think>\n<tool_call>\n{}\n</tool_call>",
                    lines.join("\n")
                )
            }
        };
        Ok(toolenv::policy::PolicyTurn {
            text,
            ..Default::default()
        })
    }
}

/// The ground truth of the multi-turn entries, replayed as a model's calls, scores every entry
/// right; without each entry's last call, none. `TOOLENV_BFCL_ENTRIES` (default 12 per
/// category; `all` for the 800) sets how many are run.
#[test]
fn multi_turn_ground_truth_scores_right_and_without_its_last_call_wrong() {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/all/bfcl_ground_truth_calls.py"
        ))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: HashMap<String, Vec<Vec<Value>>> = serde_json::from_slice(&out.stdout).unwrap();
    let only = std::env::var("TOOLENV_BFCL_IDS").ok();
    // TOOLENV_BFCL_IDS=id,id runs exactly those entries, whatever their category.
    let per_category = match std::env::var("TOOLENV_BFCL_ENTRIES").as_deref() {
        _ if only.is_some() => None,
        Ok("all") => None,
        Ok(n) => Some(n.parse().expect("TOOLENV_BFCL_ENTRIES: a number or all")),
        Err(_) => Some(12),
    };
    let mut data = dataset::load("bfcl-multi-turn", None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(data.len(), 800);
    if let Some(ids) = &only {
        let ids: Vec<&str> = ids.split(',').collect();
        data.samples.retain(|s| ids.contains(&s.id()));
    }
    let turns: Vec<Vec<Vec<Value>>> = data.bfcl().map(|e| calls[&e.id].clone()).collect();
    let registry = toolenv::eval::bfcl::multi_turn::backends().unwrap_or_else(|e| panic!("{e}"));
    let roller = toolenv::rollout::Roller::new(registry, Default::default());
    let options = toolenv::eval::EvalOptions {
        concurrency: 2,
        limit_per_group: per_category,
        ..Default::default()
    };
    for drop_last in [false, true] {
        let policy = GroundTruthPolicy {
            turns: turns.clone(),
            drop_last,
        };
        let started = std::time::Instant::now();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let (results, summary) = runtime
            .block_on(toolenv::eval::evaluate(
                &policy,
                &roller,
                &data,
                &toolenv::reward::Rubric::default(),
                &options,
            ))
            .unwrap();
        eprintln!(
            "{} multi-turn entries, drop_last={drop_last}: {:.1} s, accuracy {}",
            data.len(),
            started.elapsed().as_secs_f64(),
            summary["accuracy"]
        );
        if only.is_none() {
            // The first `per_category` of each of the four categories.
            assert_eq!(results.len(), per_category.map_or(800, |n| 4 * n.min(200)));
        }
        for r in &results {
            assert!(r.error.is_none(), "{}: {:?}", r.id, r.error);
            assert_eq!(
                r.correct,
                Some(!drop_last),
                "{}: {:?} {:?}\n{}",
                r.id,
                r.bfcl_error,
                r.bfcl_detail,
                r.output
                    .chars()
                    .rev()
                    .take(1500)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
            );
        }
        if only.is_none() && per_category.is_none() {
            assert!(summary["accuracy"].get("multi_turn").is_some(), "{summary}");
        }
    }
}

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

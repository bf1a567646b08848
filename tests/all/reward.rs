//! The ToolRL reward against figures from the published Python reference: the reference vectors
//! (`data/reward/vectors.jsonl`) and our own edge cases (`data/reward/edge.jsonl`: Python
//! semantics the reference vectors do not reach, each line labelled; its expected figures were
//! computed by running the reference's `rlla.py` logic, with the variants switched on, on those
//! inputs).

use serde_json::Value;
use toolenv::reward::{GroundTruth, Rubric};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/reward/vectors.jsonl");
const EDGE_CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/reward/edge.jsonl");

/// Scores every line of a vectors file; returns how many were checked and every mismatch.
fn check(path: &str) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut checked = 0;
    let mut failures = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let case: Value = serde_json::from_str(line).expect("vector line is JSON");
        let rubric = Rubric::for_variant(case["variant"].as_str().unwrap()).unwrap();
        let truth = GroundTruth::parse(case["ground_truth"].as_str().unwrap()).unwrap();
        let step = case["step"].as_u64().unwrap_or(0);
        let got = rubric.score(case["text"].as_str().unwrap(), &truth, step);
        let want = &case["expected"];
        for (name, value) in [
            ("total", got.total),
            ("format", got.format),
            ("correctness", got.correctness),
            ("length", got.length),
        ] {
            let expected = want[name].as_f64().unwrap();
            if (value - expected).abs() > 1e-9 {
                failures.push(format!(
                    "line {} ({} {}): {name} = {value}, expected {expected}",
                    i + 1,
                    case["variant"],
                    case["label"],
                ));
            }
        }
        checked += 1;
    }
    (checked, failures)
}

#[test]
fn every_shared_vector_matches_the_reference() {
    let (checked, failures) = check(VECTORS);
    assert!(checked >= 80, "only {checked} vectors read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn edge_cases_match_the_reference() {
    let (checked, failures) = check(EDGE_CASES);
    assert!(checked >= 20, "only {checked} edge cases read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! The ToolRL reward against the shared vectors (`shared/data/reward-vectors.jsonl`), whose expected
//! figures come from the published Python reference.

use serde_json::Value;
use toolenv::reward::{GroundTruth, Rubric};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/reward-vectors.jsonl"
);

#[test]
fn every_vector_matches_the_reference() {
    let text = std::fs::read_to_string(VECTORS).expect("read the shared reward vectors");
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
                    "line {} ({}): {name} = {value}, expected {expected}",
                    i + 1,
                    case["variant"]
                ));
            }
        }
        checked += 1;
    }
    assert!(checked >= 80, "only {checked} vectors read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

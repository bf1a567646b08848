//! Throughput of the ToolRL rubric on one core, on the reference vector cases (`data/reward/vectors.jsonl`).
//!
//! Prints completions per second for: every case with its ground truth parsed once (as in GRPO,
//! where a group of completions shares one ground truth); the single-call cases alone; and every
//! case with its ground truth parsed on each call. Run with `cargo bench -p toolenv --bench reward`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::Value;
use toolenv::reward::{GroundTruth, Rubric};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/reward/vectors.jsonl");

struct Case {
    text: String,
    ground_truth: String,
    truth: GroundTruth,
    step: u64,
    rubric: Rubric,
}

fn load() -> Vec<Case> {
    let text = std::fs::read_to_string(VECTORS).expect("read the reward vectors");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("vector line is JSON");
            let ground_truth = v["ground_truth"].as_str().unwrap_or_default().to_owned();
            Case {
                text: v["text"].as_str().unwrap_or_default().to_owned(),
                truth: GroundTruth::parse(&ground_truth).expect("ground truth parses"),
                ground_truth,
                step: v["step"].as_u64().unwrap_or(0),
                rubric: Rubric::for_variant(v["variant"].as_str().unwrap_or("default"))
                    .expect("known variant"),
            }
        })
        .collect()
}

/// Runs `f` over `cases` repeatedly for about `budget` after a warm-up; completions per second.
fn rate(cases: &[&Case], budget: Duration, f: impl Fn(&Case) -> f64) -> f64 {
    let pass = || cases.iter().map(|c| f(c)).sum::<f64>();
    let warm = Instant::now();
    while warm.elapsed() < budget / 4 {
        black_box(pass());
    }
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < budget {
        black_box(pass());
        done += cases.len();
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let cases = load();
    let all: Vec<&Case> = cases.iter().collect();
    let single: Vec<&Case> = cases
        .iter()
        .filter(|c| c.truth.calls.as_ref().is_some_and(|calls| calls.len() == 1))
        .collect();
    let budget = Duration::from_secs(2);
    let shared = |c: &Case| c.rubric.score(&c.text, &c.truth, c.step).total;
    let fresh = |c: &Case| {
        c.rubric
            .score_text(&c.text, &c.ground_truth, c.step)
            .map_or(0.0, |s| s.total)
    };
    println!("reward bench, one thread, {} vector cases", cases.len());
    println!(
        "  all cases, ground truth parsed once:        {:>12.0} completions/s",
        rate(&all, budget, shared)
    );
    println!(
        "  {} single-call cases, parsed once:          {:>12.0} completions/s",
        single.len(),
        rate(&single, budget, shared)
    );
    println!(
        "  {} single-call cases, ground truth each time:{:>12.0} completions/s",
        single.len(),
        rate(&single, budget, fresh)
    );
    println!(
        "  all cases, ground truth parsed each time:   {:>12.0} completions/s",
        rate(&all, budget, fresh)
    );
}

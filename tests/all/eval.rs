//! The eval runner on the executable tasks: a policy that replays each task's reference solution
//! must score 100% with no tool errors, through the real sandbox.

use crate::common::repo;
use std::sync::Arc;
use toolenv::eval::{evaluate, solution_script, EvalOptions};
use toolenv::policy::ScriptedPolicy;
use toolenv::reward::Rubric;
use toolenv::rollout::{Roller, RolloutConfig};
use toolenv::Registry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_reference_solutions_solves_every_test_task() {
    let dataset = toolenv::dataset::load("tasks", None).unwrap();
    let scripts: Vec<Vec<String>> = dataset.tasks().map(solution_script).collect();
    assert_eq!(scripts.len(), dataset.len());
    let policy = ScriptedPolicy::per_episode(scripts);
    let registry = Registry::load(&repo().join("env/config.toml")).unwrap();
    // The longest reference solution has 8 call turns, then the answer.
    let config = RolloutConfig {
        max_turns: 10,
        max_episode_tokens: 8192,
        ..RolloutConfig::default()
    };
    let roller = Roller::new(Arc::new(registry), config);
    let out = tempfile::tempdir().unwrap();
    let options = EvalOptions {
        out_dir: Some(out.path().to_path_buf()),
        ..EvalOptions::default()
    };
    let (results, summary) = evaluate(&policy, &roller, &dataset, &Rubric::default(), &options)
        .await
        .unwrap();
    for r in &results {
        assert!(r.error.is_none(), "{}: {:?}", r.id, r.error);
        assert_eq!(r.correct, Some(true), "{}: {}", r.id, r.output);
        assert_eq!(r.tool_errors, 0, "{}", r.id);
        assert_eq!(r.rewards["mean_turn_correctness"], 3.0, "{}", r.id);
        assert_eq!(r.rewards["tool_name_match"], 1.0, "{}", r.id);
    }
    assert_eq!(summary["samples"], dataset.len());
    assert_eq!(summary["accuracy"]["overall"], serde_json::json!(100.0));
    assert_eq!(summary["tool_error_rate"], serde_json::json!(0.0));
    assert!(out.path().join("summary.json").is_file());
}

//! Episodes per second of the rollout loop with a scripted policy replaying the reference
//! solutions of the executable tasks (tools only, no model), on 1 and 2 runtime threads.
//! Prints figures; asserts nothing.
//!
//! Run: `./tools/build.sh && cargo bench -p toolenv --bench rollout`
//! Options (env): `BENCH_ROUNDS` passes over the 250 tasks per measurement (default 8).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use toolenv::dataset::{Dataset, Sample};
use toolenv::eval::{episode_task, solution_script};
use toolenv::policy::ScriptedPolicy;
use toolenv::rollout::{Roller, RolloutConfig};
use toolenv::Registry;

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let registry = Arc::new(Registry::load(&repo.join("env/config.toml")).expect("config"));
    let mut samples: Vec<Sample> = Vec::new();
    for name in ["tasks-train", "tasks"] {
        let d: Dataset = toolenv::dataset::load(name, None).expect("tasks");
        samples.extend(d.samples);
    }
    let tasks: Vec<_> = samples
        .iter()
        .filter_map(|s| match s {
            Sample::Task(t) => Some(t),
            _ => None,
        })
        .collect();
    let scripts: Vec<Vec<String>> = tasks.iter().map(|t| solution_script(t)).collect();
    let episodes: Vec<_> = tasks.iter().map(|t| episode_task(t)).collect();
    let policy = ScriptedPolicy::per_episode(scripts);
    let calls_per_pass: usize = tasks
        .iter()
        .map(|t| t.solution.iter().map(Vec::len).sum::<usize>())
        .sum();

    println!(
        "\nrollout loop, scripted policy replaying {} executable tasks ({} tool calls per pass), {rounds} passes",
        tasks.len(),
        calls_per_pass
    );
    println!(
        "{:<12} {:>12} {:>12} {:>14}",
        "threads", "episodes/s", "calls/s", "µs/episode"
    );
    for threads in [1usize, 2] {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(threads)
            .enable_all()
            .build()
            .expect("runtime");
        let roller = Roller::new(
            registry.clone(),
            RolloutConfig {
                max_turns: 10,
                max_episode_tokens: 1 << 20,
                max_calls_in_flight: threads,
                ..RolloutConfig::default()
            },
        );
        let run = |passes: usize| {
            runtime.block_on(async {
                use futures::StreamExt;
                let jobs = (0..passes).flat_map(|_| episodes.iter().enumerate());
                let mut stream = futures::stream::iter(jobs)
                    .map(|(i, task)| roller.run(&policy, task, i as u64, 0))
                    .buffer_unordered(threads * 4);
                let mut n = 0usize;
                while let Some(t) = stream.next().await {
                    let t = t.expect("episode");
                    assert!(t.final_response.is_some());
                    n += 1;
                }
                n
            })
        };
        run(1); // warm-up
        let start = Instant::now();
        let n = run(rounds);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{threads:<12} {:>12.0} {:>12.0} {:>14.1}",
            n as f64 / secs,
            (calls_per_pass * rounds) as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
}

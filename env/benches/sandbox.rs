//! Calls per second and latency of the whole call path (validate + instantiate + run + parse)
//! for the `calculator` tool on 1 and 2 threads, beside a Python subprocess per call doing the
//! same arithmetic. Prints figures; asserts nothing (targets live here, not in timed tests).
//!
//! Run: `./tools/build.sh && cargo bench -p toolenv --bench sandbox`
//! Options (env): `BENCH_SECONDS` per measurement (default 3), `BENCH_PYTHON_CALLS` (default 200).

use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use toolenv::{LoadedConfig, Registry};

const EXPRESSIONS: [&str; 4] = ["2+3*4", "(1.5+2)*-3", "2^10-1", "((7-2)*(3+4))/5"];

/// The same evaluation in Python: read the arguments, evaluate, print the result object.
const PYTHON: &str = r#"
import sys, json
a = json.load(sys.stdin)
v = eval(a["expression"].replace("^", "**"), {"__builtins__": {}})
print(json.dumps({"value": int(v) if float(v).is_integer() else v}))
"#;

struct Stats {
    calls: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.wall.as_secs_f64()
    }
    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

fn main() {
    let seconds: f64 = env_or("BENCH_SECONDS", 3.0);
    let python_calls: usize = env_or("BENCH_PYTHON_CALLS", 200.0) as usize;
    let registry = registry();

    // Warm-up: page in the pool, the code and the allocator.
    bench_sandbox(&registry, 1, Duration::from_millis(300));

    let mut rows = Vec::new();
    for threads in [1, 2] {
        let mut s = bench_sandbox(&registry, threads, Duration::from_secs_f64(seconds));
        let (p50, p99) = (s.percentile(0.50), s.percentile(0.99));
        rows.push((
            format!("wasm sandbox, {threads} thread(s)"),
            s.rate(),
            p50,
            p99,
        ));
    }
    let mut py = bench_python(python_calls);
    let (p50, p99) = (py.percentile(0.50), py.percentile(0.99));
    rows.push(("python3 subprocess, 1 thread".into(), py.rate(), p50, p99));

    println!(
        "\ncalculator through the whole call path ({seconds} s per row, {} CPUs)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<32} {:>12} {:>10} {:>10}",
        "", "calls/s", "p50 µs", "p99 µs"
    );
    for (name, rate, p50, p99) in &rows {
        println!(
            "{name:<32} {rate:>12.0} {:>10.1} {:>10.1}",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    let (one, two, python) = (rows[0].1, rows[1].1, rows[2].1);
    let p99_one = rows[0].3.as_secs_f64() * 1e6;
    println!("\ntargets:");
    check("≥ 30,000 calls/s on one thread", one >= 30_000.0);
    check("≥ 55,000 calls/s on two threads", two >= 55_000.0);
    check("p99 ≤ 100 µs (one thread)", p99_one <= 100.0);
    println!("  speed-up over python3 subprocess: {:.0}x", one / python);
    check("≥ 500x the python3 subprocess rate", one / python >= 500.0);
}

fn check(what: &str, ok: bool) {
    println!("  [{}] {what}", if ok { "met" } else { "MISSED" });
}

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn registry() -> Registry {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let module = repo.join("tools/wasm/calculator.wasm");
    assert!(module.is_file(), "run ./tools/build.sh first");
    let toml = format!(
        "[[tools]]\nmodule = {:?}\nschema = {:?}\n",
        module.display().to_string(),
        repo.join("schemas/tools/calculator.json")
            .display()
            .to_string()
    );
    let loaded = LoadedConfig::parse(&repo.join("bench.toml"), toml).expect("config");
    Registry::from_config(&loaded).unwrap_or_else(|e| panic!("{e}"))
}

fn bench_sandbox(registry: &Registry, threads: usize, duration: Duration) -> Stats {
    let args: Vec<_> = EXPRESSIONS
        .iter()
        .map(|e| json!({ "expression": e }))
        .collect();
    let start = Instant::now();
    let per_thread: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let args = &args;
                s.spawn(move || {
                    let mut latencies = Vec::with_capacity(200_000);
                    let mut i = t;
                    while start.elapsed() < duration {
                        let t0 = Instant::now();
                        let episode = registry.episode();
                        let out = registry
                            .call(&episode, "calculator", &args[i % args.len()])
                            .expect("host error");
                        latencies.push(t0.elapsed());
                        assert!(out.result.is_ok(), "{:?}", out.result);
                        i += 1;
                    }
                    latencies
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let wall = start.elapsed();
    let latencies: Vec<Duration> = per_thread.into_iter().flatten().collect();
    Stats {
        calls: latencies.len(),
        wall,
        latencies,
    }
}

fn bench_python(calls: usize) -> Stats {
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(calls);
    for i in 0..calls {
        let t0 = Instant::now();
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", PYTHON])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn /usr/bin/python3");
        let args = json!({ "expression": EXPRESSIONS[i % EXPRESSIONS.len()] }).to_string();
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(args.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("python3");
        assert!(out.status.success());
        let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("python output");
        latencies.push(t0.elapsed());
    }
    Stats {
        calls,
        wall: start.elapsed(),
        latencies,
    }
}

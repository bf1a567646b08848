//! Calls per second and latency of the whole call path (validate + instantiate + run + parse),
//! on 1 and 2 threads, beside a `python3 -c` subprocess per call doing the same work (and the same
//! under firejail with VerlTool's flags, where firejail is installed), in the same run:
//! - `calculator`, a Rust wasm32-wasip1 module (arithmetic);
//! - a Python echo tool (`hostile_py` in echo mode: a componentize-py component through the guest
//!   helper: read the JSON arguments, reseed `random`, write a JSON result);
//! - the `python` interpreter tool running `print(sum(range(1000)))`.
//!
//! It also reports the instance pool's reservation per slot and the host's resident memory with
//! 128 Python calls in flight. Prints figures; asserts nothing (targets live here, not in timed
//! tests).
//!
//! Run: `./scripts/setup.sh && cargo bench -p toolenv --bench sandbox`
//! Options (env): `BENCH_SECONDS` per measurement (default 3), `BENCH_PYTHON_CALLS` subprocess
//! calls per peer row (default 200).

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use toolenv::{LoadedConfig, Registry};

const EXPRESSIONS: [&str; 4] = ["2+3*4", "(1.5+2)*-3", "2^10-1", "((7-2)*(3+4))/5"];

/// The calculator's work in Python: read the arguments, evaluate, print the result object.
const PY_CALCULATOR: &str = r#"
import sys, json
a = json.load(sys.stdin)
v = eval(a["expression"].replace("^", "**"), {"__builtins__": {}})
print(json.dumps({"value": int(v) if float(v).is_integer() else v}))
"#;

/// The echo tool's work in Python.
const PY_ECHO: &str = r#"
import sys, json
print(json.dumps(json.load(sys.stdin)))
"#;

/// What the interpreter tool runs, and the same directly.
const SNIPPET: &str = "print(sum(range(1000)))";

/// VerlTool's firejail flags for its Python sandbox.
const FIREJAIL: [&str; 7] = [
    "--quiet",
    "--noprofile",
    "--seccomp=socket",
    "--rlimit-nproc=32",
    "--rlimit-nofile=32",
    "--rlimit-fsize=2m",
    "--rlimit-as=1096m",
];

/// One benchmarked workload: a tool of the registry and its arguments, and the peer's program.
struct Workload {
    title: &'static str,
    tool: &'static str,
    args: Vec<Value>,
    python: &'static str,
}

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
    let firejail = Path::new("/usr/bin/firejail").is_file();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let modules_only = registry(&["calculator"]);
    let components = registry(&["calculator", "hostile_py", "python"]);

    let workloads = [
        Workload {
            title: "calculator (Rust module)",
            tool: "calculator",
            args: EXPRESSIONS
                .iter()
                .map(|e| json!({ "expression": e }))
                .collect(),
            python: PY_CALCULATOR,
        },
        Workload {
            title: "echo (Python component)",
            tool: "hostile_py",
            args: vec![json!({"mode": "echo"})],
            python: PY_ECHO,
        },
        Workload {
            title: "python interpreter: print(sum(range(1000)))",
            tool: "python",
            args: vec![json!({ "code": SNIPPET })],
            python: SNIPPET,
        },
    ];
    println!("{seconds} s per sandbox row, {python_calls} calls per subprocess row, {cpus} CPUs");
    let mut summary = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        let mut rows = Vec::new();
        let registries: Vec<(&str, &Registry)> = if i == 0 {
            vec![
                ("modules only", &modules_only),
                ("with components", &components),
            ]
        } else {
            vec![("", &components)]
        };
        for (pool, reg) in &registries {
            // Warm-up: page in the pool, the code and the allocator.
            bench_sandbox(reg, w, 1, Duration::from_millis(300));
            for threads in [1, 2] {
                let s = bench_sandbox(reg, w, threads, Duration::from_secs_f64(seconds));
                let pool = if pool.is_empty() {
                    String::new()
                } else {
                    format!(" ({pool})")
                };
                rows.push((format!("wasm sandbox{pool}, {threads} thread(s)"), s));
            }
        }
        rows.push((
            "python3 -c subprocess, 1 thread".into(),
            bench_subprocess(&[], w, python_calls),
        ));
        if firejail {
            rows.push((
                "python3 -c under firejail, 1 thread".into(),
                bench_subprocess(&FIREJAIL, w, (python_calls / 4).max(1)),
            ));
        }
        println!("\n{}", w.title);
        println!(
            "{:<44} {:>10} {:>10} {:>10}",
            "", "calls/s", "p50 µs", "p99 µs"
        );
        for (name, s) in &mut rows {
            let (p50, p99) = (s.percentile(0.50), s.percentile(0.99));
            println!(
                "{name:<44} {:>10.0} {:>10.1} {:>10.1}",
                s.rate(),
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
        let one = &mut rows[0].1;
        let (rate, p50, p99) = (one.rate(), one.percentile(0.5), one.percentile(0.99));
        let subprocess = rows
            .iter()
            .find(|(n, _)| n.starts_with("python3 -c subprocess"))
            .map_or(f64::NAN, |(_, s)| s.rate());
        summary.push((w.tool, rate, p50, p99, rate / subprocess));
    }
    if !firejail {
        println!("\n(firejail rows skipped: /usr/bin/firejail is not installed; apt-get install firejail)");
    }

    let rss = rss_in_flight(&components, 128);
    println!("\nmemory");
    println!(
        "  pool reservation per instance slot: {}",
        pool_slot_summary()
    );
    println!(
        "  host RSS: {:.0} MiB loaded, {:.0} MiB peak with 128 Python calls in flight \
         ({:.2} MiB per call in flight)",
        rss.0,
        rss.1,
        (rss.1 - rss.0) / 128.0
    );

    println!("\ntargets:");
    let (_, calc, _, _, calc_speedup) = summary[0];
    let (_, _, echo_p50, echo_p99, echo_speedup) = summary[1];
    check(
        "calculator ≥ 45,000 calls/s on one thread",
        calc >= 45_000.0,
    );
    println!("  calculator speed-up over python3 -c: {calc_speedup:.0}x");
    check(
        &format!(
            "echo p50 ≤ 1 ms (measured {:.2} ms)",
            echo_p50.as_secs_f64() * 1e3
        ),
        echo_p50 <= Duration::from_millis(1),
    );
    check(
        &format!(
            "echo p99 ≤ 2 ms (measured {:.2} ms)",
            echo_p99.as_secs_f64() * 1e3
        ),
        echo_p99 <= Duration::from_millis(2),
    );
    check(
        &format!("echo ≥ 10x the python3 -c rate (measured {echo_speedup:.1}x)"),
        echo_speedup >= 10.0,
    );
    let (_, _, _, _, interp_speedup) = summary[2];
    println!("  interpreter speed-up over python3 -c: {interp_speedup:.1}x");
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

/// A registry of the named tools from tools/wasm (built by ./tools/build.sh), compile cache on.
fn registry(tools: &[&str]) -> Registry {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut toml = String::new();
    for name in tools {
        let module = repo.join(format!("tools/wasm/{name}.wasm"));
        assert!(
            module.is_file(),
            "{}: run ./scripts/setup.sh first",
            module.display()
        );
        let schema = repo.join(format!("schemas/tools/{name}.json"));
        toml += &format!(
            "[[tools]]\nmodule = {:?}\nschema = {:?}\n",
            module.display().to_string(),
            schema.display().to_string()
        );
    }
    let loaded = LoadedConfig::parse(&repo.join("bench.toml"), toml).expect("config");
    Registry::from_config(&loaded).unwrap_or_else(|e| panic!("{e}"))
}

/// What the instance pool reserves (address space, not resident memory) per instance slot.
fn pool_slot_summary() -> String {
    let s = toolenv::sandbox::PoolShape::for_components(64 << 20);
    format!(
        "{} core instances, {} memories of up to {} MiB each, {} tables of {} elements",
        s.core_instances,
        s.memories,
        s.memory_bytes >> 20,
        s.tables,
        s.table_elements
    )
}

/// Resident memory (MiB) after loading, and the peak with `n` interpreter calls running at once.
fn rss_in_flight(registry: &Registry, n: usize) -> (f64, f64) {
    let before = status_mib("VmRSS:");
    // Long enough (fuel permitting) that every thread is inside its call at the same time.
    let args = json!({"code": "sum(i * i for i in range(20_000))"});
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                barrier.wait();
                let out = registry
                    .call(&registry.episode(), "python", &args)
                    .expect("host error");
                assert!(out.result.is_ok(), "{:?}", out.result);
            });
        }
    });
    (before, status_mib("VmHWM:"))
}

fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn bench_sandbox(registry: &Registry, w: &Workload, threads: usize, duration: Duration) -> Stats {
    let args = &w.args;
    let start = Instant::now();
    let per_thread: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut latencies = Vec::with_capacity(200_000);
                    let mut i = t;
                    while start.elapsed() < duration {
                        let t0 = Instant::now();
                        let episode = registry.episode();
                        let out = registry
                            .call(&episode, w.tool, &args[i % args.len()])
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

/// `python3 -c` per call (under `wrapper` when given, e.g. firejail), fed the workload's arguments.
fn bench_subprocess(wrapper: &[&str], w: &Workload, calls: usize) -> Stats {
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(calls);
    for i in 0..calls {
        let t0 = Instant::now();
        let mut command = match wrapper {
            [] => Command::new("/usr/bin/python3"),
            flags => {
                let mut c = Command::new("/usr/bin/firejail");
                c.args(flags).arg("/usr/bin/python3");
                c
            }
        };
        let mut child = command
            .args(["-c", w.python])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn /usr/bin/python3");
        let args = w.args[i % w.args.len()].to_string();
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(args.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        latencies.push(t0.elapsed());
    }
    Stats {
        calls,
        wall: start.elapsed(),
        latencies,
    }
}

//! Python tools as components: the same isolation as Rust modules, proven by a hostile Python
//! guest; the interpreter tool and the example tools; determinism.
//!
//! Compiling a Python component takes seconds, so every test shares one registry, loaded once per
//! test run from the compile cache: each component is compiled at most once per run, and not at
//! all when the cache is warm.

use crate::common::{tool_entry, Fixture};
use serde_json::{json, Value};
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use toolenv::{Registry, ToolError};

/// A config of the Python tools and the calculator. The compile cache is the default one, shared
/// with every other test that loads `env/config.toml`: its lock makes each component compile once
/// per machine, whichever test gets there first.
fn python_config() -> String {
    format!(
        "[sandbox]\nmax_instances = 16\n{}{}{}{}{}",
        tool_entry("hostile_py", ""),
        tool_entry("python", ""),
        tool_entry("text_stats", ""),
        tool_entry("dates", ""),
        tool_entry("calculator", ""),
    )
}

static PYTHON: LazyLock<(Fixture, Registry)> = LazyLock::new(|| {
    let fx = Fixture::new(&python_config());
    let reg = fx.load().unwrap_or_else(|e| panic!("{e}"));
    (fx, reg)
});

fn registry() -> &'static Registry {
    &PYTHON.1
}

fn call(name: &str, args: Value) -> Result<Value, ToolError> {
    let reg = registry();
    reg.call(&reg.episode(), name, &args)
        .expect("no host error")
        .result
}

/// Runs one attack, checks it ended within a bounded time, then that the registry still serves
/// both a Python and a Rust call.
fn attack(args: Value) -> Result<Value, ToolError> {
    registry(); // loaded (compiled, the first time) before the clock starts
    let start = Instant::now();
    let outcome = call("hostile_py", args.clone());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{args} took {took:?} to end");
    assert_eq!(
        call("calculator", json!({"expression": "6*7"})).expect("next Rust call works"),
        json!({"value": 42})
    );
    assert_eq!(
        call("hostile_py", json!({"mode": "echo"})).expect("next Python call works"),
        json!({"mode": "echo"})
    );
    outcome
}

fn attack_fails(args: Value) -> ToolError {
    match attack(args.clone()) {
        Err(e) => e,
        Ok(v) => panic!("{args} was not stopped: {v}"),
    }
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let e = attack_fails(json!({"mode": "loop"}));
    assert_eq!(e.kind(), "deadline", "{e}");
    assert!(e.to_string().contains("fuel"), "{e}");
}

#[test]
fn a_memory_bomb_is_stopped_at_the_cap() {
    let e = attack_fails(json!({"mode": "membomb"}));
    // Either the host's limiter refuses the growth (memory) or CPython sees the refusal first
    // and raises MemoryError (exit); never a host crash.
    let ok = matches!(e, ToolError::Memory { limit_bytes, .. } if limit_bytes == 64 << 20)
        || (e.kind() == "exit" && e.to_string().contains("MemoryError"));
    assert!(ok, "{e}");
}

#[test]
fn deep_recursion_ends_in_recursion_error() {
    let e = attack_fails(json!({"mode": "recurse"}));
    assert!(
        (e.kind() == "exit" && e.to_string().contains("RecursionError")) || e.kind() == "trap",
        "{e}"
    );
}

#[test]
fn a_hundred_megabytes_of_output_is_cut_off() {
    let e = attack_fails(json!({"mode": "flood"}));
    assert!(
        matches!(
            e,
            ToolError::OutputTooLarge {
                stream: "stdout",
                limit_bytes: 65536,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn nothing_of_the_host_file_system_is_visible() {
    for args in [
        json!({"mode": "read_file", "path": "/etc/passwd"}),
        json!({"mode": "list_dir", "path": "/"}),
        json!({"mode": "list_dir", "path": "."}),
    ] {
        let e = attack_fails(args.clone());
        assert_eq!(e.kind(), "exit", "{args}: {e}");
        assert!(e.to_string().contains("FileNotFoundError"), "{args}: {e}");
    }
}

#[test]
fn the_environment_is_empty() {
    let got = attack(json!({"mode": "env"})).unwrap();
    assert_eq!(got, json!({"environ": {}, "argv": ["hostile_py"]}));
}

#[test]
fn sockets_are_refused() {
    let e = attack_fails(json!({"mode": "socket"}));
    assert_eq!(e.kind(), "exit", "{e}");
    assert!(e.to_string().contains("PermissionError"), "{e}");
}

#[test]
fn an_hour_of_sleep_returns_at_once() {
    let start = Instant::now();
    let got = attack(json!({"mode": "sleep"})).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(got, json!({"slept": true, "monotonic": 0.0}));
}

#[test]
fn the_clock_is_frozen_at_the_configured_instant() {
    let got = attack(json!({"mode": "clock"})).unwrap();
    assert_eq!(got, json!({"time": 1_735_689_600.0, "monotonic": 0.0}));
}

#[test]
fn randomness_is_seeded_by_episode_tool_and_arguments_across_registries() {
    let reg = registry();
    let args = json!({"mode": "random"});
    let run = |reg: &Registry, seed: u64, args: &Value| {
        reg.call(&reg.episode_with_seed(seed), "hostile_py", args)
            .unwrap()
            .result
            .unwrap()
    };
    let a = run(reg, 7, &args);
    assert_eq!(a, run(reg, 7, &args), "same call, same bytes");
    assert_ne!(a, run(reg, 8, &args), "another episode seed");
    assert_ne!(
        a,
        run(reg, 7, &json!({"mode": "random", "path": "x"})),
        "other arguments"
    );
    // A second registry (loaded from the compile cache) gives the same bytes.
    let fx = Fixture::new(&python_config());
    let other = fx.load().unwrap();
    assert_eq!(a, run(&other, 7, &args));
}

#[test]
fn a_call_imports_nothing_at_run_time() {
    // Every call starts from the build's snapshot, so a module imported while running is imported
    // again on every call (random.seed's SHA-512 was a fifth of an echo call).
    let got = attack(json!({"mode": "imports"})).unwrap();
    assert_eq!(got, json!({"imported": []}));
}

#[test]
fn sys_exit_ends_the_call_with_its_message() {
    let e = attack_fails(json!({"mode": "exit"}));
    assert!(
        matches!(&e, ToolError::Exit { stderr, .. } if stderr == "giving up on purpose"),
        "{e}"
    );
}

#[test]
fn an_uncaught_exception_gives_its_last_line_bounded() {
    let e = attack_fails(json!({"mode": "raise"}));
    let ToolError::Exit { stderr, .. } = &e else {
        panic!("{e}");
    };
    assert!(stderr.starts_with("ValueError: bad input xxx"), "{stderr}");
    assert!(stderr.len() <= 1000, "{} bytes", stderr.len());
    assert!(!stderr.contains("Traceback"), "{stderr}");
}

#[test]
fn the_interpreter_returns_stdout_and_the_last_expression() {
    let got = call(
        "python",
        json!({"code": "x = [3, 1, 2]\nprint(sorted(x))\nsum(x) / len(x)"}),
    )
    .unwrap();
    assert_eq!(got, json!({"stdout": "[1, 2, 3]\n", "result": "2.0"}));
    let got = call("python", json!({"code": "y = 1"})).unwrap();
    assert_eq!(got, json!({"stdout": "", "result": null}));
}

#[test]
fn the_interpreter_preloads_the_standard_modules_and_nothing_else() {
    let code = "import math, cmath, statistics, fractions, decimal, itertools, collections, \
                functools, operator, re, json, datetime, random, heapq, bisect, string, textwrap\n\
                (math.comb(10, 3), statistics.median([3, 1, 2]), str(fractions.Fraction(6, 4)), \
                 datetime.date(2024, 3, 1).isoformat(), heapq.nsmallest(2, [5, 1, 4]), \
                 datetime.datetime.strptime('05/03/2024', '%d/%m/%Y').date().isoformat())";
    let got = call("python", json!({ "code": code })).unwrap();
    assert_eq!(
        got["result"],
        json!("(120, 2, '3/2', '2024-03-01', [1, 4], '2024-03-05')")
    );
    let e = call("python", json!({"code": "import numpy"})).unwrap_err();
    assert!(
        e.to_string()
            .contains("ModuleNotFoundError: No module named 'numpy'"),
        "{e}"
    );
}

#[test]
fn an_exception_in_the_interpreter_is_a_tool_error_with_type_and_message() {
    let e = call("python", json!({"code": "a = 1\nb = 0\na / b"})).unwrap_err();
    assert!(
        matches!(&e, ToolError::Exit { stderr, .. }
            if stderr == "ZeroDivisionError: division by zero (line 3)"),
        "{e}"
    );
    let e = call("python", json!({"code": "def f(:\n  pass"})).unwrap_err();
    assert!(e.to_string().contains("SyntaxError"), "{e}");
}

#[test]
fn each_interpreter_call_starts_fresh() {
    assert!(call("python", json!({"code": "import math\nmath.leaked = 1"})).is_ok());
    let got = call("python", json!({"code": "hasattr(math, 'leaked')"})).unwrap();
    assert_eq!(got["result"], json!("False"));
}

#[test]
fn the_example_python_tools_answer() {
    let got = call("text_stats", json!({"text": "The cat saw the dog."})).unwrap();
    assert_eq!(
        got,
        json!({"characters": 20, "words": 5, "sentences": 1, "lines": 1,
               "top_words": [["the", 2], ["cat", 1], ["saw", 1]]})
    );
    let got = call(
        "dates",
        json!({"operation": "add_days", "date": "2024-02-27", "days": 3}),
    )
    .unwrap();
    assert_eq!(got, json!({"date": "2024-03-01", "weekday": "Friday"}));
    let e = call(
        "dates",
        json!({"operation": "days_between", "date": "2024-02-30", "other": "2024-03-01"}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("is not a date"), "{e}");
    // The schema generated from the signature is enforced before the guest runs.
    let e = call(
        "dates",
        json!({"operation": "fortnight", "date": "2024-01-01"}),
    )
    .unwrap_err();
    assert_eq!(e.kind(), "invalid_arguments", "{e}");
}

#[test]
fn calls_run_concurrently_and_stay_deterministic() {
    let reg = registry();
    let args = json!({"code": "random.random()"});
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| reg.call(&reg.episode(), "python", &args).unwrap().result))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
}

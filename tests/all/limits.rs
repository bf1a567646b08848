//! Every limit holds against a hostile guest: each attack ends in its own typed error, fast,
//! and the next call on the same registry works.

use crate::common::hostile_registry;
use serde_json::json;
use std::time::{Duration, Instant};
use toolenv::{Registry, ToolError};

/// Runs one attack, checks it is contained quickly, then checks the host still serves calls.
fn attack(reg: &Registry, args: serde_json::Value) -> ToolError {
    let episode = reg.episode();
    let start = Instant::now();
    let outcome = reg.call(&episode, "hostile", &args).expect("no host error");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "{args} took {took:?} to be stopped"
    );
    let healthy = reg
        .call(&episode, "calculator", &json!({"expression": "6*7"}))
        .expect("host still works");
    assert_eq!(
        healthy.result.expect("next call works"),
        json!({"value": 42})
    );
    match outcome.result {
        Err(e) => e,
        Ok(v) => panic!("{args} was not stopped: {v}"),
    }
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let (_fx, reg) = hostile_registry();
    let e = attack(&reg, json!({"mode": "loop"}));
    assert_eq!(e.kind(), "deadline", "{e}");
    assert!(e.to_string().contains("fuel"), "{e}");
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let (_fx, reg) = hostile_registry();
    let e = attack(&reg, json!({"mode": "membomb"}));
    assert!(
        matches!(e, ToolError::Memory { limit_bytes, .. } if limit_bytes == 64 << 20),
        "{e}"
    );
}

#[test]
fn deep_recursion_traps() {
    let (_fx, reg) = hostile_registry();
    let e = attack(&reg, json!({"mode": "recurse"}));
    assert_eq!(e.kind(), "trap", "{e}");
}

#[test]
fn hundred_megabytes_of_output_is_cut_off() {
    let (_fx, reg) = hostile_registry();
    let e = attack(&reg, json!({"mode": "flood"}));
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
    let e = attack(&reg, json!({"mode": "flood_stderr"}));
    assert!(
        matches!(
            e,
            ToolError::OutputTooLarge {
                stream: "stderr",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn host_files_are_invisible() {
    let (_fx, reg) = hostile_registry();
    for path in [
        "/etc/passwd",
        "../../../../etc/passwd",
        "/proc/self/environ",
        "/",
        ".",
        "/tmp",
    ] {
        let e = attack(&reg, json!({"mode": "read_file", "path": path}));
        assert!(matches!(e, ToolError::Exit { code: 1, .. }), "{path}: {e}");
        assert!(!e.to_string().contains("root:"), "{path}: {e}");
        let e = attack(&reg, json!({"mode": "list_dir", "path": path}));
        assert!(matches!(e, ToolError::Exit { code: 1, .. }), "{path}: {e}");
    }
    let e = attack(
        &reg,
        json!({"mode": "write_file", "path": "/tmp/toolenv-pwned"}),
    );
    assert!(matches!(e, ToolError::Exit { .. }), "{e}");
    assert!(!std::path::Path::new("/tmp/toolenv-pwned").exists());
}

#[test]
fn host_environment_and_network_are_invisible() {
    let (_fx, reg) = hostile_registry();
    std::env::set_var("TOOLENV_SECRET", "hunter2");
    let out = reg
        .call(&reg.episode(), "hostile", &json!({"mode": "env"}))
        .unwrap()
        .result
        .unwrap();
    assert_eq!(out, json!({"vars": {}, "args": ["hostile"]}));
    let e = attack(&reg, json!({"mode": "home"}));
    assert!(matches!(e, ToolError::Exit { code: 1, .. }), "{e}");
    let e = attack(&reg, json!({"mode": "net"}));
    assert!(matches!(e, ToolError::Exit { code: 1, .. }), "{e}");
}

#[test]
fn sleeping_does_not_block_the_host() {
    let (_fx, reg) = hostile_registry();
    let start = Instant::now();
    let out = reg
        .call(&reg.episode(), "hostile", &json!({"mode": "sleep"}))
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(out.result.unwrap(), json!({"slept": true}));
}

#[test]
fn panics_exits_and_garbage_are_typed() {
    let (_fx, reg) = hostile_registry();
    let e = attack(&reg, json!({"mode": "trap"}));
    assert_eq!(e.kind(), "trap");
    assert!(e.to_string().contains("deliberate panic"), "{e}");
    let e = attack(&reg, json!({"mode": "exit"}));
    assert!(
        matches!(&e, ToolError::Exit { code: 3, stderr, .. } if stderr == "deliberate failure"),
        "{e}"
    );
    let e = attack(&reg, json!({"mode": "garbage"}));
    assert_eq!(e.kind(), "not_json", "{e}");
}

#[test]
fn invalid_arguments_never_reach_the_guest() {
    let (_fx, reg) = hostile_registry();
    let out = reg
        .call(
            &reg.episode(),
            "hostile",
            &json!({"mode": 3, "extra": true}),
        )
        .unwrap();
    assert_eq!(out.fuel_used, 0);
    match out.result.unwrap_err() {
        ToolError::InvalidArguments { violations, .. } => {
            let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
            assert!(paths.contains(&"/mode"), "{violations:?}");
            assert!(
                violations.iter().any(|v| v.message.contains("extra")),
                "{violations:?}"
            );
        }
        e => panic!("{e}"),
    }
    let e = reg
        .call(&reg.episode(), "nope", &json!({}))
        .unwrap()
        .result
        .unwrap_err();
    assert!(
        matches!(&e, ToolError::UnknownTool { available, .. } if available == "hostile, calculator"),
        "{e}"
    );
}

#[test]
fn wall_clock_deadline_stops_what_fuel_allows() {
    let toml = format!(
        "[sandbox]\ncache_dir = \"\"\n{}",
        crate::common::tool_entry(
            "hostile",
            "limits = { fuel = 1_000_000_000_000, timeout_ms = 50 }"
        )
    );
    let fx = crate::common::Fixture::new(&toml);
    let reg = fx.load().unwrap();
    let start = Instant::now();
    let e = reg
        .call(&reg.episode(), "hostile", &json!({"mode": "loop"}))
        .unwrap()
        .result
        .unwrap_err();
    assert!(
        matches!(&e, ToolError::Deadline { budget, .. } if budget.contains("50 ms")),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn wat_guests_hit_the_wasm_stack_and_grow_limits() {
    let fx = crate::common::Fixture::new("");
    let schema = fx.file(
        "t.json",
        r#"{"name": "t", "description": "test", "parameters": {"type": "object"}}"#,
    );
    let cases = [
        (
            "(module (func $f (call $f)) (func (export \"_start\") (call $f)) (memory (export \"memory\") 1))",
            "trap",
            "stack overflow",
        ),
        (
            "(module (memory (export \"memory\") 1) (func (export \"_start\") (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))",
            "memory",
            "memory limit",
        ),
    ];
    for (wat, kind, words) in cases {
        let module = fx.file("t.wat", wat);
        let cfg = fx.file(
            "c.toml",
            format!(
                "[sandbox]\ncache_dir = \"\"\n[[tools]]\nmodule = {:?}\nschema = {:?}\n",
                module, schema
            ),
        );
        let reg = toolenv::Registry::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let e = reg
            .call(&reg.episode(), "t", &json!({}))
            .unwrap()
            .result
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().contains(words), "{e}");
    }
}

//! The example tools, as compiled wasm, through the shipped `env/config.toml`.

use crate::common::repo;
use serde_json::{json, Value};
use toolenv::{Episode, Registry, ToolError};

fn registry() -> Registry {
    Registry::load(&repo().join("env/config.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn ok(reg: &Registry, ep: &Episode, tool: &str, args: Value) -> Value {
    match reg.call(ep, tool, &args).expect("host").result {
        Ok(v) => v,
        Err(e) => panic!("{tool} {args}: {e}"),
    }
}

fn err(reg: &Registry, ep: &Episode, tool: &str, args: Value) -> ToolError {
    match reg.call(ep, tool, &args).expect("host").result {
        Ok(v) => panic!("{tool} {args} should fail, gave {v}"),
        Err(e) => e,
    }
}

#[test]
fn calculator() {
    let reg = registry();
    let ep = reg.episode();
    for (expr, value) in [
        ("2+3*4", json!(14)),
        ("(2+3)*4", json!(20)),
        ("-2^2", json!(-4)),
        ("2^3^2", json!(512)),
        ("1.5*4", json!(6)),
        ("7/2", json!(3.5)),
        ("-(3-5)", json!(2)),
    ] {
        assert_eq!(
            ok(&reg, &ep, "calculator", json!({"expression": expr})),
            json!({"value": value}),
            "{expr}"
        );
    }
    let e = err(&reg, &ep, "calculator", json!({"expression": "1/(2-2)"}));
    assert!(
        matches!(&e, ToolError::Exit { stderr, .. } if stderr.contains("division by zero")),
        "{e}"
    );
    let e = err(&reg, &ep, "calculator", json!({"expression": "2+*3"}));
    assert!(
        matches!(&e, ToolError::Exit { stderr, .. } if stderr.contains("position")),
        "{e}"
    );
}

#[test]
fn unit_convert() {
    let reg = registry();
    let ep = reg.episode();
    let v = ok(
        &reg,
        &ep,
        "unit_convert",
        json!({"value": 100, "from": "C", "to": "F"}),
    );
    assert_eq!(v["value"], json!(212));
    let v = ok(
        &reg,
        &ep,
        "unit_convert",
        json!({"value": 1, "from": "mi", "to": "km"}),
    );
    assert!(
        (v["value"].as_f64().unwrap() - 1.609344).abs() < 1e-12,
        "{v}"
    );
    let v = ok(
        &reg,
        &ep,
        "unit_convert",
        json!({"value": 2, "from": "h", "to": "min"}),
    );
    assert_eq!(v["value"], json!(120));
    let v = ok(
        &reg,
        &ep,
        "unit_convert",
        json!({"value": 1, "from": "kg", "to": "lb"}),
    );
    assert!(
        (v["value"].as_f64().unwrap() - 2.20462262184878).abs() < 1e-9,
        "{v}"
    );
    let e = err(
        &reg,
        &ep,
        "unit_convert",
        json!({"value": 1, "from": "kg", "to": "m"}),
    );
    assert!(
        e.to_string().contains("mass") && e.to_string().contains("length"),
        "{e}"
    );
}

#[test]
fn kv_store_keeps_state_within_an_episode_only() {
    let reg = registry();
    let ep = reg.episode();
    ok(
        &reg,
        &ep,
        "kv_store",
        json!({"op": "set", "key": "h", "value": 330}),
    );
    ok(
        &reg,
        &ep,
        "kv_store",
        json!({"op": "set", "key": "a", "value": {"x": [1]}}),
    );
    assert_eq!(
        ok(&reg, &ep, "kv_store", json!({"op": "get", "key": "h"})),
        json!({"key": "h", "value": 330})
    );
    assert_eq!(
        ok(&reg, &ep, "kv_store", json!({"op": "list"})),
        json!({"keys": ["a", "h"]})
    );
    assert_eq!(
        ok(&reg, &ep, "kv_store", json!({"op": "delete", "key": "h"})),
        json!({"deleted": true})
    );
    assert_eq!(
        ok(&reg, &ep, "kv_store", json!({"op": "list"})),
        json!({"keys": ["a"]})
    );
    let other = reg.episode();
    assert_eq!(
        ok(&reg, &other, "kv_store", json!({"op": "list"})),
        json!({"keys": []})
    );
    let e = err(&reg, &other, "kv_store", json!({"op": "get", "key": "a"}));
    assert_eq!(e.kind(), "exit", "{e}");
    let e = err(&reg, &other, "kv_store", json!({"op": "set", "key": "a"}));
    assert_eq!(
        e.kind(),
        "invalid_arguments",
        "the schema requires a value for set: {e}"
    );
}

#[test]
fn search_ranks_the_corpus() {
    let reg = registry();
    let ep = reg.episode();
    let v = ok(
        &reg,
        &ep,
        "search",
        json!({"query": "Eiffel Tower height", "top_k": 2}),
    );
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.len() <= 2, "{v}");
    assert_eq!(results[0]["id"], "building-eiffel-tower");
    assert!(results[0]["text"].as_str().unwrap().contains("330"));
    let v = ok(&reg, &ep, "search", json!({"query": "zzzqqq"}));
    assert_eq!(v, json!({"results": []}));
    let e = err(&reg, &ep, "search", json!({"query": "x", "top_k": 0}));
    assert_eq!(e.kind(), "invalid_arguments", "{e}");
}

//! `toolenv reward` end to end: the built binary on the reference vectors and on bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/reward/vectors.jsonl");

fn toolenv_reward(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_toolenv"))
        .arg("reward")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start toolenv");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn scores_the_reference_vectors_in_order() {
    let input = std::fs::read_to_string(VECTORS).expect("read the reward vectors");
    let out = toolenv_reward(&[], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let cases: Vec<&str> = input.lines().filter(|l| !l.trim().is_empty()).collect();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), cases.len());
    for (i, (case, line)) in cases.iter().zip(&lines).enumerate() {
        let want: Value = serde_json::from_str::<Value>(case).unwrap()["expected"].clone();
        let got: Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["total", "format", "correctness", "length"]);
        for k in ["total", "format", "correctness", "length"] {
            let (g, w) = (got[k].as_f64().unwrap(), want[k].as_f64().unwrap());
            assert!(
                (g - w).abs() <= 1e-9,
                "line {}: {k} = {g}, expected {w}",
                i + 1
            );
        }
    }
}

#[test]
fn variant_flag_applies_where_the_line_has_none() {
    let line = r#"{"text": "<think> a </think>", "ground_truth": "<think> b </think>", "step": 0}"#;
    let out = toolenv_reward(&["--variant", "schedule"], &format!("{line}\n"));
    assert!(out.status.success());
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["format"], 2.0);
    let own = line.replace("}", r#", "variant": "default"}"#);
    let out = toolenv_reward(&["--variant", "schedule"], &format!("{own}\n"));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["format"], 1.0);
}

#[test]
fn a_bad_ground_truth_stops_the_run_with_code_2() {
    let good = r#"{"text": "<think> a </think>", "ground_truth": "<think> b </think>"}"#;
    let bad = r#"{"text": "x", "ground_truth": "<tool_call>\n{\"name\": \"f\", \"parameters\": {}}\n{\"name\": oops}\n</tool_call>"}"#;
    let out = toolenv_reward(&[], &format!("{good}\n{good}\n{bad}\n{good}\n"));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("input line 3") && err.contains("line 2 of its <tool_call> block"),
        "{err}"
    );
}

#[test]
fn malformed_lines_are_named() {
    for (input, needle) in [
        ("not json\n", "input line 1"),
        ("{\"ground_truth\": \"\"}\n", "missing field `text`"),
        (
            "{\"text\": \"\", \"ground_truth\": \"\", \"variant\": \"refined+fast\"}\n",
            "\"fast\"",
        ),
    ] {
        let out = toolenv_reward(&[], input);
        assert_eq!(out.status.code(), Some(2), "{input}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn an_unknown_variant_flag_is_an_error_before_any_input() {
    let out = toolenv_reward(&["--variant", "default+nope"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("\"nope\""));
}

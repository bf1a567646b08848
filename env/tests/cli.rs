//! The `toolenv` binary end to end: real config, real wasm tools, real processes.

use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `toolenv ARGS` in the repository, every stream piped.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_toolenv"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run toolenv")
}

fn toolenv(args: &[&str], stdin: &str) -> Output {
    let mut child = spawn(args);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("toolenv output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn tools_lists_every_registered_tool() {
    let out = toolenv(&["tools", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tools: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["calculator", "unit_convert", "kv_store", "search", "python"]
    );
    assert!(tools
        .iter()
        .all(|t| t["function"]["parameters"]["type"] == "object"));

    let out = toolenv(&["tools", "--config", "env/config.toml"], "");
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("/state per episode"));
    assert!(text(&out.stdout).contains("python (component)"));
    assert!(text(&out.stdout).contains("calculator (module)"));
}

#[test]
fn tools_verl_config_is_verls_tool_config_for_every_tool() {
    let out = toolenv(&["tools", "--verl-config"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.is_ascii(), "{yaml}");
    assert!(yaml.starts_with("# verl tool config"));
    // One entry per registered tool, in registry order, each naming the adapter and the
    // config by its absolute path (verl's workers may start elsewhere).
    let names: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.strip_prefix("        name: "))
        .collect();
    assert_eq!(
        names,
        [
            "\"calculator\"",
            "\"unit_convert\"",
            "\"kv_store\"",
            "\"search\"",
            "\"python\""
        ]
    );
    let config = std::fs::canonicalize(repo().join("env/config.toml")).unwrap();
    let config_line = format!("      config_path: \"{}\"", config.display());
    assert_eq!(yaml.lines().filter(|l| *l == config_line).count(), 5);
    assert_eq!(
        yaml.matches("  - class_name: \"toolenv.adapters.verl.ToolenvTool\"\n    config:\n      type: \"native\"\n").count(),
        5
    );
    // kv_store's `value` takes any JSON value; `op` is a string enum.
    assert!(yaml.contains("            \"value\":\n              type: \"any\"\n"));
    assert!(yaml.contains("              enum: [\"set\", \"get\", \"delete\", \"list\"]\n"));
    assert!(yaml.contains("          required: [\"value\", \"from\", \"to\"]\n"));
    // Descriptions with quotes survive escaped.
    assert!(yaml.contains(r#"Example: {\"expression\": \"(330 - 300) * 1.5 ^ 2\"}"#));

    let out = toolenv(&["tools", "--verl-config", "--json"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn call_prints_the_result_or_the_error_with_exit_codes() {
    let out = toolenv(&["call", "calculator", r#"{"expression": "2+3*4"}"#], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), r#"{"value":14}"#);

    let out = toolenv(&["call", "calculator", r#"{"expression": "1/0"}"#], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("division by zero"),
        "{}",
        text(&out.stderr)
    );

    let out = toolenv(&["call", "calculator", r#"{"expression": 5}"#], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("invalid_arguments"),
        "{}",
        text(&out.stderr)
    );

    let out = toolenv(&["call", "calculator", "{not json"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not valid JSON"));

    let out = toolenv(
        &["call", "calculator", "{}", "--config", "no/such.toml"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no/such.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn batch_keeps_input_order_and_episode_state() {
    let mut input = String::new();
    for i in 0..300 {
        let line = json!({"name": "calculator", "arguments": {"expression": format!("{i}*2")}});
        input.push_str(&format!("{line}\n"));
    }
    input.push('\n');
    input.push_str("{\"name\": \"kv_store\", \"arguments\": {\"op\": \"set\", \"key\": \"k\", \"value\": [1, 2]}, \"episode\": \"e1\"}\n");
    input.push_str("{\"name\": \"kv_store\", \"arguments\": {\"op\": \"get\", \"key\": \"k\"}, \"episode\": \"e1\"}\n");
    input.push_str("{\"name\": \"kv_store\", \"arguments\": {\"op\": \"get\", \"key\": \"k\"}, \"episode\": \"e2\"}\n");
    input.push_str("this is not json\n");
    input.push_str("{\"name\": \"nope\", \"arguments\": {}}\n");

    let out = toolenv(&["batch", "--jobs", "2"], &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 305, "one output line per non-blank input line");
    for (i, line) in lines[..300].iter().enumerate() {
        assert_eq!(line, &json!({"ok": {"value": i * 2}}), "line {i}");
    }
    assert_eq!(lines[300], json!({"ok": {"ok": true, "key": "k"}}));
    assert_eq!(lines[301], json!({"ok": {"key": "k", "value": [1, 2]}}));
    assert_eq!(
        lines[302]["error"]["kind"], "exit",
        "episodes do not share state"
    );
    assert_eq!(lines[303]["error"]["kind"], "bad_request");
    assert!(
        lines[303]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 305:"),
        "input line numbers count blank lines too"
    );
    assert_eq!(lines[304]["error"]["kind"], "unknown_tool");
}

#[test]
fn batch_streams_answers_like_a_co_process() {
    use std::io::{BufRead, BufReader};
    let mut child = spawn(&["batch", "--jobs", "2"]);
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let answer = || -> Value {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("an answer while stdin is still open");
        serde_json::from_str(&line).unwrap()
    };
    // Each line is answered before the next is written, with stdin still open.
    for i in 0..3 {
        let line = json!({"name": "kv_store", "arguments": {"op": "set", "key": "k", "value": i}, "episode": "e"});
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        assert_eq!(answer(), json!({"ok": {"ok": true, "key": "k"}}));
    }
    // A line that is not UTF-8 gets its own error line; the batch goes on, state intact.
    stdin.write_all(b"{\"name\": \"calc\xff\"}\n").unwrap();
    writeln!(stdin, "{}", json!({"name": "kv_store", "arguments": "{\"op\": \"get\", \"key\": \"k\"}", "episode": "e"})).unwrap();
    writeln!(stdin, "{}", json!({"name": "calculator", "arguments": [1]})).unwrap();
    stdin.flush().unwrap();
    let bad = answer();
    assert_eq!(bad["error"]["kind"], "bad_request");
    let message = bad["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("line 4: not UTF-8"), "{message}");
    assert_eq!(answer(), json!({"ok": {"key": "k", "value": 2}}));
    assert_eq!(answer()["error"]["kind"], "parse");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

//! `toolenv eval` end to end against a real HTTP server on loopback that plays the model: it
//! answers half of the API-Bank samples correctly, and the accuracy must come out at exactly 50%;
//! and a ToolRL evaluation run from outside the repository finds the data the repository ships.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use toolenv::tir::render_turn;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Serves chat completions until `max` requests were answered; each answer is looked up by the
/// request's user message.
fn serve(answers: HashMap<String, String>, max: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let served = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let user = request["messages"][1]["content"].as_str().unwrap_or("");
            let text = answers
                .get(user)
                .cloned()
                .unwrap_or_else(|| "<think> ? </think>".into());
            let reply = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                reply.len(),
                reply
            );
            served.fetch_add(1, Ordering::SeqCst);
        }
    });
    (base, count)
}

#[test]
fn eval_against_an_endpoint_scores_resumes_and_summarises() {
    let data = toolenv::dataset::load("apibank-2", None).unwrap();
    let mut answers = HashMap::new();
    for (i, sample) in data.apibank().take(10).enumerate() {
        let text = if i % 2 == 0 {
            render_turn("calling", &sample.answer, None)
        } else {
            "<think> no </think>\n<tool_call>\n{\"name\": \"Wrong\", \"parameters\": {}}\n</tool_call>".to_string()
        };
        answers.insert(sample.user.clone(), text);
    }
    let (base, served) = serve(answers, 20);
    let out = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_toolenv"))
            .args([
                "eval",
                "--dataset",
                "apibank-2",
                "--endpoint",
                &base,
                "--model",
                "fake",
            ])
            .args(["--limit", "10", "--concurrency", "2", "--out"])
            .arg(out.path())
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let table = String::from_utf8_lossy(&first.stdout);
    assert!(table.contains("accuracy Level2"), "{table}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["samples"], 10);
    assert_eq!(summary["accuracy"]["Level2"], json!(50.0));
    assert_eq!(summary["accuracy"]["overall"], json!(50.0));
    let lines = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 10);
    assert_eq!(served.load(Ordering::SeqCst), 10);

    // A rerun finds every sample done: no request, same summary.
    let second = run();
    assert!(second.status.success());
    assert_eq!(
        served.load(Ordering::SeqCst),
        10,
        "resume re-asked finished samples"
    );
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(again, summary);
}

#[test]
fn eval_of_toolrl_resolves_the_repository_data_from_any_directory() {
    // Run from a directory outside the repository: the name resolves against the repository the
    // binary was built from, whose `data/` holds the ToolRL test split.
    let data = toolenv::dataset::load("toolrl", None).unwrap();
    assert_eq!(data.len(), 80);
    let answers: HashMap<String, String> = data
        .toolrl()
        .take(4)
        .map(|s| (s.user.clone(), s.output.clone()))
        .collect();
    let (base, served) = serve(answers, 4);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_toolenv"))
        .args(["eval", "--dataset", "toolrl", "--endpoint", &base])
        .args(["--model", "fake", "--limit", "4", "--out"])
        .arg(&out)
        .arg("--config")
        .arg(repo().join("env/config.toml"))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["samples"], 4);
    assert_eq!(summary["failed"], 0);
    // Each answer is the sample's own expected completion: full format marks, and full
    // correctness wherever a call is expected.
    assert_eq!(summary["rewards"]["format"], json!(1.0));
    let with_calls = data
        .toolrl()
        .take(4)
        .filter(|s| s.output.contains("<tool_call>"))
        .count();
    assert_eq!(
        summary["rewards"]["correctness"],
        json!(3.0 * with_calls as f64 / 4.0)
    );
    assert_eq!(served.load(Ordering::SeqCst), 4);
}

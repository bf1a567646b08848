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
    serve_with(max, move |request| {
        let user = request["messages"][1]["content"].as_str().unwrap_or("");
        let text = answers
            .get(user)
            .cloned()
            .unwrap_or_else(|| "<think> ? </think>".into());
        json!({"role": "assistant", "content": text})
    })
}

/// Serves chat completions until `max` requests were answered, each connection on its own
/// thread; `answer` gives the response's message for a request.
fn serve_with(
    max: usize,
    answer: impl Fn(&Value) -> Value + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let answer = Arc::new(answer);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let served = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut stream) = stream else { continue };
            let answer = answer.clone();
            let served = served.clone();
            std::thread::spawn(move || {
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
                let message = answer(&request);
                let reply =
                    json!({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
                        .to_string();
                served.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    reply.len(),
                    reply
                );
            });
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
    // Ten of the dataset's samples: the summary says its figures cover a selection.
    let level2 = toolenv::dataset::load("apibank-2", None).unwrap().len();
    assert_eq!(summary["subset"]["of"], json!(level2));
    assert_eq!(summary["subset"]["limit"], json!(10));
    assert!(
        table.contains(&format!("10 of {level2} samples")),
        "{table}"
    );
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

/// One crafted output per BFCL entry (the first of `data/bfcl/checker.jsonl` for its id), with
/// bfcl-eval's verdict on it.
fn bfcl_cases() -> HashMap<String, (String, bool)> {
    let text = std::fs::read_to_string(repo().join("data/bfcl/checker.jsonl")).unwrap();
    let mut cases = HashMap::new();
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        if case.get("fc").is_some() || case["expected"].get("exception").is_some() {
            continue;
        }
        if let Some(id) = case["id"].as_str() {
            cases.entry(id.to_string()).or_insert((
                case["output"].as_str().unwrap().to_string(),
                case["expected"]["valid"].as_bool().unwrap(),
            ));
        }
    }
    cases
}

#[test]
fn bfcl_single_turn_through_an_endpoint_scores_every_category_as_bfcl_eval() {
    let data = toolenv::dataset::load("bfcl-single-turn", None).unwrap();
    let cases = bfcl_cases();
    let no_call = "<think> nothing to call </think>\n<response> No. </response>".to_string();
    // The endpoint knows an entry by the messages it is sent; entries whose messages coincide
    // get the no-call answer, whose verdict does not depend on the entry's answers.
    let key = |e: &toolenv::dataset::BfclEntry| {
        serde_json::to_string(&toolenv::eval::bfcl_messages(e)).unwrap()
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in data.bfcl() {
        *seen.entry(key(e)).or_default() += 1;
    }
    let mut answers = HashMap::new();
    let mut expected: Vec<(String, bool)> = Vec::new();
    for e in data.bfcl() {
        let (text, valid) = match cases.get(&e.id) {
            Some(case) if seen[&key(e)] == 1 => case.clone(),
            _ => (no_call.clone(), e.category.contains("irrelevance")),
        };
        answers.insert(key(e), text);
        expected.push((e.category.clone(), valid));
    }
    let answers = Arc::new(answers);
    let (base, served) = serve_with(data.len(), move |request| {
        let k = serde_json::to_string(&request["messages"]).unwrap();
        json!({"role": "assistant", "content": answers.get(&k).cloned().unwrap_or_default()})
    });
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_toolenv"))
        .args(["eval", "--dataset", "bfcl-single-turn", "--endpoint", &base])
        .args(["--model", "replay", "--concurrency", "16", "--out"])
        .arg(out.path())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!(
        "bfcl-single-turn: {} entries through a loopback endpoint in {:.1} s",
        data.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(served.load(Ordering::SeqCst), data.len());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["samples"], 3641);
    let accuracy = summary["accuracy"].as_object().unwrap();
    let percent = |ok: usize, n: usize| (ok as f64 / n as f64 * 10000.0).round() / 100.0;
    let mut fractions: HashMap<&str, f64> = HashMap::new();
    for category in toolenv::dataset::bfcl::SINGLE_TURN {
        let of: Vec<bool> = expected
            .iter()
            .filter(|(c, _)| c == category)
            .map(|(_, v)| *v)
            .collect();
        let ok = of.iter().filter(|v| **v).count();
        fractions.insert(category, ok as f64 / of.len() as f64);
        assert_eq!(
            accuracy[*category],
            json!(percent(ok, of.len())),
            "{category}"
        );
    }
    let f = |c: &str| fractions[c];
    let simple = (f("simple_python") + f("simple_java") + f("simple_javascript")) / 3.0;
    let non_live = (simple + f("multiple") + f("parallel") + f("parallel_multiple")) / 4.0;
    let round = |x: f64| (x * 10000.0).round() / 100.0;
    assert_eq!(accuracy["non_live"], json!(round(non_live)));
    let irrelevance = (f("irrelevance") + f("live_irrelevance")) / 2.0;
    assert_eq!(accuracy["irrelevance_detection"], json!(round(irrelevance)));
    assert!(accuracy.contains_key("live"));
    assert!(!accuracy.contains_key("overall") && !accuracy.contains_key("multi_turn"));
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(table.contains("no overall is given"), "{table}");
    // Wrong answers carry bfcl-eval's error type.
    let results = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap();
    assert!(results.contains("\"bfcl_error\":\"simple_function_checker:wrong_count\""));
}

#[test]
fn bfcl_native_tool_calls_are_offered_and_read() {
    let data = toolenv::dataset::load("bfcl-simple_python", None).unwrap();
    let entries: Vec<_> = data.bfcl().take(12).cloned().collect();
    let by_question: HashMap<String, Value> = entries
        .iter()
        .map(|e| {
            // The first option of every parameter, as native calls with `.` written `_`.
            let truth = e.ground_truth.as_ref().unwrap().as_array().unwrap();
            let calls: Vec<Value> = truth
                .iter()
                .flat_map(|c| c.as_object().unwrap().iter())
                .map(|(name, params)| {
                    let args: serde_json::Map<String, Value> = params
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter_map(|(k, opts)| {
                            let first = opts.as_array()?.iter().find(|o| **o != json!(""))?;
                            Some((k.clone(), first.clone()))
                        })
                        .collect();
                    json!({"id": "c", "type": "function", "function": {
                        "name": name.replace('.', "_"),
                        "arguments": Value::Object(args).to_string()}})
                })
                .collect();
            (
                e.turns[0].last().unwrap().content.clone(),
                Value::Array(calls),
            )
        })
        .collect();
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    let (base, _) = serve_with(entries.len(), move |request| {
        seen.lock().unwrap().push(request.clone());
        let user = request["messages"][0]["content"].as_str().unwrap_or("");
        json!({"role": "assistant", "content": null, "tool_calls": by_question[user]})
    });
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_toolenv"))
        .args([
            "eval",
            "--dataset",
            "bfcl-simple_python",
            "--endpoint",
            &base,
        ])
        .args([
            "--model",
            "fc",
            "--bfcl-style",
            "fc",
            "--limit",
            "12",
            "--out",
        ])
        .arg(out.path())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["accuracy"]["simple_python"],
        json!(100.0),
        "{summary}"
    );
    let requests = requests.lock().unwrap();
    // The entry's own messages only, and its functions as OpenAI tools: names without dots,
    // BFCL's types mapped to JSON Schema's.
    let factorial = requests
        .iter()
        .find(|r| r["tools"][0]["function"]["name"] == "math_factorial")
        .expect("simple_python_1 offers math.factorial as math_factorial");
    assert_eq!(factorial["messages"].as_array().unwrap().len(), 1);
    assert_eq!(factorial["tools"][0]["type"], "function");
    assert_eq!(
        factorial["tools"][0]["function"]["parameters"]["type"],
        "object"
    );
    assert!(factorial["tools"][0]["function"]["description"]
        .as_str()
        .unwrap()
        .ends_with("Note that the provided function is in Python 3 syntax."));
}

//! Load: many concurrent clients with state, every request answered once and equal to `toolenv
//! batch`; many sessions left to expire, and the server back where it started.

use crate::{client, metric, post, repo, runtime, Served};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const REQUESTS: usize = 1000;

/// One call as a client saw it: its session, name, arguments and the served answer.
struct Seen {
    session: String,
    name: String,
    arguments: Value,
    answer: Value,
}

#[test]
fn sixty_four_clients_with_state_get_what_batch_gives() {
    let served = Served::start(&["--tools", "calculator,kv_store"]);
    let rt = runtime();
    let started = Instant::now();
    let seen: Vec<Vec<Seen>> = rt.block_on(async {
        let mut tasks = Vec::new();
        for k in 0..CLIENTS {
            let url = served.url("");
            tasks.push(tokio::spawn(async move { one_client(k, &url).await }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.expect("client task"));
        }
        all
    });
    let requests = CLIENTS * REQUESTS;
    eprintln!(
        "{requests} requests from {CLIENTS} clients in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The same calls, session by session in the order each client made them, through batch.
    let mut input = String::new();
    let mut answers = Vec::new();
    for client in &seen {
        for s in client {
            let line = json!({"name": s.name, "arguments": s.arguments, "episode": s.session});
            input.push_str(&format!("{line}\n"));
            answers.push(&s.answer);
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_toolenv"))
        .args(["batch", "--config", "env/config.toml"])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), answers.len());
    for (i, (batch, served)) in lines.iter().zip(answers).enumerate() {
        assert_eq!(batch, served, "call {i}");
    }
}

async fn one_client(k: usize, base: &str) -> Vec<Seen> {
    let c = client();
    let session = format!("client-{k}");
    let calls_url = format!("{base}/v1/sessions/{session}/calls");
    let step_url = format!("{base}/v1/sessions/{session}/step");
    let mut seen = Vec::new();
    for j in 0..REQUESTS {
        let (kind, name, arguments) = match j % 4 {
            0 => (
                "calls",
                "kv_store",
                json!({"op": "set", "key": format!("k{j}"), "value": [k, j]}),
            ),
            1 => (
                "calls",
                "kv_store",
                json!({"op": "get", "key": format!("k{}", j - 1)}),
            ),
            2 => (
                "calls",
                "calculator",
                json!({"expression": format!("{j}*{k}+1")}),
            ),
            _ => (
                "step",
                "calculator",
                json!({"expression": format!("{k}-{j}")}),
            ),
        };
        let (status, v) = if kind == "calls" {
            post(
                &c,
                &calls_url,
                &json!({"calls": [{"id": j, "name": name, "arguments": arguments}]}),
            )
            .await
        } else {
            let text = format!(
                "<think>t</think>\n<tool_call>\n{}\n</tool_call>",
                json!({"name": name, "parameters": arguments})
            );
            post(&c, &step_url, &json!({"text": text})).await
        };
        assert_eq!(status, 200, "client {k} request {j}: {v}");
        assert_eq!(
            v["session"], session,
            "answers are not mixed between sessions"
        );
        let answer = if kind == "calls" {
            let r = &v["results"][0];
            assert_eq!(r["id"], j, "client {k} request {j}");
            match (r.get("ok"), r.get("error")) {
                (Some(ok), _) => json!({ "ok": ok }),
                (_, Some(e)) => json!({ "error": e }),
                _ => panic!("no result: {v}"),
            }
        } else {
            match (&v["results"][0], &v["errors"][0]) {
                (Value::Null, e) => json!({ "error": e }),
                (ok, _) => json!({ "ok": ok }),
            }
        };
        match j % 4 {
            1 => assert_eq!(
                answer,
                json!({"ok": {"key": format!("k{}", j - 1), "value": [k, j - 1]}})
            ),
            2 => assert_eq!(answer, json!({"ok": {"value": j * k + 1}})),
            _ => {}
        }
        seen.push(Seen {
            session: session.clone(),
            name: name.to_string(),
            arguments,
            answer,
        });
    }
    seen
}

#[test]
fn ten_thousand_sessions_expire_and_the_server_comes_back() {
    let served = Served::start(&["--tools", "calculator,kv_store", "--session-ttl-s", "2"]);
    let rt = runtime();
    let c = client();
    let rss_start = served.rss_kib();
    rt.block_on(async {
        // Half of them write state, so they hold a /state directory until they expire.
        let mut tasks = Vec::new();
        for k in 0..16 {
            let (c, base) = (c.clone(), served.url(""));
            tasks.push(tokio::spawn(async move {
                for i in (k..10_000).step_by(16) {
                    let id = format!("s{i}");
                    let (s, v) = post(&c, &format!("{base}/v1/sessions"), &json!({"id": id})).await;
                    assert_eq!(s, 201, "{v}");
                    if i % 2 == 0 {
                        let body = json!({"calls": [{"name": "kv_store", "arguments": {"op": "set", "key": "a", "value": i}}]});
                        let (s, v) = post(&c, &format!("{base}/v1/sessions/{id}/calls"), &body).await;
                        assert_eq!((s, &v["results"][0]["ok"]["ok"]), (200, &json!(true)), "{v}");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let rss_full = served.rss_kib();
    let live = |c: &reqwest::Client| {
        rt.block_on(async {
            let text = crate::metrics_text(c, &served).await;
            metric(&text, "toolenv_sessions_live").unwrap()
        })
    };
    assert!(live(&c) > 0.0);
    assert!(served.state_dirs() > 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while live(&c) > 0.0 || served.state_dirs() > 0 {
        assert!(
            Instant::now() < deadline,
            "sessions or /state directories still there after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rss_end = served.rss_kib();
    eprintln!("RSS: {rss_start} KiB at start, {rss_full} KiB with 10,000 sessions, {rss_end} KiB after they expired");
    assert!(
        rss_end < rss_start + 64 * 1024,
        "RSS grew from {rss_start} to {rss_end} KiB and stayed"
    );
    // Still serving, and an expired id starts afresh.
    rt.block_on(async {
        let body = json!({"calls": [{"name": "kv_store", "arguments": {"op": "get", "key": "a"}}]});
        let (s, v) = post(&c, &served.url("/v1/sessions/s0/calls"), &body).await;
        assert_eq!((s, &v["created"]), (200, &json!(true)));
        assert_eq!(v["results"][0]["error"]["kind"], "exit");
    });
}

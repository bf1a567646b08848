//! Every route's answers and status codes, and that the served step and reward are the local ones.

use crate::{client, metric, post, repo, runtime, Served};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use toolenv::rollout::{Roller, RolloutConfig};

fn toolenv_stdout(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_toolenv"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run toolenv");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn routes_answer_with_results_and_typed_errors() {
    let served = Served::start(&["--tools", "calculator,kv_store,unit_convert"]);
    let rt = runtime();
    rt.block_on(async {
        let c = client();
        let health: Value = c.get(served.url("/health")).send().await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["tools"], 3);

        // The tools array is `toolenv tools --json` for the same selection.
        let tools: Value = c.get(served.url("/v1/tools")).send().await.unwrap().json().await.unwrap();
        let names: Vec<&str> = tools
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["calculator", "unit_convert", "kv_store"]);
        let all: Value = serde_json::from_str(&toolenv_stdout(&["tools", "--json"], "")).unwrap();
        for tool in tools.as_array().unwrap() {
            assert!(all.as_array().unwrap().contains(tool), "{tool}");
        }

        // Sessions: create, conflict, delete, delete again.
        let (s, v) = post(&c, &served.url("/v1/sessions"), &json!({"id": "a", "seed": 7, "ttl_s": 30})).await;
        assert_eq!((s, v["id"].as_str(), v["seed"].as_u64()), (201, Some("a"), Some(7)));
        let (s, v) = post(&c, &served.url("/v1/sessions"), &json!({"id": "a"})).await;
        assert_eq!((s, v["error"]["kind"].as_str()), (409, Some("conflict")));
        let (s, v) = post(&c, &served.url("/v1/sessions"), &json!({})).await;
        assert_eq!(s, 201);
        assert_eq!(v["id"].as_str().unwrap().len(), 32, "a fresh random id: {v}");
        let (s, _) = post(&c, &served.url("/v1/sessions/b"), &json!({"seed": 3})).await;
        assert_eq!(s, 201);
        let (s, v) = post(&c, &served.url("/v1/sessions"), &json!({"id": "no/slash"})).await;
        assert_eq!(s, 400, "{v}");
        let gone = c.delete(served.url("/v1/sessions/b")).send().await.unwrap();
        assert_eq!(gone.status().as_u16(), 204);
        let gone = c.delete(served.url("/v1/sessions/b")).send().await.unwrap();
        assert_eq!(gone.status().as_u16(), 404);

        // Calls: results, typed errors for what a model does wrong, state kept in the session.
        let calls = json!({"calls": [
            {"id": "c1", "name": "calculator", "arguments": {"expression": "6*7"}},
            {"id": "c2", "name": "calculator", "arguments": "{\"expression\": \"1+1\"}"},
            {"id": "c3", "type": "function", "function": {"name": "kv_store", "arguments": "{\"op\": \"set\", \"key\": \"k\", \"value\": 5}"}},
            {"name": "kv_store", "arguments": {"op": "get", "key": "k"}},
            {"name": "nope", "arguments": {}},
            {"name": "calculator", "arguments": {"expression": 5}},
            {"name": "calculator", "arguments": "{oops"},
            {"name": "calculator", "arguments": [1]},
        ]});
        let (s, v) = post(&c, &served.url("/v1/sessions/a/calls"), &calls).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["created"], false);
        let r = v["results"].as_array().unwrap();
        assert_eq!(r.len(), 8);
        assert_eq!((&r[0]["id"], &r[0]["ok"]), (&json!("c1"), &json!({"value": 42})));
        assert!(r[0]["fuel"].as_u64().unwrap() > 0 && r[0]["us"].is_u64());
        assert_eq!(r[1]["ok"], json!({"value": 2}));
        assert_eq!((&r[2]["id"], &r[2]["ok"]), (&json!("c3"), &json!({"ok": true, "key": "k"})));
        assert_eq!(r[3]["ok"], json!({"key": "k", "value": 5}));
        assert_eq!(r[3]["id"], Value::Null);
        let kinds: Vec<&str> = r[4..].iter().map(|x| x["error"]["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["unknown_tool", "invalid_arguments", "parse", "parse"]);
        // Another session does not see the state; an unknown id is created on first use.
        let (_, v) = post(&c, &served.url("/v1/sessions/other/calls"), &json!({"calls": [{"name": "kv_store", "arguments": {"op": "get", "key": "k"}}]})).await;
        assert_eq!(v["created"], true);
        assert_eq!(v["results"][0]["error"]["kind"], "exit");

        // Malformed requests: 400 naming the field.
        for (body, expect) in [
            (json!({}), "body: missing field `calls`"),
            (json!({"calls": [{"name": 3}]}), "calls[0].name: invalid type"),
            (json!({"calls": [{"arguments": {}}]}), "calls[0]: missing `name`"),
            (json!({"calls": "x"}), "calls: invalid type"),
            (json!({"calls": [], "extra": 1}), "extra"),
        ] {
            let (s, v) = post(&c, &served.url("/v1/sessions/a/calls"), &body).await;
            let message = v["error"]["message"].as_str().unwrap_or_default().to_string();
            assert_eq!((s, v["error"]["kind"].as_str()), (400, Some("bad_request")), "{body}: {v}");
            assert!(message.contains(expect), "{body}: {message}");
        }
        let bad = c.post(served.url("/v1/sessions/a/calls")).body(vec![b'{', 0xff, 0xfe, b'}']).send().await.unwrap();
        assert_eq!(bad.status().as_u16(), 400);
        let bad = c.post(served.url("/v1/sessions/a/calls")).body("{\"calls\": [").send().await.unwrap();
        assert_eq!(bad.status().as_u16(), 400);
        let missing = c.get(served.url("/v2/nothing")).send().await.unwrap();
        assert_eq!(missing.status().as_u16(), 404);

        // The metrics count calls by tool and outcome, and requests by route and status.
        let text = crate::metrics_text(&c, &served).await;
        assert!(text.contains(r#"toolenv_calls_total{tool="calculator",outcome="ok"} 2"#), "{text}");
        assert!(text.contains(r#"toolenv_calls_total{tool="_unknown",outcome="unknown_tool"} 1"#), "{text}");
        assert!(text.contains(r#"toolenv_requests_total{route="/v1/sessions/{id}/calls",status="400"}"#), "{text}");
        assert!(text.contains("toolenv_call_duration_seconds_bucket"), "{text}");
        assert_eq!(metric(&text, "toolenv_sessions_live"), Some(3.0), "{text}");
    });
}

#[test]
fn step_is_the_rollout_loops_step_and_reward_is_toolenv_reward() {
    let served = Served::start(&["--tools", "calculator,kv_store", "--max-turns", "2"]);
    let registry = Arc::new(
        toolenv::Registry::load_selecting(
            &repo().join("env/config.toml"),
            Some(&["calculator".to_string(), "kv_store".to_string()]),
        )
        .unwrap(),
    );
    let roller = Roller::new(
        registry.clone(),
        RolloutConfig {
            max_turns: 2,
            ..RolloutConfig::default()
        },
    );
    let turns = [
        "<think>set then get</think>\n<tool_call>\n{\"name\": \"kv_store\", \"parameters\": {\"op\": \"set\", \"key\": \"x\", \"value\": 1}}\n{\"name\": \"kv_store\", \"parameters\": {\"op\": \"get\", \"key\": \"x\"}}\nnot a call\n{\"name\": \"calculator\", \"parameters\": {\"expression\": \"2+\"}}\n</tool_call>",
        "<think>more</think>\n<tool_call>\n{\"name\": \"calculator\", \"parameters\": {\"expression\": \"3*3\"}}\n</tool_call>",
    ];
    let rt = runtime();
    rt.block_on(async {
        let c = client();
        let local = Arc::new(registry.episode());
        for (i, text) in turns.iter().enumerate() {
            let (s, v) = post(&c, &served.url("/v1/sessions/ep/step"), &json!({"text": text})).await;
            assert_eq!(s, 200, "{v}");
            let mine = roller.step(&local, text, "ep").await.unwrap();
            assert_eq!(v["observation"].as_str(), mine.observation.as_deref(), "turn {i}");
            assert_eq!(v["turn"], i);
            assert_eq!(v["done"], roller.done_after(i, &mine), "turn {i}");
            let kinds: Vec<Value> = mine.calls.iter().map(|c| json!(c.error.as_ref().map(|e| &e.kind))).collect();
            let served_kinds: Vec<Value> = v["errors"].as_array().unwrap().iter().map(|e| e["kind"].clone()).collect();
            assert_eq!(served_kinds, kinds);
        }
        // Turn 0 ran four lines: set, get (sees the set), a parse error, a calculator error.
        let (_, v) = post(&c, &served.url("/v1/sessions/ep2/step"), &json!({"text": turns[0]})).await;
        assert_eq!(v["results"][1], json!({"key": "x", "value": 1}));
        assert_eq!(v["calls"][2]["name"], Value::Null);
        assert_eq!(v["done"], false);
        let (_, v) = post(&c, &served.url("/v1/sessions/ep2/step"), &json!({"text": "<think>ok</think>\n<response>1</response>"})).await;
        assert_eq!((&v["done"], &v["stop"], &v["observation"]), (&json!(true), &json!("response"), &Value::Null));

        // VerlTool's shape: a finished trajectory drops its session.
        let body = json!({
            "trajectory_ids": ["t1", "t2", "t3"],
            "actions": [turns[1], "<response>done</response>", "whatever"],
            "finish": [false, false, true],
            "is_last_step": [false, false, false],
        });
        let (s, v) = post(&c, &served.url("/get_observation"), &body).await;
        assert_eq!(s, 200, "{v}");
        assert!(v["observations"][0].as_str().unwrap().starts_with("<obs>"), "{v}");
        assert_eq!(v["observations"][1], "");
        assert_eq!(v["dones"], json!([false, true, true]));
        assert_eq!(v["valids"], json!([true, false, true]));
        let (s, v) = post(&c, &served.url("/get_observation"), &json!({"trajectory_ids": ["a"], "actions": []})).await;
        assert_eq!(s, 400);
        assert!(v["error"]["message"].as_str().unwrap().starts_with("actions:"), "{v}");

        // Rewards: the same numbers as `toolenv reward`, and a bad item does not lose the batch.
        let vectors = std::fs::read_to_string(repo().join("data/reward/vectors.jsonl")).unwrap();
        let items: Vec<Value> = vectors
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(300)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(items.len() >= 2);
        let input: String = items.iter().map(|i| format!("{i}\n")).collect();
        let expected: Vec<Value> = toolenv_stdout(&["reward"], &input).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let mut with_bad: Vec<Value> = items.iter().map(|i| json!({"text": i["text"], "ground_truth": i["ground_truth"], "step": i.get("step").cloned().unwrap_or(json!(0)), "variant": i.get("variant").cloned().unwrap_or(json!("default"))})).collect();
        with_bad.insert(1, json!({"text": "x", "ground_truth": "<tool_call>\n{oops}\n</tool_call>"}));
        let (s, v) = post(&c, &served.url("/v1/reward"), &json!({"items": with_bad})).await;
        assert_eq!(s, 200, "{v}");
        let mut scores = v["scores"].as_array().unwrap().clone();
        let bad = scores.remove(1);
        assert_eq!(bad["error"]["kind"], "bad_request");
        assert!(bad["error"]["message"].as_str().unwrap().starts_with("items[1].ground_truth"), "{bad}");
        assert_eq!(scores, expected);
    });
}

#[test]
fn a_token_guards_every_route_but_health_and_the_session_table_is_bounded() {
    let served = Served::start_on(
        "127.0.0.1:0",
        &[
            "--tools",
            "calculator",
            "--token-env",
            "TOOLENV_TEST_TOKEN",
            "--max-sessions",
            "2",
        ],
        &[("TOOLENV_TEST_TOKEN", "s3cret")],
    );
    let rt = runtime();
    rt.block_on(async {
        let c = client();
        assert_eq!(
            c.get(served.url("/health"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            200
        );
        let denied = c.get(served.url("/v1/tools")).send().await.unwrap();
        assert_eq!(denied.status().as_u16(), 401);
        assert_eq!(denied.headers()["www-authenticate"], "Bearer");
        let wrong = c
            .get(served.url("/v1/tools"))
            .bearer_auth("s3cre")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        let ok = c
            .get(served.url("/v1/tools"))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        let create = |id: &'static str| {
            c.post(served.url("/v1/sessions"))
                .bearer_auth("s3cret")
                .json(&json!({"id": id}))
                .send()
        };
        assert_eq!(create("a").await.unwrap().status().as_u16(), 201);
        assert_eq!(create("b").await.unwrap().status().as_u16(), 201);
        let full = create("c").await.unwrap();
        assert_eq!(full.status().as_u16(), 429);
        assert_eq!(full.headers()["retry-after"], "1");
        let calls = json!({"calls": [{"name": "calculator", "arguments": {"expression": "1"}}]});
        let full = c
            .post(served.url("/v1/sessions/d/calls"))
            .bearer_auth("s3cret")
            .json(&calls)
            .send()
            .await
            .unwrap();
        assert_eq!(
            full.status().as_u16(),
            429,
            "an implicit session is bounded too"
        );
    });
}

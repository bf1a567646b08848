//! `OpenAiPolicy` against a real HTTP/1.1 server on loopback that replays canned answers.

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use toolenv::chat::Message;
use toolenv::policy::{
    OpenAiConfig, OpenAiPolicy, Policy, PolicyError, PolicyTurn, TurnRequest, Usage,
};

/// Bound on every wait in these tests, server and client alike.
const LIMIT: Duration = Duration::from_secs(20);

/// A variable no test sets, so no `Authorization` header is sent.
const NO_KEY: &str = "TOOLENV_TEST_OPENAI_KEY_NEVER_SET";

struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

fn completion(text: &str) -> String {
    json!({
        "id": "x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    })
    .to_string()
}

/// What the server received: the request line, headers (names lowercased) and body.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves one connection per canned reply, in order, then closes the listener.
async fn serve(replies: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for reply in replies {
            let Ok(Ok((mut stream, _))) = timeout(LIMIT, listener.accept()).await else {
                return;
            };
            let Ok(Some(request)) = timeout(LIMIT, read_request(&mut stream)).await else {
                return;
            };
            log.lock().unwrap().push(request);
            let mut head = format!(
                "HTTP/1.1 {} Canned\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                reply.status,
                reply.body.len()
            );
            for (name, value) in &reply.headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(reply.body.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    Server {
        base: format!("http://{addr}/v1"),
        seen,
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        request_line,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

fn config(base: &str, key_env: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: base.to_string(),
        model: "test-model".to_string(),
        api_key_env: key_env.to_string(),
        max_retries: 2,
        backoff_ms: 1,
        max_backoff_ms: 2_000,
        request_timeout_ms: 5_000,
        connect_timeout_ms: 2_000,
        ..OpenAiConfig::default()
    }
}

fn messages() -> Vec<Message> {
    vec![Message::system("You are terse."), Message::user("2+2?")]
}

async fn turn(policy: &OpenAiPolicy, max_new_tokens: u32) -> Result<PolicyTurn, PolicyError> {
    let messages = messages();
    let request = TurnRequest {
        messages: &messages,
        max_new_tokens,
        episode: 0,
        tools: None,
    };
    timeout(LIMIT, policy.next_turn(request))
        .await
        .expect("turn finished in time")
}

async fn one_turn(replies: Vec<Reply>, config: impl FnOnce(&str) -> OpenAiConfig) -> TurnResult {
    let server = serve(replies).await;
    let policy = OpenAiPolicy::new(config(&server.base)).unwrap();
    let result = turn(&policy, 64).await;
    TurnResult {
        result,
        seen: server.seen(),
    }
}

struct TurnResult {
    result: Result<PolicyTurn, PolicyError>,
    seen: Vec<Seen>,
}

#[tokio::test]
async fn completion_is_parsed_and_the_request_is_right() {
    let server = serve(vec![reply(200, completion("4"))]).await;
    let mut cfg = config(&format!("{}/", server.base), NO_KEY);
    cfg.max_tokens = 100;
    cfg.temperature = 0.5;
    cfg.stop = vec!["</answer>".to_string()];
    let policy = OpenAiPolicy::new(cfg).unwrap();
    assert_eq!(policy.name(), "test-model");

    let turn = turn(&policy, 40).await.unwrap();
    assert_eq!(turn.text, "4");
    assert_eq!(turn.finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        turn.usage,
        Some(Usage {
            prompt_tokens: 7,
            completion_tokens: 3
        })
    );
    assert!(turn.tokens.is_none());

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line, "POST /v1/chat/completions HTTP/1.1");
    assert_eq!(seen[0].header("authorization"), None);
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "test-model",
            "messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": "2+2?"}],
            "temperature": 0.5,
            "max_tokens": 40,
            "stop": ["</answer>"]
        })
    );
}

#[tokio::test]
async fn api_key_is_sent_as_bearer_and_kept_out_of_debug_and_errors() {
    const VAR: &str = "TOOLENV_TEST_OPENAI_KEY_BEARER";
    std::env::set_var(VAR, "sk-secret-123");
    let server = serve(vec![
        reply(200, completion("ok")),
        reply(401, r#"{"error": "bad key sk-secret-123"}"#),
    ])
    .await;
    let policy = OpenAiPolicy::new(config(&server.base, VAR)).unwrap();
    assert!(!format!("{policy:?}").contains("sk-secret-123"));

    assert_eq!(turn(&policy, 64).await.unwrap().text, "ok");
    let error = turn(&policy, 64).await.unwrap_err();
    assert!(matches!(error, PolicyError::Http { status: 401, .. }));
    assert!(!error.to_string().contains("sk-secret-123"), "{error}");

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer sk-secret-123")
    );
}

#[test]
fn required_key_that_is_unset_is_a_config_error() {
    let mut cfg = config("http://127.0.0.1:9/v1", NO_KEY);
    cfg.require_api_key = true;
    let error = OpenAiPolicy::new(cfg).unwrap_err();
    assert!(
        matches!(&error, PolicyError::Config(m) if m.contains(NO_KEY)),
        "{error}"
    );
}

#[tokio::test]
async fn server_error_is_retried() {
    let run = one_turn(
        vec![reply(500, "boom"), reply(200, completion("after retry"))],
        |base| config(base, NO_KEY),
    )
    .await;
    assert_eq!(run.result.unwrap().text, "after retry");
    assert_eq!(run.seen.len(), 2);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let mut limited = reply(429, "slow down");
    limited.headers.push(("Retry-After", "1"));
    let started = Instant::now();
    let run = one_turn(vec![limited, reply(200, completion("ok"))], |base| {
        config(base, NO_KEY)
    })
    .await;
    assert_eq!(run.result.unwrap().text, "ok");
    assert_eq!(run.seen.len(), 2);
    // backoff_ms is 1, so only Retry-After explains a wait near a second.
    assert!(started.elapsed() >= Duration::from_millis(950));
}

#[tokio::test]
async fn persistent_server_error_gives_up_after_max_retries() {
    let replies = (0..3).map(|_| reply(503, "down")).collect();
    let run = one_turn(replies, |base| config(base, NO_KEY)).await;
    match run.result.unwrap_err() {
        PolicyError::GaveUp { attempts, last } => {
            assert_eq!(attempts, 3);
            assert!(matches!(*last, PolicyError::Http { status: 503, .. }));
        }
        other => panic!("expected GaveUp, got {other}"),
    }
    assert_eq!(run.seen.len(), 3);
}

#[tokio::test]
async fn client_error_is_not_retried() {
    let run = one_turn(
        vec![
            reply(400, r#"{"error": {"message": "max_tokens too large"}}"#),
            reply(200, completion("unused")),
        ],
        |base| config(base, NO_KEY),
    )
    .await;
    match run.result.unwrap_err() {
        PolicyError::Http { status, url, body } => {
            assert_eq!(status, 400);
            assert!(url.ends_with("/v1/chat/completions"));
            assert!(body.contains("max_tokens too large"));
        }
        other => panic!("expected Http, got {other}"),
    }
    assert_eq!(run.seen.len(), 1);
}

#[tokio::test]
async fn malformed_json_is_a_bad_response() {
    let run = one_turn(vec![reply(200, "{not json")], |base| config(base, NO_KEY)).await;
    let error = run.result.unwrap_err();
    assert!(matches!(error, PolicyError::BadResponse { .. }), "{error}");
    assert_eq!(run.seen.len(), 1);
}

#[tokio::test]
async fn missing_choices_is_a_bad_response() {
    let run = one_turn(vec![reply(200, r#"{"id": "x"}"#)], |base| {
        config(base, NO_KEY)
    })
    .await;
    let error = run.result.unwrap_err();
    assert!(
        matches!(&error, PolicyError::BadResponse { message, .. } if message.contains("choices")),
        "{error}"
    );
}

#[tokio::test]
async fn null_content_is_empty_only_when_finish_reason_explains_it() {
    let null = |reason: &str| {
        json!({"choices": [{"message": {"role": "assistant", "content": null},
                            "finish_reason": reason}]})
        .to_string()
    };
    let cut = one_turn(vec![reply(200, null("length"))], |base| {
        config(base, NO_KEY)
    })
    .await;
    let turn = cut.result.unwrap();
    assert_eq!(turn.text, "");
    assert_eq!(turn.finish_reason.as_deref(), Some("length"));
    assert_eq!(turn.usage, None);

    let odd = one_turn(vec![reply(200, null("stop"))], |base| config(base, NO_KEY)).await;
    let error = odd.result.unwrap_err();
    assert!(
        matches!(&error, PolicyError::BadResponse { message, .. } if message.contains("content")),
        "{error}"
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_retried_then_reported() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let policy = OpenAiPolicy::new(config(&format!("http://127.0.0.1:{port}/v1"), NO_KEY)).unwrap();
    match turn(&policy, 64).await.unwrap_err() {
        PolicyError::GaveUp { attempts, last } => {
            assert_eq!(attempts, 3);
            assert!(matches!(*last, PolicyError::Transport { .. }), "{last}");
        }
        other => panic!("expected GaveUp, got {other}"),
    }
}

#[tokio::test]
async fn zero_budget_makes_no_request() {
    let server = serve(vec![reply(200, completion("unused"))]).await;
    let policy = OpenAiPolicy::new(config(&server.base, NO_KEY)).unwrap();
    let turn = turn(&policy, 0).await.unwrap();
    assert_eq!(turn.text, "");
    assert_eq!(turn.finish_reason.as_deref(), Some("length"));
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn request_timeout_is_retried_then_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(0usize));
    let count = accepted.clone();
    tokio::spawn(async move {
        // Accept and hold connections without ever answering.
        let mut held = Vec::new();
        for _ in 0..2 {
            let Ok(Ok((stream, _))) = timeout(LIMIT, listener.accept()).await else {
                return;
            };
            *count.lock().unwrap() += 1;
            held.push(stream);
        }
        tokio::time::sleep(LIMIT).await;
    });
    let mut cfg = config(&base, NO_KEY);
    cfg.request_timeout_ms = 200;
    cfg.max_retries = 1;
    let policy = OpenAiPolicy::new(cfg).unwrap();
    match turn(&policy, 64).await.unwrap_err() {
        PolicyError::GaveUp { attempts, last } => {
            assert_eq!(attempts, 2);
            assert!(matches!(*last, PolicyError::Transport { .. }), "{last}");
        }
        other => panic!("expected GaveUp, got {other}"),
    }
    assert_eq!(*accepted.lock().unwrap(), 2);
}

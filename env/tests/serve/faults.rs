//! Clients and operators at their worst: disconnects mid-request, a 100 MB body, headers at one
//! byte a second, a full queue, SIGTERM with calls in flight, kill -9 under load and a restart.

use crate::{client, post, runtime, Served};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A slow Python call: some milliseconds of interpreter work, inside its fuel (which 30,000
/// iterations exhaust).
fn slow_python() -> Value {
    json!({"name": "python", "arguments": {"code": "s = 0\nfor i in range(20000):\n    s += i * i\ns"}})
}

fn status_line(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while !got.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn bad_clients_do_not_hold_or_break_the_server() {
    let served = Served::start(&[
        "--tools",
        "calculator,kv_store",
        "--header-timeout-s",
        "2",
        "--body-timeout-s",
        "2",
    ]);
    let rt = runtime();
    let c = client();
    let healthy = |c: &reqwest::Client| {
        rt.block_on(async {
            let (s, v) = post(
                c,
                &served.url("/v1/sessions/h/calls"),
                &json!({"calls": [{"name": "calculator", "arguments": {"expression": "1+2"}}]}),
            )
            .await;
            assert_eq!(
                (s, &v["results"][0]["ok"]["value"]),
                (200, &json!(3)),
                "{v}"
            );
        })
    };

    // Headers at one byte a second: the connection is closed after the header timeout, and
    // others are served meanwhile.
    let addr = served.addr.clone();
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        let start = Instant::now();
        for b in b"POST /v1/sessions/x/calls HTTP/1.1\r\nHost: x\r\n".iter() {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            if start.elapsed() > Duration::from_secs(8) {
                break;
            }
        }
        let mut rest = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read_to_end(&mut rest);
        start.elapsed()
    });
    for _ in 0..20 {
        healthy(&c);
        std::thread::sleep(Duration::from_millis(50));
    }
    let held = slow.join().unwrap();
    assert!(
        held < Duration::from_secs(7),
        "a 1 byte/s client held its connection for {held:?}"
    );

    // A body at one byte a second: answered with an error after the body timeout.
    let mut s = TcpStream::connect(&served.addr).unwrap();
    s.write_all(b"POST /v1/sessions/x/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n").unwrap();
    let start = Instant::now();
    let mut writer = s.try_clone().unwrap();
    let dribble = std::thread::spawn(move || {
        for b in b"{\"calls\": [] ".iter().cycle().take(12) {
            if writer.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let line = status_line(&mut s);
    let took = start.elapsed();
    assert!(line.starts_with("HTTP/1.1 408"), "{line:?}");
    assert!(
        took < Duration::from_secs(6),
        "a 1 byte/s body held its request for {took:?}"
    );
    drop(s);
    let _ = dribble.join();

    // Disconnects mid-body and mid-response.
    for _ in 0..20 {
        let mut s = TcpStream::connect(&served.addr).unwrap();
        s.write_all(b"POST /v1/sessions/d/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"calls\": [").unwrap();
        drop(s);
        let mut s = TcpStream::connect(&served.addr).unwrap();
        let body = json!({"calls": (0..50).map(|i| json!({"name": "calculator", "arguments": {"expression": format!("{i}+1")}})).collect::<Vec<_>>()}).to_string();
        write!(s, "POST /v1/sessions/d/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        drop(s);
    }
    healthy(&c);

    // 100 MB: refused with 413 from the declared length, and from a chunked body past the limit.
    let mut s = TcpStream::connect(&served.addr).unwrap();
    s.write_all(b"POST /v1/sessions/big/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n").unwrap();
    let line = status_line(&mut s);
    assert!(line.starts_with("HTTP/1.1 413"), "{line:?}");
    let mut s = TcpStream::connect(&served.addr).unwrap();
    s.write_all(b"POST /v1/sessions/big/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..100 {
            if write!(writer, "{:x}\r\n", chunk.len()).is_err()
                || writer.write_all(&chunk).is_err()
                || writer.write_all(b"\r\n").is_err()
            {
                return false;
            }
        }
        true
    });
    let line = status_line(&mut s);
    assert!(line.starts_with("HTTP/1.1 413"), "{line:?}");
    drop(s);
    let _ = sender.join();
    assert!(
        served.rss_kib() < 400 * 1024,
        "RSS {} KiB after a 100 MB body",
        served.rss_kib()
    );
    healthy(&c);
}

/// Waits until the server reports a call running (a request is surely in flight).
async fn wait_running(c: &reqwest::Client, served: &Served) {
    let start = Instant::now();
    loop {
        let text = crate::metrics_text(c, served).await;
        if crate::metric(&text, "toolenv_calls_running").unwrap_or(0.0) >= 1.0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no call started running"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let served = Served::start(&["--tools", "python", "--workers", "1", "--max-queue", "2"]);
    let rt = runtime();
    rt.block_on(async {
        let c = client();
        let big = json!({"calls": vec![slow_python(); 60]});
        let url = served.url("/v1/sessions/big/calls");
        let (c2, u2) = (c.clone(), url.clone());
        let running = tokio::spawn(async move { post(&c2, &u2, &big).await });
        wait_running(&c, &served).await;
        let mut busy = 0;
        for i in 0..10 {
            let response = c
                .post(served.url(&format!("/v1/sessions/small{i}/calls")))
                .json(&json!({"calls": [slow_python()]}))
                .send()
                .await
                .unwrap();
            match response.status().as_u16() {
                429 => {
                    assert_eq!(response.headers()["retry-after"], "1");
                    let v: Value = response.json().await.unwrap();
                    assert_eq!(v["error"]["kind"], "busy");
                    busy += 1;
                }
                200 => {}
                other => panic!("status {other}"),
            }
        }
        let (s, v) = running.await.unwrap();
        assert_eq!(s, 200, "{v}");
        assert!(
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r.get("ok").is_some()),
            "{v}"
        );
        assert!(
            busy > 0,
            "no request was refused while 60 calls held a queue of 2"
        );
    });
}

#[test]
fn sigterm_lets_calls_in_flight_finish() {
    let mut served = Served::start(&["--tools", "python", "--workers", "1"]);
    let rt = runtime();
    let c = client();
    let url = served.url("/v1/sessions/t/calls");
    let in_flight =
        rt.spawn(async move { post(&c, &url, &json!({"calls": vec![slow_python(); 40]})).await });
    rt.block_on(wait_running(&client(), &served));
    served.signal("TERM");
    let (s, v) = rt.block_on(in_flight).unwrap();
    assert_eq!(s, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 40);
    assert!(results.iter().all(|r| r.get("ok").is_some()), "{v}");
    let status = served.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit {status:?}; stderr: {}",
        served.stderr.lock().unwrap()
    );
    assert!(
        TcpStream::connect(&served.addr).is_err(),
        "still accepting after SIGTERM"
    );
}

#[test]
fn kill_9_under_load_then_a_restart_serves_at_once() {
    let mut served = Served::start(&["--tools", "calculator,kv_store"]);
    let addr = served.addr.clone();
    let rt = runtime();
    let c = client();
    rt.block_on(async {
        let body = json!({"calls": [{"name": "kv_store", "arguments": {"op": "set", "key": "a", "value": 1}}]});
        let (s, _) = post(&c, &served.url("/v1/sessions/kept/calls"), &body).await;
        assert_eq!(s, 200);
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for k in 0..8 {
        let (c, url, stop) = (
            c.clone(),
            served.url(&format!("/v1/sessions/l{k}/calls")),
            stop.clone(),
        );
        load.push(rt.spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body =
                    json!({"calls": [{"name": "calculator", "arguments": {"expression": "2*3"}}]});
                match c.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let killed = Instant::now();
    let restarted = Served::start_on(&addr, &["--tools", "calculator,kv_store"], &[]);
    let restart = killed.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for t in load {
        let (o, f) = rt.block_on(t).unwrap();
        ok += o;
        failed += f;
    }
    eprintln!("kill -9 under load: {ok} calls served, {failed} failed around the kill; restart listening after {restart:?}");
    assert!(ok > 0);
    assert!(
        restart < Duration::from_secs(10),
        "restart took {restart:?}"
    );
    rt.block_on(async {
        // Sessions were in memory: the old one is gone, and the answer says it is new.
        let body = json!({"calls": [{"name": "kv_store", "arguments": {"op": "get", "key": "a"}}]});
        let (s, v) = post(&c, &restarted.url("/v1/sessions/kept/calls"), &body).await;
        assert_eq!((s, &v["created"]), (200, &json!(true)), "{v}");
        assert_eq!(v["results"][0]["error"]["kind"], "exit");
    });
}

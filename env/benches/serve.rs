//! `toolenv serve` over loopback: calls per second and p50/p99 latency with 1, 16 and 64
//! concurrent keep-alive clients, for the calculator and the Python interpreter tool, beside a
//! SandboxFusion-style stand-in in the same run (a Python `ThreadingHTTPServer` that runs
//! `python3 -c` per request, `serve_standin.py`).
//!
//! The server is the real binary in its own process; the clients are a minimal HTTP/1.1
//! keep-alive loop on raw sockets (a full HTTP client would spend more of the two cores than the
//! server it measures). Each row runs for a fixed time. Prints figures; asserts nothing.
//!
//! Run: `./scripts/setup.sh && cargo bench -p toolenv --bench serve`
//! Options (env): `BENCH_SECONDS` per row (default 3), `BENCH_CLIENTS` (default `1,16,64`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A server process, killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a program that prints a line containing `http://ADDR` once it listens.
fn start(mut command: Command) -> (Process, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read the listening line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .trim_end_matches('/')
        .to_string();
    std::thread::spawn(move || for _ in out.lines() {});
    (Process(child), addr)
}

/// One keep-alive connection sending `request` until `stop`; returns each request's latency.
async fn client(addr: String, request: Arc<Vec<u8>>, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let mut latencies = Vec::new();
    let mut buf = Vec::with_capacity(8192);
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        stream.write_all(&request).await.expect("write");
        buf.clear();
        read_response(&mut stream, &mut buf).await;
        latencies.push(sent.elapsed());
    }
    latencies
}

/// Reads one response with a Content-Length body; panics on anything but 200.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
            assert!(
                head.starts_with("http/1.1 200") || head.starts_with("http/1.0 200"),
                "{head}"
            );
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            break (at + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed the connection mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn request(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Row {
    calls_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn measure(addr: &str, clients: usize, make: impl Fn(usize) -> Vec<u8>, seconds: f64) -> Row {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..clients)
            .map(|k| tokio::spawn(client(addr.to_string(), Arc::new(make(k)), stop.clone())))
            .collect();
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client"));
        }
        let elapsed = start.elapsed().as_secs_f64();
        all.sort();
        let pick = |q: f64| {
            all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        Row {
            calls_per_s: all.len() as f64 / elapsed,
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
        }
    })
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let levels: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("toolenv serve over loopback, {cores} CPUs, {seconds} s per row; server and clients share the machine");

    let mut command = Command::new(env!("CARGO_BIN_EXE_toolenv"));
    command
        .args([
            "serve",
            "--config",
            "env/config.toml",
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--tools", "calculator,python"])
        .current_dir(repo());
    let (_server, addr) = start(command);
    let mut standin = Command::new("python3");
    standin
        .arg(repo().join("env/benches/serve_standin.py"))
        .current_dir(repo());
    let (_standin, standin_addr) = start(standin);

    let calc = r#"{"calls": [{"name": "calculator", "arguments": {"expression": "2+3*4"}}]}"#;
    let py = r#"{"calls": [{"name": "python", "arguments": {"code": "print(sum(range(1000)))"}}]}"#;
    let standin_calc = r#"{"code": "print(2+3*4)"}"#;
    let standin_py = r#"{"code": "print(sum(range(1000)))"}"#;
    println!(
        "\n{:<34} {:>7} {:>10} {:>9} {:>9}",
        "workload", "clients", "calls/s", "p50 ms", "p99 ms"
    );
    let mut rates = Vec::new();
    for (title, body, standin_body) in [
        ("calculator", calc, standin_calc),
        ("python interpreter", py, standin_py),
    ] {
        for &clients in &levels {
            let ours = measure(
                &addr,
                clients,
                |k| request(&format!("/v1/sessions/bench-{k}/calls"), body),
                seconds,
            );
            let peer = measure(
                &standin_addr,
                clients,
                |_| request("/run", standin_body),
                seconds,
            );
            for (who, row) in [("toolenv serve", &ours), ("stand-in (python3 -c)", &peer)] {
                println!(
                    "{:<34} {:>7} {:>10.0} {:>9.2} {:>9.2}",
                    format!("{title}: {who}"),
                    clients,
                    row.calls_per_s,
                    row.p50_ms,
                    row.p99_ms
                );
            }
            rates.push((title, clients, ours.calls_per_s / peer.calls_per_s));
        }
    }
    println!();
    for (title, clients, ratio) in rates {
        println!("{title}, {clients} clients: toolenv serve {ratio:.0}x the stand-in's rate");
    }
}

//! A deliberately hostile guest, for the sandbox's limit tests (never registered in
//! `env/config.toml`). `{"mode": …}` picks the attack; each mode is one thing a real tool could
//! do by accident or on purpose, and the tests check the host's answer to it.

use serde::Deserialize;
use serde_json::{json, Value};
use std::hint::black_box;
use std::io::Write;

#[derive(Deserialize)]
struct Args {
    mode: String,
    #[serde(default)]
    path: String,
}

fn main() {
    guest::run(|args: Args| attack(&args))
}

fn attack(args: &Args) -> Result<Value, String> {
    match args.mode.as_str() {
        "loop" => loop {
            black_box(());
        },
        "membomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        "recurse" => Ok(json!({"depth": recurse(black_box(u64::MAX))})),
        "flood" => {
            let chunk = vec![b'x'; 1 << 16];
            let mut out = std::io::stdout().lock();
            for _ in 0..(100 << 20) / chunk.len() {
                if out.write_all(&chunk).is_err() {
                    break;
                }
            }
            std::process::exit(0)
        }
        "flood_stderr" => {
            let chunk = vec![b'e'; 1 << 16];
            for _ in 0..(100 << 20) / chunk.len() {
                let _ = std::io::stderr().write_all(&chunk);
            }
            Ok(json!({"done": true}))
        }
        "read_file" => std::fs::read_to_string(&args.path)
            .map(|content| json!({"content": content}))
            .map_err(|e| format!("cannot read {}: {e}", args.path)),
        "list_dir" => std::fs::read_dir(&args.path)
            .map(|entries| {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                json!({"entries": names})
            })
            .map_err(|e| format!("cannot list {}: {e}", args.path)),
        "write_file" => std::fs::write(&args.path, b"pwned")
            .map(|()| json!({"written": args.path}))
            .map_err(|e| format!("cannot write {}: {e}", args.path)),
        "env" => Ok(json!({
            "vars": std::env::vars().collect::<std::collections::BTreeMap<_, _>>(),
            "args": std::env::args().collect::<Vec<_>>(),
        })),
        "home" => std::env::var("HOME")
            .map(|home| json!({"home": home}))
            .map_err(|e| format!("HOME: {e}")),
        "net" => std::net::TcpStream::connect("127.0.0.1:22")
            .map(|_| json!({"connected": true}))
            .map_err(|e| format!("cannot connect: {e}")),
        "entropy" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let start = std::time::Instant::now();
            let h = std::collections::hash_map::RandomState::new();
            let random = std::hash::BuildHasher::hash_one(&h, 0u8);
            Ok(
                json!({"now": now, "random": random, "elapsed_ns": start.elapsed().as_nanos() as u64}),
            )
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(json!({"slept": true}))
        }
        "trap" => panic!("deliberate panic"),
        "exit" => {
            eprintln!("deliberate failure");
            std::process::exit(3)
        }
        "garbage" => {
            print!("this is not json");
            std::process::exit(0)
        }
        "echo" => Ok(json!({"path": args.path})),
        other => Err(format!("unknown mode {other:?}")),
    }
}

fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let frame = black_box([n; 16]);
    black_box(recurse(black_box(n - 1))) + frame[3] % 2
}

//! `toolenv batch`: JSONL calls on stdin, one result line per input line, in input order.
//!
//! Input lines are `{"name": …, "arguments": {…}}`, optionally with `"episode": "id"`: lines
//! that share an episode id share per-episode state and run one after another in input order;
//! everything else runs concurrently on `--jobs` threads. Output lines are `{"ok": result}` or
//! `{"error": {"kind", "message"}}`; a malformed input line gets a `bad_request` error line and
//! the batch goes on. Blank lines are skipped. Exit code 2 if any line hit a host fault.

use crate::{load_registry, ConfigArg};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use toolenv::Registry;

/// Arguments of `toolenv batch`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Calls run at once (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
}

struct Request {
    name: String,
    arguments: Value,
}

/// One input line: where it is and what it asks (or why it cannot be asked).
struct Line {
    number: usize,
    request: Result<Request, String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let registry = load_registry(&args.config)?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);

    let mut lines = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut episode_group: HashMap<String, usize> = HashMap::new();
    for (i, text) in std::io::stdin().lock().lines().enumerate() {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let (request, episode) = parse_line(&text);
        let index = lines.len();
        lines.push(Line {
            number: i + 1,
            request,
        });
        match episode {
            Some(id) => {
                let g = *episode_group.entry(id).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(index);
            }
            None => groups.push(vec![index]),
        }
    }

    let next_group = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, String, bool)>();
    let mut host_faults = 0usize;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..jobs.min(groups.len().max(1)) {
            let tx = tx.clone();
            let (registry, lines, groups, next_group) = (&registry, &lines, &groups, &next_group);
            scope.spawn(move || loop {
                let g = next_group.fetch_add(1, Ordering::Relaxed);
                let Some(group) = groups.get(g) else { break };
                let episode = registry.episode();
                for &index in group {
                    let (text, fault) = execute(registry, &episode, &lines[index]);
                    if tx.send((index, text, fault)).is_err() {
                        return;
                    }
                }
                // Removal failures of a temp dir are not worth failing a batch over.
                let _ = episode.close();
            });
        }
        drop(tx);
        // Write each line as soon as every line before it is done.
        let mut pending: Vec<Option<String>> = vec![None; lines.len()];
        let mut written = 0;
        let mut out = BufWriter::new(std::io::stdout().lock());
        for (index, text, fault) in rx {
            host_faults += usize::from(fault);
            pending[index] = Some(text);
            while let Some(Some(text)) = pending.get_mut(written).map(Option::take) {
                writeln!(out, "{text}")?;
                written += 1;
            }
        }
        out.flush()?;
        Ok(())
    })?;
    if host_faults > 0 {
        eprintln!("error: {host_faults} call(s) failed on the host side; see their error lines");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_line(text: &str) -> (Result<Request, String>, Option<String>) {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (Err(format!("not valid JSON: {e}")), None),
    };
    let episode = match value.get("episode") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let request = match (value.get("name"), value.get("arguments")) {
        (Some(Value::String(name)), Some(arguments)) => Ok(Request {
            name: name.clone(),
            arguments: arguments.clone(),
        }),
        (Some(Value::String(name)), None) => Ok(Request {
            name: name.clone(),
            arguments: json!({}),
        }),
        (Some(_), _) => Err("`name` must be a string".to_string()),
        (None, _) => Err("missing `name`".to_string()),
    };
    (request, episode)
}

fn execute(registry: &Registry, episode: &toolenv::Episode, line: &Line) -> (String, bool) {
    let request = match &line.request {
        Ok(r) => r,
        Err(message) => {
            let message = format!("line {}: {message}", line.number);
            return (
                json!({"error": {"kind": "bad_request", "message": message}}).to_string(),
                false,
            );
        }
    };
    match registry.call(episode, &request.name, &request.arguments) {
        Ok(outcome) => match outcome.result {
            Ok(value) => (json!({ "ok": value }).to_string(), false),
            Err(e) => (json!({ "error": e.to_json() }).to_string(), false),
        },
        Err(e) => {
            let message = format!("line {}: {e}", line.number);
            (
                json!({"error": {"kind": "host", "message": message}}).to_string(),
                true,
            )
        }
    }
}

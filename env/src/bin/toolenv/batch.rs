//! `toolenv batch`: JSONL calls on stdin, one result line per input line, in input order,
//! streamed: each line is answered as soon as it and every line before it are done, so the
//! command works as a co-process (write a line, read its answer) as well as over a file.
//!
//! Input lines are `{"name": …, "arguments": {…}}` (`arguments` may also be a JSON string, as
//! chat-completions `tool_calls` carry it), optionally with `"episode": "id"`: lines that share an
//! episode id share per-episode state and run one after another in input order; everything else
//! runs concurrently on `--jobs` threads. Output lines are `{"ok": result}` or `{"error": {"kind",
//! "message"}}`; a malformed input line (not UTF-8, not JSON, no `name`) gets a `bad_request` error
//! line naming it and the batch goes on. Blank lines are skipped. Lines read but not yet answered
//! are bounded, so a fast producer waits instead of filling memory. Exit code 2 if any line hit a
//! host fault.

use crate::{load_registry, ConfigArg};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use toolenv::serve::wire;
use toolenv::{Episode, Registry};

/// Arguments of `toolenv batch`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Calls run at once (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
}

/// One input line: its place in the output, its 1-based line number, what it asks.
struct Line {
    index: usize,
    number: usize,
    request: Result<(String, Value), Bad>,
}

/// Why a line is not run.
enum Bad {
    /// Arguments that are not an object: the caller's (or the model's) call, typed `parse` as the
    /// rollout types such lines.
    Arguments(String),
    /// A malformed line: `bad_request`, naming the line.
    Line(String),
}

/// The lines of one episode, run in order by whichever worker holds the chain.
struct Chain {
    episode: Episode,
    /// Lines waiting, and whether a worker is running the chain now.
    queue: Mutex<(VecDeque<Line>, bool)>,
}

enum Job {
    One(Line),
    Chain(Arc<Chain>),
}

/// Lines read and not yet written, bounded.
struct Outstanding {
    count: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

impl Outstanding {
    fn acquire(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.limit {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }

    fn release(&self, k: usize) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) -= k;
        self.freed.notify_all();
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let registry = load_registry(&args.config)?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(jobs * 4);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, String, bool)>();
    let outstanding = Outstanding {
        count: Mutex::new(0),
        freed: Condvar::new(),
        limit: jobs * 256,
    };

    std::thread::scope(|scope| -> anyhow::Result<ExitCode> {
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let (registry, job_rx) = (&registry, &job_rx);
            scope.spawn(move || work(registry, job_rx, &done_tx));
        }
        drop(done_tx);
        let writer = scope.spawn(|| write_in_order(done_rx, &outstanding));

        let mut chains: HashMap<String, Arc<Chain>> = HashMap::new();
        let mut input = std::io::stdin().lock();
        let mut raw = Vec::new();
        let (mut index, mut number) = (0, 0);
        loop {
            raw.clear();
            if input.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            number += 1;
            let (request, episode) = parse_line(&raw);
            let Some(request) = request else { continue };
            outstanding.acquire();
            let line = Line {
                index,
                number,
                request,
            };
            index += 1;
            let job = match episode {
                None => Some(Job::One(line)),
                Some(id) => {
                    let chain = chains.entry(id).or_insert_with(|| {
                        Arc::new(Chain {
                            episode: registry.episode(),
                            queue: Mutex::new((VecDeque::new(), false)),
                        })
                    });
                    let mut queue = chain.queue.lock().unwrap_or_else(|e| e.into_inner());
                    queue.0.push_back(line);
                    // A running chain picks the line up itself; an idle one is handed to a worker.
                    (!std::mem::replace(&mut queue.1, true)).then(|| Job::Chain(chain.clone()))
                }
            };
            if let Some(job) = job {
                if job_tx.send(job).is_err() {
                    break;
                }
            }
        }
        drop(job_tx);
        let faults = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the output writer panicked"))??;
        for chain in chains.into_values() {
            if let Ok(chain) = Arc::try_unwrap(chain) {
                // Removal failures of a temp dir are not worth failing a batch over.
                let _ = chain.episode.close();
            }
        }
        if faults > 0 {
            eprintln!("error: {faults} call(s) failed on the host side; see their error lines");
            return Ok(ExitCode::from(2));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A worker: takes jobs until the reader is done, running a chain's lines until it is empty.
fn work(
    registry: &Registry,
    jobs: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<(usize, String, bool)>,
) {
    let plain = registry.episode();
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { break };
        match job {
            Job::One(line) => {
                let (text, fault) = execute(registry, &plain, &line);
                if done.send((line.index, text, fault)).is_err() {
                    return;
                }
            }
            Job::Chain(chain) => loop {
                let next = {
                    let mut queue = chain.queue.lock().unwrap_or_else(|e| e.into_inner());
                    let next = queue.0.pop_front();
                    queue.1 = next.is_some();
                    next
                };
                let Some(line) = next else { break };
                let (text, fault) = execute(registry, &chain.episode, &line);
                if done.send((line.index, text, fault)).is_err() {
                    return;
                }
            },
        }
    }
    let _ = plain.close();
}

/// Writes each answer once every answer before it is written, flushing whenever it catches up
/// (a co-process reads its answer at once); returns how many lines were host faults.
fn write_in_order(
    done: mpsc::Receiver<(usize, String, bool)>,
    outstanding: &Outstanding,
) -> anyhow::Result<usize> {
    let mut pending: HashMap<usize, String> = HashMap::new();
    let mut written = 0;
    let mut faults = 0;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (index, text, fault) in done {
        faults += usize::from(fault);
        pending.insert(index, text);
        let before = written;
        while let Some(text) = pending.remove(&written) {
            writeln!(out, "{text}")?;
            written += 1;
        }
        if written > before {
            out.flush()?;
            outstanding.release(written - before);
        }
    }
    out.flush()?;
    Ok(faults)
}

/// What a raw line asks and its episode; `None` for a blank line.
#[allow(clippy::type_complexity)]
fn parse_line(raw: &[u8]) -> (Option<Result<(String, Value), Bad>>, Option<String>) {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let message = format!("not UTF-8 (invalid byte at offset {at})");
            return (Some(Err(Bad::Line(message))), None);
        }
    };
    if text.trim().is_empty() {
        return (None, None);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (Some(Err(Bad::Line(format!("not valid JSON: {e}")))), None),
    };
    let episode = match value.get("episode") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let request = match value.get("name") {
        Some(Value::String(name)) => wire::arguments(value.get("arguments"))
            .map(|args| (name.clone(), Value::Object(args)))
            .map_err(Bad::Arguments),
        Some(_) => Err(Bad::Line("`name` must be a string".to_string())),
        None => Err(Bad::Line("missing `name`".to_string())),
    };
    (Some(request), episode)
}

fn execute(registry: &Registry, episode: &Episode, line: &Line) -> (String, bool) {
    let (name, arguments) = match &line.request {
        Ok(r) => r,
        Err(Bad::Arguments(message)) => return (wire::error("parse", message).to_string(), false),
        Err(Bad::Line(message)) => {
            let message = format!("line {}: {message}", line.number);
            return (wire::error("bad_request", message).to_string(), false);
        }
    };
    match registry.call(episode, name, arguments) {
        Ok(outcome) => (wire::outcome(&outcome).to_string(), false),
        Err(e) => {
            let message = format!("line {}: {e}", line.number);
            (
                json!({"error": {"kind": "host", "message": message}}).to_string(),
                true,
            )
        }
    }
}

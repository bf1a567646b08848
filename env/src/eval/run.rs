//! Running an evaluation: every sample of a dataset through a policy, scored the way the paper
//! scores it, written as it finishes, and summarised.
//!
//! - ToolRL samples: one turn on the sample's own system prompt and dialogue; ToolRL's reward
//!   terms against the expected completion.
//! - API-Bank samples: one turn; correct by [`super::apibank`]'s rule; accuracy per level.
//! - Executable tasks: a full multi-turn episode in the sandbox ([`Roller`]); the final
//!   `<response>` against the expected answer, turns, tool calls, tool error rate, and the
//!   execution-aware rewards of [`score_trajectory`].
//!
//! With an output directory, each finished sample is appended to `results.jsonl` at once, so a
//! rerun skips the samples already there (resume), and `summary.json` is written at the end from
//! every result, old and new.

use super::{apibank, bfcl};
use crate::chat::{Message, Role};
use crate::dataset::{Dataset, Format, Sample, Task};
use crate::policy::{Policy, TurnRequest};
use crate::reward::episode::answers_match;
use crate::reward::{GroundTruth, Rubric};
use crate::rollout::{score_trajectory, system_prompt, EpisodeTask, Roller, Trajectory};
use crate::tir::{render_turn, ToolCall};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How to run an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Evaluate only the first N samples.
    pub limit: Option<usize>,
    /// Evaluate only the first N samples of each group (BFCL category, task kind, API-Bank
    /// level), in dataset order; applied before `limit`.
    pub limit_per_group: Option<usize>,
    /// Samples in flight at once.
    pub concurrency: usize,
    /// Where `results.jsonl` and `summary.json` go; `None` keeps everything in memory.
    pub out_dir: Option<PathBuf>,
    /// Training step for the reward's step-dependent variants.
    pub step: u64,
    /// Base seed of the episodes' tool randomness (episode i gets `seed + i`).
    pub seed: u64,
    /// Most tokens a single-turn answer may have.
    pub max_new_tokens: u32,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// How BFCL entries are put to the policy.
    pub bfcl_style: bfcl::BfclStyle,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            limit: None,
            limit_per_group: None,
            concurrency: 4,
            out_dir: None,
            step: 0,
            seed: 0,
            max_new_tokens: 512,
            progress: false,
            bfcl_style: bfcl::BfclStyle::Tir,
        }
    }
}

/// One evaluated sample: a line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// The sample's id.
    pub id: String,
    /// `toolrl`, `apibank` or `tasks`.
    pub format: String,
    /// API-Bank level, or the task's kind, for per-group accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The model's final assistant text.
    pub output: String,
    /// Whether the sample counts as correct (API-Bank, tasks); absent for ToolRL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    /// Reward terms by name that measured something: a rate over zero events (say
    /// `tool_success_rate` without a call) is left out, not scored as perfect.
    pub rewards: BTreeMap<String, f64>,
    /// Assistant turns taken.
    pub turns: usize,
    /// Tool calls made (lines that parsed as calls).
    pub tool_calls: usize,
    /// Tool calls that failed.
    pub tool_errors: usize,
    /// The whole episode, for executable tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trajectory: Option<Trajectory>,
    /// bfcl-eval's `error_type` for a BFCL entry scored wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfcl_error: Option<String>,
    /// What was wrong with it, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfcl_detail: Option<String>,
    /// Why the sample could not be evaluated (policy failure, bad reference data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading or writing the output directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The samples an evaluation covers, with their index in the dataset: the first `per_group` of
/// each group (when given), then the first `limit` of those.
fn select(
    dataset: &Dataset,
    per_group: Option<usize>,
    limit: Option<usize>,
) -> Vec<(usize, &Sample)> {
    let mut taken: BTreeMap<Option<String>, usize> = BTreeMap::new();
    dataset
        .iter()
        .enumerate()
        .filter(|(_, s)| match per_group {
            None => true,
            Some(n) => {
                let count = taken.entry(s.group()).or_default();
                *count += 1;
                *count <= n
            }
        })
        .take(limit.unwrap_or(usize::MAX))
        .collect()
}

/// Runs `dataset` through `policy` and returns every result (resumed ones included) and the
/// summary.
pub async fn evaluate<P: Policy>(
    policy: &P,
    roller: &Roller,
    dataset: &Dataset,
    rubric: &Rubric,
    options: &EvalOptions,
) -> Result<(Vec<SampleResult>, Value), EvalError> {
    let samples = select(dataset, options.limit_per_group, options.limit);
    let mut results = match &options.out_dir {
        Some(dir) => read_previous(dir)?,
        None => Vec::new(),
    };
    let wanted: HashSet<&str> = samples.iter().map(|(_, s)| s.id()).collect();
    results.retain(|r| wanted.contains(r.id.as_str()));
    let done: HashSet<String> = results.iter().map(|r| r.id.clone()).collect();
    let todo: Vec<(usize, &Sample)> = samples
        .into_iter()
        .filter(|(_, s)| !done.contains(s.id()))
        .collect();

    let mut file = match &options.out_dir {
        Some(dir) => Some(open_results(dir, &results)?),
        None => None,
    };
    let bar = progress_bar(options.progress, todo.len(), done.len());
    let mut stream = futures::stream::iter(todo)
        .map(|(i, sample)| evaluate_one(policy, roller, rubric, options, i, sample))
        .buffer_unordered(options.concurrency.max(1));
    while let Some(result) = stream.next().await {
        if let Some((path, f)) = &mut file {
            writeln!(f, "{}", serde_json::to_string(&result).unwrap_or_default())
                .and_then(|_| f.flush())
                .map_err(|source| EvalError::Io {
                    path: path.clone(),
                    source,
                })?;
        }
        if let Some(bar) = &bar {
            bar.inc(1);
            if let Some(acc) = running_accuracy(&results) {
                bar.set_message(format!("accuracy {acc:.1}%"));
            }
        }
        results.push(result);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // Results arrive out of order; report them in dataset order.
    let order: BTreeMap<&str, usize> = dataset
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id(), i))
        .collect();
    results.sort_by_key(|r| order.get(r.id.as_str()).copied().unwrap_or(usize::MAX));
    let mut summary = summarize(&dataset.name, &policy.name(), &results);
    if results.len() < dataset.len() {
        // Figures over a selection estimate the dataset's; BFCL's count-weighted aggregates are
        // then weighted by the selection's counts.
        summary["subset"] = json!({
            "of": dataset.len(),
            "limit": options.limit,
            "limit_per_group": options.limit_per_group,
        });
    }
    if let Some(dir) = &options.out_dir {
        let path = dir.join("summary.json");
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n";
        std::fs::write(&path, text).map_err(|source| EvalError::Io { path, source })?;
    }
    Ok((results, summary))
}

/// [`evaluate`] on a fresh multi-threaded tokio runtime, for command-line programs.
pub fn evaluate_blocking<P: Policy>(
    policy: &P,
    roller: &Roller,
    dataset: &Dataset,
    rubric: &Rubric,
    options: &EvalOptions,
) -> Result<(Vec<SampleResult>, Value), EvalError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| EvalError::Io {
            path: PathBuf::from("<tokio runtime>"),
            source,
        })?;
    runtime.block_on(evaluate(policy, roller, dataset, rubric, options))
}

async fn evaluate_one<P: Policy>(
    policy: &P,
    roller: &Roller,
    rubric: &Rubric,
    options: &EvalOptions,
    index: usize,
    sample: &Sample,
) -> SampleResult {
    let _episode = policy.begin_episode(index as u64);
    let mut result = SampleResult {
        id: sample.id().to_string(),
        format: sample.format().name().to_string(),
        group: sample.group(),
        output: String::new(),
        correct: None,
        rewards: BTreeMap::new(),
        turns: 0,
        tool_calls: 0,
        tool_errors: 0,
        trajectory: None,
        bfcl_error: None,
        bfcl_detail: None,
        error: None,
    };
    match sample {
        Sample::ToolRl(s) => {
            let truth = match s.ground_truth() {
                Ok(t) => t,
                Err(e) => {
                    result.error = Some(format!("the expected output does not parse: {e}"));
                    return result;
                }
            };
            match single_turn(policy, options, &s.system, &s.user, index).await {
                Ok(output) => {
                    let scores = rubric.score(&output, &truth, options.step);
                    for (name, value) in [
                        ("total", scores.total),
                        ("format", scores.format),
                        ("correctness", scores.correctness),
                        ("length", scores.length),
                    ] {
                        result.rewards.insert(name.to_string(), value);
                    }
                    result.turns = 1;
                    result.output = output;
                }
                Err(e) => result.error = Some(e),
            }
        }
        Sample::ApiBank(s) => match single_turn(policy, options, &s.system, &s.user, index).await {
            Ok(output) => {
                result.correct = Some(apibank::is_correct(s, &output));
                result.turns = 1;
                result.output = output;
            }
            Err(e) => result.error = Some(e),
        },
        Sample::Bfcl(entry) => {
            // A failed request scores as wrong, as a missing result does in bfcl-eval.
            result.correct = Some(false);
            if entry.multi_turn.is_some() && options.bfcl_style == bfcl::BfclStyle::Fc {
                result.error = Some(format!(
                    "{}: --bfcl-style fc runs single-turn entries only; multi-turn ones run in the \
                     TIR style",
                    entry.id
                ));
                return result;
            }
            if entry.multi_turn.is_some() {
                let system = system_prompt(&bfcl::prompt_functions(entry));
                match bfcl::multi_turn::run_multi_turn(
                    policy,
                    entry,
                    system,
                    index as u64,
                    options.max_new_tokens,
                )
                .await
                {
                    Ok(outcome) => {
                        result.correct = Some(outcome.verdict.valid);
                        result.bfcl_error = outcome.verdict.error_type;
                        result.bfcl_detail = outcome.verdict.errors.first().cloned();
                        result.turns = outcome.steps;
                        result.tool_calls = outcome.calls;
                        result.output =
                            serde_json::to_string(&outcome.transcript).unwrap_or_default();
                    }
                    Err(e) => result.error = Some(e),
                }
                return result;
            }
            let native = options.bfcl_style == bfcl::BfclStyle::Fc;
            let (messages, tools) = if native {
                let turn = entry.turns.first().cloned().unwrap_or_default();
                (turn, Some(bfcl::openai_tools(entry)))
            } else {
                (bfcl_messages(entry), None)
            };
            match policy
                .next_turn(TurnRequest {
                    messages: &messages,
                    max_new_tokens: options.max_new_tokens,
                    episode: index as u64,
                    tools: tools.as_deref(),
                })
                .await
            {
                Ok(turn) => {
                    let output = turn.text.trim().to_string();
                    let calls = if native {
                        bfcl::decode_tool_calls(
                            turn.tool_calls
                                .iter()
                                .map(|c| (c.name.as_str(), &c.arguments)),
                        )
                    } else {
                        bfcl::decode_calls(&output)
                    };
                    let verdict = bfcl::score_entry(entry, &calls, native);
                    result.correct = Some(verdict.valid);
                    result.tool_calls = calls.len().unwrap_or(0);
                    result.bfcl_error = verdict.error_type;
                    result.bfcl_detail = verdict.errors.first().cloned();
                    result.turns = 1;
                    result.output = if native && !turn.tool_calls.is_empty() {
                        let calls: Vec<Value> = turn
                            .tool_calls
                            .iter()
                            .map(|c| json!({"name": c.name, "arguments": c.arguments}))
                            .collect();
                        format!("{output}\n{}", Value::Array(calls))
                            .trim()
                            .to_string()
                    } else {
                        output
                    };
                }
                Err(e) => result.error = Some(e.to_string()),
            }
        }
        Sample::Task(task) => {
            let episode = episode_task(task);
            let seed = options.seed.wrapping_add(index as u64);
            match roller.run(policy, &episode, index as u64, seed).await {
                Ok(mut trajectory) => {
                    let reference = reference_turns(task);
                    score_trajectory(&mut trajectory, &reference, rubric, options.step);
                    result.correct = Some(
                        trajectory
                            .final_response
                            .as_deref()
                            .is_some_and(|got| answers_match(got, &task.answer)),
                    );
                    result.rewards = trajectory.measured();
                    result.turns = trajectory.turns.len();
                    result.tool_calls = trajectory.calls().count();
                    result.tool_errors = trajectory.calls().filter(|c| !c.succeeded()).count();
                    result.output = trajectory
                        .turns
                        .last()
                        .map(|t| t.text.clone())
                        .unwrap_or_default();
                    result.trajectory = Some(trajectory);
                }
                Err(e) => result.error = Some(e.to_string()),
            }
        }
    }
    result
}

/// What the model reads for a single-turn BFCL entry: the TIR system prompt listing the
/// entry's functions (with an entry's own system message after it, as bfcl-eval's prompting
/// handlers place theirs), then the entry's messages.
pub fn bfcl_messages(entry: &crate::dataset::BfclEntry) -> Vec<Message> {
    let mut system = system_prompt(&bfcl::prompt_functions(entry));
    let turn = entry.turns.first().map(Vec::as_slice).unwrap_or_default();
    let mut rest = turn;
    if let Some((first, tail)) = turn.split_first() {
        if first.role == Role::System {
            system.push_str("\n\n");
            system.push_str(&first.content);
            rest = tail;
        }
    }
    let mut messages = vec![Message::system(system)];
    messages.extend(rest.iter().cloned());
    messages
}

async fn single_turn<P: Policy>(
    policy: &P,
    options: &EvalOptions,
    system: &str,
    user: &str,
    index: usize,
) -> Result<String, String> {
    let messages = [Message::system(system), Message::user(user)];
    policy
        .next_turn(TurnRequest {
            messages: &messages,
            max_new_tokens: options.max_new_tokens,
            episode: index as u64,
            tools: None,
        })
        .await
        .map(|t| t.text.trim().to_string())
        .map_err(|e| e.to_string())
}

/// The episode an executable task starts.
pub fn episode_task(task: &Task) -> EpisodeTask {
    EpisodeTask {
        id: task.id.clone(),
        question: task.question.clone(),
        expected_answer: Some(task.answer.clone()),
        reference_turns: task
            .solution
            .iter()
            .map(|calls| render_turn("", calls, None))
            .collect(),
    }
}

/// The reference turns of a task's solution, as ToolRL ground truths (one per call turn).
pub fn reference_turns(task: &Task) -> Vec<GroundTruth> {
    task.solution
        .iter()
        .filter_map(|calls| GroundTruth::parse(&render_turn("", calls, None)).ok())
        .collect()
}

/// The assistant turns that solve `task`: its solution's calls, then the answer. Each call
/// turn's thought names its tools and what follows them (the next turn's tools, or the answer),
/// so whether to call again after an observation is decided while reading the question and read
/// back from the model's own last thought: with one fixed thought for every call turn the only
/// cue was the observation, and the warm start answered after the first one on every task.
pub fn solution_script(task: &Task) -> Vec<String> {
    let tools = |calls: &[ToolCall]| {
        let mut names: Vec<&str> = Vec::new();
        for call in calls {
            if !names.contains(&call.name.as_str()) {
                names.push(&call.name);
            }
        }
        names.join(" and ")
    };
    let mut turns: Vec<String> = task
        .solution
        .iter()
        .enumerate()
        .map(|(i, calls)| {
            let next = task
                .solution
                .get(i + 1)
                .map_or_else(|| "answer".to_string(), |c| tools(c));
            let think = format!("I will call {}, then {next}.", tools(calls));
            render_turn(&think, calls, None)
        })
        .collect();
    turns.push(render_turn(
        "I have what I need.",
        &[],
        Some(task.answer.as_str()),
    ));
    turns
}

/// `summary.json`: counts, accuracy (overall and per group, percent with two decimals), mean of
/// every reward term, and tool-use statistics.
pub fn summarize(dataset: &str, policy: &str, results: &[SampleResult]) -> Value {
    let scored: Vec<&SampleResult> = results.iter().filter(|r| r.error.is_none()).collect();
    let mut accuracy = Map::new();
    let judged: Vec<&&SampleResult> = scored.iter().filter(|r| r.correct.is_some()).collect();
    if !judged.is_empty() {
        let mut groups: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for r in &judged {
            let g = groups
                .entry(r.group.as_deref().unwrap_or("all"))
                .or_default();
            g.0 += usize::from(r.correct == Some(true));
            g.1 += 1;
        }
        for (group, (ok, n)) in groups {
            accuracy.insert(group.to_string(), json!(percent(ok, n)));
        }
    }
    // Failed samples count as wrong in the overall accuracy: a model that crashes the endpoint
    // must not score higher for it.
    let judged_or_failed = results
        .iter()
        .filter(|r| r.correct.is_some() || (r.error.is_some() && r.format != Format::ToolRl.name()))
        .count();
    let is_bfcl = results.iter().any(|r| r.format == Format::Bfcl.name());
    if is_bfcl {
        // Every entry counts, failed ones as wrong, and BFCL's own aggregates replace an
        // overall figure that would not be BFCL's.
        let mut tallies: Vec<(String, bfcl::score::Tally)> = Vec::new();
        for r in results.iter().filter(|r| r.format == Format::Bfcl.name()) {
            let category = r.group.clone().unwrap_or_default();
            let at = match tallies.iter().position(|(c, _)| *c == category) {
                Some(at) => at,
                None => {
                    tallies.push((category, Default::default()));
                    tallies.len() - 1
                }
            };
            tallies[at].1.total += 1;
            tallies[at].1.correct += usize::from(r.correct == Some(true));
        }
        accuracy = bfcl::aggregates(&tallies);
    } else if judged_or_failed > 0 {
        let ok = results.iter().filter(|r| r.correct == Some(true)).count();
        accuracy.insert("overall".into(), json!(percent(ok, judged_or_failed)));
    }
    // A term is averaged over the samples where it measured something; one that measured
    // nothing anywhere is null, shown as absent.
    let mut rewards: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in &scored {
        for (name, value) in &r.rewards {
            let e = rewards.entry(name.clone()).or_default();
            e.0 += value;
            e.1 += 1;
        }
        for name in r.trajectory.iter().flat_map(|t| &t.unmeasured) {
            rewards.entry(name.clone()).or_default();
        }
    }
    let rewards: Map<String, Value> = rewards
        .into_iter()
        .map(|(k, (sum, n))| (k, json!((n > 0).then(|| sum / n as f64))))
        .collect();
    let n = scored.len().max(1) as f64;
    let calls: usize = scored.iter().map(|r| r.tool_calls).sum();
    let errors: usize = scored.iter().map(|r| r.tool_errors).sum();
    let mut summary = json!({
        "dataset": dataset,
        "policy": policy,
        "samples": results.len(),
        "failed": results.len() - scored.len(),
        "accuracy": accuracy,
        "rewards": rewards,
        "mean_turns": scored.iter().map(|r| r.turns).sum::<usize>() as f64 / n,
        "mean_tool_calls": calls as f64 / n,
        "tool_error_rate": (calls > 0).then(|| errors as f64 / calls as f64),
    });
    if is_bfcl {
        summary["note"] = json!(BFCL_NOTE);
    }
    summary
}

/// Why a BFCL summary has no overall score.
const BFCL_NOTE: &str = "BFCL v4's overall gives 40% to agentic categories (web search, memory) \
    that are not run here, so no overall is given; the aggregates are bfcl-eval's";

/// The summary as a small table for the terminal.
pub fn summary_table(summary: &Value) -> String {
    let mut out = String::new();
    let get = |k: &str| summary.get(k).cloned().unwrap_or(Value::Null);
    out.push_str(&format!(
        "{:<24} {}\n{:<24} {}\n{:<24} {} ({} failed)\n",
        "dataset",
        get("dataset").as_str().unwrap_or(""),
        "policy",
        get("policy").as_str().unwrap_or(""),
        "samples",
        get("samples"),
        get("failed")
    ));
    if let Some(subset) = summary.get("subset") {
        let per_group = match subset["limit_per_group"].as_u64() {
            Some(n) => format!(", the first {n} of each group"),
            None => String::new(),
        };
        out.push_str(&format!(
            "{:<24} {} of {} samples{per_group}: figures estimate the whole dataset's\n",
            "subset",
            get("samples"),
            subset["of"]
        ));
    }
    if let Some(acc) = summary.get("accuracy").and_then(Value::as_object) {
        for (k, v) in acc {
            out.push_str(&format!(
                "{:<24} {:.2}%\n",
                format!("accuracy {k}"),
                v.as_f64().unwrap_or(0.0)
            ));
        }
    }
    // A rate over zero events is null in the summary and shown as a dash, never as a number.
    let figure = |v: &Value, digits: usize| {
        v.as_f64()
            .map_or("—".to_string(), |x| format!("{x:.digits$}"))
    };
    if let Some(rw) = summary.get("rewards").and_then(Value::as_object) {
        for (k, v) in rw {
            out.push_str(&format!("{:<24} {}\n", format!("reward {k}"), figure(v, 4)));
        }
    }
    for k in ["mean_turns", "mean_tool_calls", "tool_error_rate"] {
        out.push_str(&format!("{:<24} {}\n", k, figure(&get(k), 3)));
    }
    if let Some(note) = summary.get("note").and_then(Value::as_str) {
        out.push_str(note);
        out.push('\n');
    }
    out
}

fn percent(ok: usize, n: usize) -> f64 {
    crate::reward::py::py_round2(ok as f64 / n as f64 * 100.0)
}

fn running_accuracy(results: &[SampleResult]) -> Option<f64> {
    let judged: Vec<_> = results.iter().filter_map(|r| r.correct).collect();
    (!judged.is_empty())
        .then(|| judged.iter().filter(|c| **c).count() as f64 * 100.0 / judged.len() as f64)
}

fn progress_bar(show: bool, todo: usize, done: usize) -> Option<indicatif::ProgressBar> {
    if !show {
        return None;
    }
    let bar = indicatif::ProgressBar::new((todo + done) as u64);
    bar.set_position(done as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} samples  {elapsed_precise} (eta {eta})  {msg}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Results of an earlier run, for resuming; a torn last line (a killed run) is dropped.
fn read_previous(dir: &Path) -> Result<Vec<SampleResult>, EvalError> {
    let path = dir.join("results.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(EvalError::Io { path, source }),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<SampleResult>(l).ok())
        .filter(|r| r.error.is_none())
        .collect())
}

/// Rewrites `results.jsonl` with the results kept (dropping torn or failed lines, which will be
/// retried) and opens it for appending.
fn open_results(dir: &Path, kept: &[SampleResult]) -> Result<(PathBuf, std::fs::File), EvalError> {
    let path = dir.join("results.jsonl");
    let io = |source| EvalError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut text = String::new();
    for r in kept {
        text.push_str(&serde_json::to_string(r).unwrap_or_default());
        text.push('\n');
    }
    let tmp = dir.join("results.jsonl.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_group_takes_the_first_of_each_group_in_order() {
        let dataset = crate::dataset::load("tasks", None).expect("tasks");
        let picked = select(&dataset, Some(2), None);
        let mut per_kind: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, s) in &picked {
            per_kind
                .entry(s.group().expect("kind"))
                .or_default()
                .push(*i);
        }
        assert_eq!(per_kind.len(), 5, "every kind: {per_kind:?}");
        for (kind, indices) in &per_kind {
            let first: Vec<usize> = dataset
                .iter()
                .enumerate()
                .filter(|(_, s)| s.group().as_deref() == Some(kind.as_str()))
                .map(|(i, _)| i)
                .take(2)
                .collect();
            assert_eq!(indices, &first, "{kind}");
        }
        assert!(picked.windows(2).all(|w| w[0].0 < w[1].0), "dataset order");
        assert_eq!(select(&dataset, Some(2), Some(3)).len(), 3);
        assert_eq!(select(&dataset, None, None).len(), dataset.len());
    }

    #[test]
    fn solution_thoughts_name_each_turns_tools_and_what_follows() {
        let dataset = crate::dataset::load("tasks", None).expect("tasks");
        let task = |id: &str| dataset.tasks().find(|t| t.id == id).expect(id);
        let thoughts = |id: &str| -> Vec<String> {
            solution_script(task(id))
                .iter()
                .map(|turn| crate::tir::parse_turn(turn).think.unwrap_or_default())
                .collect()
        };
        assert_eq!(
            thoughts("multi-0001"),
            [
                "I will call search, then unit_convert.",
                "I will call unit_convert, then answer.",
                "I have what I need.",
            ]
        );
        // A turn of two kv_store calls names the tool once.
        let kv = thoughts("kv-0006");
        assert_eq!(kv[0], "I will call kv_store, then kv_store.");
        assert_eq!(kv[2], "I will call calculator, then kv_store.");
        assert_eq!(kv.len(), task("kv-0006").solution.len() + 1);
    }
}

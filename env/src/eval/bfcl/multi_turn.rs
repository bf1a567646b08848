//! A BFCL multi-turn entry as one episode, run and scored as bfcl-eval runs and scores it, with
//! the backends in the sandbox (`.bfcl/tools/`, built by `tools/bfcl/build.sh`).
//!
//! Turns as BFCL's prompting handlers run them: the entry's user messages turn by turn; up to 20
//! model steps a turn, a step without calls ending it (more is a force-termination, the whole
//! entry wrong); miss_func's held-out functions listed nowhere before their turn and given at
//! it in BFCL's own message; the model's turns go back to it verbatim. Each call runs in the
//! episode's shared `/state` through bfcl-eval's own executor. After each turn the ground truth's
//! calls of that turn run on a second set of instances, and bfcl-eval's checks apply in its
//! order: a turn with expected calls where the model made none, then the state checker, then
//! the response checker (every ground-truth result among the model's results so far).

use super::decode::call_list;
use super::Verdict;
use crate::chat::Message;
use crate::dataset::BfclEntry;
use crate::episode::Episode;
use crate::policy::{Policy, TurnRequest};
use crate::registry::Registry;
use crate::tir::{render_call_observations, CallObservation};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};

/// bfcl-eval's `MAXIMUM_STEP_LIMIT`.
pub const MAX_STEPS: usize = 20;

/// The evaluator's own tools, which the model is never shown and may not call.
const EVALUATOR_TOOLS: &[&str] = &["bfcl_ground_truth", "bfcl_check_state"];

/// The multi-turn backends' registry, loaded once (`.bfcl/tools/config.toml`).
pub fn backends() -> Result<Arc<Registry>, String> {
    static BACKENDS: OnceLock<Result<Arc<Registry>, String>> = OnceLock::new();
    BACKENDS
        .get_or_init(|| {
            let path = crate::dataset::resolve("bfcl-multi-turn", ".bfcl/tools/config.toml")
                .map_err(|e| {
                    format!("{e}\n(tools/bfcl/build.sh builds it; scripts/setup.sh runs that)")
                })?;
            Registry::load(&path)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// What one multi-turn episode gave.
#[derive(Debug, Clone)]
pub struct MultiTurnOutcome {
    /// bfcl-eval's verdict.
    pub verdict: Verdict,
    /// Model steps taken.
    pub steps: usize,
    /// Calls the model made.
    pub calls: usize,
    /// The conversation, the system prompt left out.
    pub transcript: Vec<Message>,
}

/// `str(list_of_docs)`: how bfcl-eval's message shows held-out functions.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
            (_, _, Some(f)) => format!("{f:?}"),
            _ => n.to_string(),
        },
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32))
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The result text of one call as the model and the response checker see it.
fn result_text(outcome: &Result<Value, crate::ToolError>) -> String {
    match outcome {
        Ok(Value::String(s)) => s.clone(),
        Ok(other) => other.to_string(),
        Err(e) => format!("Error during execution: {e}"),
    }
}

async fn call(
    registry: &Arc<Registry>,
    episode: &Arc<Episode>,
    name: &str,
    args: Value,
) -> Result<Result<Value, crate::ToolError>, String> {
    let (registry, episode, name) = (registry.clone(), episode.clone(), name.to_string());
    tokio::task::spawn_blocking(move || registry.call(&episode, &name, &args))
        .await
        .map_err(|e| e.to_string())?
        .map(|o| o.result)
        .map_err(|e| e.to_string())
}

fn wrong(kind: &str, message: String) -> Verdict {
    Verdict {
        valid: false,
        error_type: Some(kind.to_string()),
        errors: vec![message],
    }
}

/// Runs `entry` (a multi-turn one) with `policy` and scores it. `Err` is a host or policy
/// failure, not the model's.
pub async fn run_multi_turn<P: Policy>(
    policy: &P,
    entry: &BfclEntry,
    system: String,
    index: u64,
    max_new_tokens: u32,
) -> Result<MultiTurnOutcome, String> {
    let setup = entry
        .multi_turn
        .as_ref()
        .ok_or_else(|| format!("{}: not a multi-turn entry", entry.id))?;
    let truth = entry
        .ground_truth
        .as_ref()
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{}: no ground truth", entry.id))?;
    let registry = backends()?;
    let episode = Arc::new(registry.episode());
    let dir = episode.state_dir("group-bfcl").map_err(|e| e.to_string())?;
    let scenario = json!({
        "id": entry.id,
        "involved_classes": setup.involved_classes,
        "initial_config": setup.initial_config,
        "long_context": entry.category.contains("long_context"),
    });
    std::fs::write(dir.join("scenario.json"), scenario.to_string()).map_err(|e| e.to_string())?;

    let mut messages = vec![Message::system(system)];
    let mut verdict = Verdict {
        valid: true,
        error_type: None,
        errors: Vec::new(),
    };
    let mut model_results: Vec<String> = Vec::new();
    let (mut steps, mut calls) = (0, 0);
    for (t, turn) in entry.turns.iter().enumerate() {
        match setup.held_out.get(&t) {
            Some(docs) => messages.push(Message::user(format!(
                "{}\nI have updated some more functions you can choose from. What about now?",
                py_repr(&Value::Array(docs.clone()))
            ))),
            None => messages.extend(turn.iter().cloned()),
        }
        let mut turn_had_calls = false;
        let mut count = 0;
        loop {
            let reply = policy
                .next_turn(TurnRequest {
                    messages: &messages,
                    max_new_tokens,
                    episode: index,
                    tools: None,
                })
                .await
                .map_err(|e| e.to_string())?;
            steps += 1;
            messages.push(Message::assistant(reply.text.clone()));
            let decoded = call_list(&reply.text);
            if decoded.is_empty() {
                break;
            }
            turn_had_calls = true;
            let mut observations = Vec::new();
            for (name, args) in decoded {
                calls += 1;
                let outcome = if EVALUATOR_TOOLS.contains(&name.as_str()) {
                    Err(crate::ToolError::UnknownTool {
                        name: name.clone(),
                        available: String::new(),
                    })
                } else {
                    call(&registry, &episode, &name, args).await?
                };
                let text = result_text(&outcome);
                model_results.push(text.clone());
                observations.push(CallObservation {
                    name,
                    outcome: Ok(Value::String(text)),
                });
            }
            messages.push(Message::user(render_call_observations(&observations)));
            count += 1;
            if count > MAX_STEPS {
                return Ok(MultiTurnOutcome {
                    verdict: wrong(
                        "multi_turn:force_terminated",
                        format!("more than {MAX_STEPS} steps in turn {t}"),
                    ),
                    steps,
                    calls,
                    transcript: messages[1..].to_vec(),
                });
            }
        }
        let expected: Vec<Value> = truth
            .get(t)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let gt = call(
            &registry,
            &episode,
            "bfcl_ground_truth",
            json!({"calls": expected}),
        )
        .await?;
        let gt_results: Vec<String> = match gt {
            Ok(Value::Array(r)) => r
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect(),
            other => return Err(format!("{}: ground truth of turn {t}: {other:?}", entry.id)),
        };
        if expected.is_empty() || !verdict.valid {
            continue;
        }
        if !turn_had_calls {
            verdict = wrong(
                "multi_turn:empty_turn_model_response",
                format!("Model response list is empty for turn {t}"),
            );
            break;
        }
        let state = call(&registry, &episode, "bfcl_check_state", json!({})).await?;
        match state {
            Ok(s) if s["valid"] == true => {}
            Ok(s) => {
                verdict = wrong(
                    s["error_type"]
                        .as_str()
                        .unwrap_or("multi_turn:instance_state_mismatch"),
                    format!(
                        "turn {t}: {}",
                        s["differences"].as_str().unwrap_or_default()
                    ),
                );
                break;
            }
            Err(e) => return Err(format!("{}: state check of turn {t}: {e}", entry.id)),
        }
        let mut pool = model_results.clone();
        let missing: Vec<&String> = gt_results
            .iter()
            .filter(|r| match pool.iter().position(|m| m == *r) {
                Some(at) => {
                    pool.remove(at);
                    false
                }
                None => true,
            })
            .collect();
        if !missing.is_empty() {
            verdict = wrong(
                "multi_turn:execution_response_mismatch",
                format!("turn {t}: missing {missing:?}"),
            );
            break;
        }
    }
    Ok(MultiTurnOutcome {
        verdict,
        steps,
        calls,
        transcript: messages[1..].to_vec(),
    })
}

//! What one tool call can end in, seen from the model's side.
//!
//! Every way a tool can fail is a [`ToolError`]: a value the rollout turns into an observation the
//! model learns from. Host faults (a state directory that cannot be created, the instance pool
//! exhausted) are a different type, [`HostError`](super::HostError), because they are ours to fix,
//! not the model's.

use serde::Serialize;
use std::time::Duration;

/// A tool call that did not produce a result. `kind()` is the stable, machine-readable name used
/// in JSONL output and trajectories; `Display` is the message shown to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool of that name is registered.
    #[error("unknown tool `{name}`; available tools: {available}")]
    UnknownTool {
        /// The name that was asked for.
        name: String,
        /// The registered names, comma-separated.
        available: String,
    },
    /// The arguments do not satisfy the tool's JSON Schema.
    #[error("invalid arguments for `{tool}`: {}", format_violations(.violations))]
    InvalidArguments {
        /// The tool that was called.
        tool: String,
        /// Each violation, with the schema's own message and where it occurred.
        violations: Vec<Violation>,
    },
    /// The tool exited 0 but its stdout is not one JSON value.
    #[error("tool `{tool}` wrote output that is not JSON ({message}): {head:?}")]
    NotJson {
        /// The tool that was called.
        tool: String,
        /// The JSON parser's message.
        message: String,
        /// The start of the output, for the reader.
        head: String,
    },
    /// The result does not satisfy the tool's declared result schema.
    #[error("tool `{tool}` returned a result its result schema rejects: {}", format_violations(.violations))]
    InvalidOutput {
        /// The tool that was called.
        tool: String,
        /// Each violation of the result schema.
        violations: Vec<Violation>,
    },
    /// The tool exited with a non-zero code; `stderr` is what it said (bounded).
    #[error("tool `{tool}` failed (exit code {code}): {}", stderr.trim())]
    Exit {
        /// The tool that was called.
        tool: String,
        /// The WASI exit code.
        code: i32,
        /// The tool's stderr, lossily decoded and bounded.
        stderr: String,
    },
    /// The guest trapped: unreachable, out-of-bounds access, stack overflow, a panic under
    /// `panic = "abort"`.
    #[error("tool `{tool}` crashed: {message}")]
    Trap {
        /// The tool that was called.
        tool: String,
        /// The trap's description.
        message: String,
    },
    /// The guest ran past its CPU budget: fuel (instructions) or wall-clock time.
    #[error("tool `{tool}` ran past its {budget} budget and was stopped")]
    Deadline {
        /// The tool that was called.
        tool: String,
        /// Which budget ran out, e.g. `fuel (100000000 units)` or `time (1000 ms)`.
        budget: String,
    },
    /// The guest asked for more linear memory (or table space) than its cap.
    #[error("tool `{tool}` tried to use more than its memory limit of {limit_bytes} bytes")]
    Memory {
        /// The tool that was called.
        tool: String,
        /// The cap in bytes.
        limit_bytes: u64,
    },
    /// The guest wrote more than its output cap to stdout or stderr.
    #[error("tool `{tool}` wrote more than {limit_bytes} bytes to {stream}")]
    OutputTooLarge {
        /// The tool that was called.
        tool: String,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The cap in bytes.
        limit_bytes: usize,
    },
}

impl ToolError {
    /// The stable machine-readable name of this error's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::UnknownTool { .. } => "unknown_tool",
            ToolError::InvalidArguments { .. } => "invalid_arguments",
            ToolError::NotJson { .. } => "not_json",
            ToolError::InvalidOutput { .. } => "invalid_output",
            ToolError::Exit { .. } => "exit",
            ToolError::Trap { .. } => "trap",
            ToolError::Deadline { .. } => "deadline",
            ToolError::Memory { .. } => "memory",
            ToolError::OutputTooLarge { .. } => "output_too_large",
        }
    }

    /// `{"kind": …, "message": …}`, the wire form used by `toolenv batch` and trajectories.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"kind": self.kind(), "message": self.to_string()})
    }
}

/// One schema violation: the validator's message and the JSON Pointer of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON Pointer into the instance (`""` is the whole arguments object).
    pub path: String,
    /// The validator's own message.
    pub message: String,
}

fn format_violations(violations: &[Violation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|v| {
            let at = if v.path.is_empty() { "/" } else { &v.path };
            format!("at {at}: {}", v.message)
        })
        .collect();
    parts.join("; ")
}

/// The result of one call plus what it cost, for trajectories and benchmarks.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The tool's JSON result, or why there is none.
    pub result: Result<serde_json::Value, ToolError>,
    /// Fuel (≈ wasm instructions) the guest consumed; 0 when it never ran.
    pub fuel_used: u64,
    /// Wall time of the whole call: validation, instantiation, run, parsing.
    pub elapsed: Duration,
}

//! The guest half of the tool contract, shared by the example tools.
//!
//! A tool is a WASI command: it reads one JSON object (its arguments) from stdin, writes one JSON
//! value (its result) to stdout and exits 0. A failure the model should see (bad expression,
//! unknown key, ...) is a message on stderr and exit code 1; the host turns that into a typed
//! tool error. This crate keeps that protocol in one place so every tool is just a function
//! `fn(args) -> Result<Value, String>`, testable natively.

pub mod number;

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{Read, Write};

/// Runs `tool` under the contract and exits the process with the contract's exit code.
///
/// Arguments are decoded into `A` (the host already validated them against the JSON Schema, so a
/// decode failure here means schema and tool disagree, and is reported as such).
pub fn run<A: DeserializeOwned>(tool: impl FnOnce(A) -> Result<Value, String>) -> ! {
    let code = match read_args::<A>().and_then(tool) {
        Ok(result) => {
            let mut out = std::io::stdout().lock();
            // A failed write (e.g. output over the host's cap) leaves nothing useful to report.
            let ok = serde_json::to_writer(&mut out, &result).is_ok() && out.flush().is_ok();
            if ok {
                0
            } else {
                2
            }
        }
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "{message}");
            1
        }
    };
    std::process::exit(code)
}

fn read_args<A: DeserializeOwned>() -> Result<A, String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read arguments from stdin: {e}"))?;
    serde_json::from_str(&input).map_err(|e| format!("arguments do not match the tool: {e}"))
}

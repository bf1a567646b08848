//! The tool's entry point: decodes the arguments, bounds the input and shapes the result.

use serde::Deserialize;
use serde_json::{json, Value};

/// Longest expression accepted, in characters; longer ones are almost surely not arithmetic.
pub const MAX_LEN: usize = 1000;

/// Arguments, as described by `schemas/tools/calculator.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The expression to evaluate, e.g. `"(1.5 + 2) * 4 ^ 2"`.
    pub expression: String,
}

/// Evaluates `args.expression` and returns `{"value": <number>}`.
pub fn calculate(args: Args) -> Result<Value, String> {
    let chars = args.expression.chars().count();
    if chars > MAX_LEN {
        return Err(format!(
            "expression too long ({chars} characters, limit {MAX_LEN})"
        ));
    }
    let tokens = crate::lexer::tokenize(&args.expression)?;
    let value = crate::eval::evaluate(&tokens, chars)?;
    Ok(json!({ "value": guest::number::to_json(value)? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(expression: &str) -> Result<Value, String> {
        calculate(Args {
            expression: expression.to_string(),
        })
    }

    #[test]
    fn result_shape() {
        assert_eq!(calc("2+3*4").unwrap(), json!({"value": 14}));
        assert_eq!(calc("7/2").unwrap(), json!({"value": 3.5}));
    }

    #[test]
    fn length_is_bounded() {
        let long = "1+".repeat(MAX_LEN / 2) + "1";
        assert!(calc(&long).unwrap_err().contains("too long"));
        let ok = "1+".repeat(MAX_LEN / 2 - 1) + "1";
        assert_eq!(calc(&ok).unwrap(), json!({"value": MAX_LEN / 2}));
    }

    #[test]
    fn args_decode_from_json() {
        let args: Args = serde_json::from_value(json!({"expression": "1"})).unwrap();
        assert_eq!(args.expression, "1");
        assert!(serde_json::from_value::<Args>(json!({"expr": "1"})).is_err());
    }

    #[test]
    fn never_panics_on_short_inputs() {
        // Every string of up to 5 characters over this alphabet: a cheap exhaustive fuzz.
        let alphabet: Vec<char> = "1.0+-*/^%() e".chars().collect();
        let mut current = vec![String::new()];
        for _ in 0..5 {
            let mut next = Vec::with_capacity(current.len() * alphabet.len());
            for prefix in &current {
                for c in &alphabet {
                    let s = format!("{prefix}{c}");
                    if let Ok(v) = calc(&s) {
                        assert!(v["value"].is_number(), "{s}: {v}");
                    }
                    next.push(s);
                }
            }
            current = next;
        }
    }
}

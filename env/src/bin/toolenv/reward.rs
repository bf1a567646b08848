//! `toolenv reward`: scores completions with the ToolRL rubric, JSONL in, JSONL out.
//!
//! Input lines are `{"text", "ground_truth", "step"?, "variant"?}` (other keys, such as `expected`
//! in the shared vectors file, are ignored); each gives one output line
//! `{"total", "format", "correctness", "length"}`, in order. Blank input lines are skipped. The first
//! bad line (not JSON, a missing field, an unknown variant, a ground truth whose calls are not JSON)
//! stops the run: the lines before it are written and flushed, then the error names the line.

use std::collections::HashMap;
use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use toolenv::reward::{GroundTruth, Rubric};
use toolenv::serve::wire::RewardItem;

/// Arguments of `toolenv reward`.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Score completions with the ToolRL reward. Reads JSONL lines \
    {\"text\", \"ground_truth\", \"step\"?, \"variant\"?} on stdin (a line's \"variant\" wins over \
    --variant; \"step\" defaults to 0; other keys are ignored) and writes one line \
    {\"total\",\"format\",\"correctness\",\"length\"} per input line, in order. Blank lines are \
    skipped. The first bad line stops the run with exit code 2 after the lines before it are \
    written."
)]
pub struct RewardArgs {
    /// Variant expression for lines without their own: names joined by `+` (default, coarse,
    /// refined, intermediate, equalmax, twostage, schedule, length, schedlength, hungarian).
    #[arg(long, default_value = "default")]
    variant: String,
}

/// Runs the subcommand; an `Err` is a bad input line (the caller exits with 2).
pub fn run(args: RewardArgs) -> anyhow::Result<ExitCode> {
    let stdin = io::stdin().lock();
    let mut out = BufWriter::new(io::stdout().lock());
    let result = score_lines(&args, stdin, &mut out);
    // Whatever was scored before a bad line reaches stdout before the error does.
    out.flush().context("writing to stdout")?;
    result.map(|()| ExitCode::SUCCESS)
}

fn score_lines(args: &RewardArgs, input: impl BufRead, out: &mut impl Write) -> anyhow::Result<()> {
    let mut rubrics: HashMap<String, Rubric> = HashMap::new();
    // A bad --variant is an error even when every line names its own.
    let flag_rubric = Rubric::for_variant(&args.variant).context("--variant")?;
    rubrics.insert(args.variant.clone(), flag_rubric);
    // Completions of one prompt usually arrive together: reuse the last ground truth read.
    let mut last_truth: Option<(String, GroundTruth)> = None;
    for (index, line) in input.lines().enumerate() {
        let n = index + 1;
        let stop = |what: String| {
            anyhow::anyhow!("input line {n}: {what}; stopped at this line, the lines before it were scored and written")
        };
        let line = line.map_err(|e| stop(format!("cannot read it: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let case: RewardItem = serde_json::from_str(&line)
            .map_err(|e| stop(format!("not a valid input object: {e}")))?;
        let variant = case.variant.as_deref().unwrap_or(&args.variant);
        if !rubrics.contains_key(variant) {
            let rubric = Rubric::for_variant(variant).map_err(|e| stop(e.to_string()))?;
            rubrics.insert(variant.to_owned(), rubric);
        }
        let rubric = &rubrics[variant];
        let truth = match &last_truth {
            Some((text, truth)) if *text == case.ground_truth => truth,
            _ => {
                let truth =
                    GroundTruth::parse(&case.ground_truth).map_err(|e| stop(e.to_string()))?;
                &last_truth.insert((case.ground_truth, truth)).1
            }
        };
        let scores = rubric.score(&case.text, truth, case.step);
        serde_json::to_writer(&mut *out, &scores)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(input: &str) -> (String, anyhow::Result<()>) {
        let args = RewardArgs {
            variant: "default".into(),
        };
        let mut out = Vec::new();
        let r = score_lines(&args, input.as_bytes(), &mut out);
        (String::from_utf8(out).unwrap(), r)
    }

    #[test]
    fn scores_and_stops_at_bad_lines() {
        let good = r#"{"text": "<think>x</think>", "ground_truth": "<think>y</think>"}"#;
        let (out, r) = run_on(&format!("{good}\n\n{good}\n"));
        r.unwrap();
        assert_eq!(out.lines().count(), 2);
        assert_eq!(
            out.lines().next().unwrap(),
            r#"{"total":1.0,"format":1.0,"correctness":0.0,"length":0.0}"#
        );
        let bad = r#"{"text": "x", "ground_truth": "<tool_call>\n{oops}\n</tool_call>"}"#;
        let (out, r) = run_on(&format!("{good}\n{bad}\n{good}\n"));
        assert_eq!(out.lines().count(), 1);
        let msg = r.unwrap_err().to_string();
        assert!(
            msg.starts_with("input line 2: ground truth: line 1 of its"),
            "{msg}"
        );
        let (_, r) = run_on(r#"{"ground_truth": ""}"#);
        assert!(r.unwrap_err().to_string().contains("missing field `text`"));
        let (_, r) = run_on(&format!(
            "{}\n",
            good.replace("}", r#", "variant": "nope"}"#)
        ));
        assert!(r.unwrap_err().to_string().contains("\"nope\""));
    }
}

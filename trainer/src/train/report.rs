//! The before/after table of a run: its first held-out evaluation (the warm start, at step 0)
//! beside its last, read back from `<out>/eval.jsonl`, so a resumed run reports the whole run.
//! Rows: accuracy overall (answers right for executable tasks, calls fully right for ToolRL
//! samples) and per task kind, the mean reward and each reward term. A figure an evaluation does
//! not have (a kind absent from one side, a term that measured nothing) is shown as `-`, never as
//! a number.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::train::episodes::EvalFigures;

/// One line of `eval.jsonl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EvalLine {
    /// The step the model had finished when it was evaluated (0: the starting model).
    pub step: u64,
    /// What the evaluation measured.
    pub eval: EvalFigures,
}

/// Every evaluation of the run in `out`, in file order.
pub fn read_evals(out: &Path) -> Result<Vec<EvalLine>> {
    let path = out.join("eval.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::InvalidInput(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// The table of `first` (the warm start when it is step 0) beside `last` (the final model), with
/// the change.
pub fn before_after_table(first: &EvalLine, last: &EvalLine) -> String {
    let (a, b) = (&first.eval, &last.eval);
    let mut rows: Vec<(String, Option<f64>, Option<f64>, bool)> =
        vec![("accuracy".into(), a.accuracy, b.accuracy, true)];
    let kinds: BTreeSet<&String> = a
        .accuracy_by_kind
        .keys()
        .chain(b.accuracy_by_kind.keys())
        .collect();
    for kind in kinds {
        rows.push((
            format!("  {kind}"),
            a.accuracy_by_kind.get(kind).copied(),
            b.accuracy_by_kind.get(kind).copied(),
            true,
        ));
    }
    rows.push((
        "mean reward".into(),
        Some(a.mean_reward),
        Some(b.mean_reward),
        false,
    ));
    let terms: BTreeSet<&String> = a.terms.keys().chain(b.terms.keys()).collect();
    for term in terms {
        rows.push((
            format!("  {term}"),
            a.terms.get(term).copied(),
            b.terms.get(term).copied(),
            false,
        ));
    }
    let figure = |v: Option<f64>, percent: bool| match v {
        Some(v) if percent => format!("{v:.2}%"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    };
    // Without an evaluation at the start (`[eval] at_start = false`) the first one is not the
    // warm start's.
    let left = match first.step {
        0 => "warm start (step 0)".to_string(),
        n => format!("first eval (step {n})"),
    };
    let right = format!("final (step {})", last.step);
    let mut table = format!(
        "{:<28} {left:>20} {right:>20} {:>10}\n",
        format!("held out: {} samples", b.samples),
        "change"
    );
    for (name, x, y, percent) in rows {
        let change = match (x, y) {
            (Some(x), Some(y)) if percent => format!("{:+.2}", y - x),
            (Some(x), Some(y)) => format!("{:+.4}", y - x),
            _ => "-".into(),
        };
        table += &format!(
            "{name:<28} {:>20} {:>20} {change:>10}\n",
            figure(x, percent),
            figure(y, percent)
        );
    }
    table
}

/// A markdown table of every evaluation of several runs (`(label, evaluations)`): one row per
/// run and step, with accuracy, mean reward and each term any of them measured (`-` where one
/// did not).
pub fn evals_markdown(runs: &[(String, Vec<EvalLine>)]) -> String {
    let terms: BTreeSet<&String> = runs
        .iter()
        .flat_map(|(_, evals)| evals.iter().flat_map(|e| e.eval.terms.keys()))
        .collect();
    let mut out = String::from("| run | step | accuracy | mean reward |");
    for t in &terms {
        out += &format!(" {t} |");
    }
    out += "\n| --- | ---: | ---: | ---: |";
    out += &" ---: |".repeat(terms.len());
    out += "\n";
    for (label, evals) in runs {
        for e in evals {
            let f = &e.eval;
            let accuracy = f.accuracy.map_or("-".into(), |a| format!("{a:.2}%"));
            out += &format!(
                "| {label} | {} | {accuracy} | {:.4} |",
                e.step, f.mean_reward
            );
            for t in &terms {
                out += &f
                    .terms
                    .get(*t)
                    .map_or(" - |".into(), |v| format!(" {v:.4} |"));
            }
            out += "\n";
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn line(step: u64, accuracy: f64, kinds: &[(&str, f64)], reward: f64) -> EvalLine {
        EvalLine {
            step,
            eval: EvalFigures {
                samples: 4,
                accuracy: Some(accuracy),
                accuracy_by_kind: kinds.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                mean_reward: reward,
                terms: BTreeMap::from([("answer_normalized_match".to_string(), reward)]),
                errors: 0,
            },
        }
    }

    #[test]
    fn the_table_sets_start_beside_end_with_the_change() {
        let first = line(0, 25.0, &[("arithmetic", 50.0), ("search", 0.0)], 0.25);
        let last = line(4, 50.0, &[("arithmetic", 100.0)], 0.5);
        let table = before_after_table(&first, &last);
        let row = |name: &str| {
            table
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
                .split_whitespace()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
        };
        assert!(table.contains("warm start (step 0)") && table.contains("final (step 4)"));
        assert_eq!(row("accuracy"), ["+25.00", "50.00%", "25.00%"]);
        assert_eq!(row("arithmetic"), ["+50.00", "100.00%", "50.00%"]);
        // A kind the final evaluation did not have is absent there, not 0.
        assert_eq!(row("search"), ["-", "-", "0.00%"]);
        assert_eq!(row("mean reward"), ["+0.2500", "0.5000", "0.2500"]);
        assert_eq!(
            row("answer_normalized_match"),
            ["+0.2500", "0.5000", "0.2500"]
        );
        // Without an evaluation at step 0 the first column is not called the warm start.
        let later = before_after_table(&line(2, 25.0, &[], 0.25), &last);
        assert!(later.contains("first eval (step 2)") && !later.contains("warm start"));
    }

    #[test]
    fn the_markdown_lists_every_run_and_step_with_absent_terms_as_dashes() {
        let mut other = line(4, 50.0, &[], 0.5);
        other.eval.terms = BTreeMap::from([("format".to_string(), 0.75)]);
        other.eval.accuracy = None;
        let md = evals_markdown(&[
            ("a".into(), vec![line(0, 25.0, &[], 0.25)]),
            ("b".into(), vec![other]),
        ]);
        let rows: Vec<&str> = md.lines().collect();
        assert_eq!(
            rows[0],
            "| run | step | accuracy | mean reward | answer_normalized_match | format |"
        );
        assert_eq!(rows[2], "| a | 0 | 25.00% | 0.2500 | 0.2500 | - |");
        assert_eq!(rows[3], "| b | 4 | - | 0.5000 | - | 0.7500 |");
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn evaluations_read_back_with_the_line_of_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let good = serde_json::json!({"step": 0, "eval": line(0, 10.0, &[], 0.1).eval});
        std::fs::write(dir.path().join("eval.jsonl"), format!("{good}\n")).unwrap();
        let evals = read_evals(dir.path()).unwrap();
        assert_eq!(evals, vec![line(0, 10.0, &[], 0.1)]);
        std::fs::write(
            dir.path().join("eval.jsonl"),
            format!("{good}\n{{\"step\": 1}}\n"),
        )
        .unwrap();
        let e = read_evals(dir.path()).unwrap_err().to_string();
        assert!(e.contains("eval.jsonl:2:"), "{e}");
    }
}

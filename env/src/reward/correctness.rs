//! The correctness reward: how well the predicted calls match the ground-truth calls.
//!
//! `S` (matched score) over `M` (its maximum) is mapped onto the correctness range. Every failure
//! the reference would raise as a Python exception (a call that is not an object, a missing
//! `name` or `parameters`, an unhashable name) is [`PyException`] here and ends in `lo`, at the same
//! point of the computation as in the reference, because earlier exits change the result.

use serde_json::{Map, Value};

use super::calls::{predicted_calls, GroundTruth};
use super::hungarian::max_weight_assignment;
use super::py::{key_iou, name_iou, py_eq, py_eq_slice, py_index, py_len, PyException};
use super::range::Range;

/// How the match score is computed: the variant switches that concern correctness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchRules {
    /// Anything short of an exact match is `lo`.
    pub coarse: bool,
    /// Lists (names, parameter keys) score only when equal.
    pub strict: bool,
    /// A call scores 1 only when equal to the ground-truth call as a whole, and `M` grows by 1 per
    /// call.
    pub whole_call: bool,
    /// Optimal (Hungarian) instead of the reference's greedy pairing. Not in the paper.
    pub optimal: bool,
}

/// Correctness of a completion against a ground truth.
pub fn correctness_reward(text: &str, truth: &GroundTruth, rules: MatchRules, r: Range) -> f64 {
    let Some(expected) = &truth.calls else {
        return 0.0;
    };
    match predicted_calls(text) {
        Some(predicted) => call_list_reward(expected, &predicted, rules, r),
        None => r.lo,
    }
}

/// Correctness of a predicted call list against the expected one (any JSON values).
pub fn call_list_reward(
    expected: &[Value],
    predicted: &[Value],
    rules: MatchRules,
    r: Range,
) -> f64 {
    if py_eq_slice(expected, predicted) {
        return r.hi;
    }
    if rules.coarse {
        return r.lo;
    }
    match match_score(expected, predicted, rules) {
        Ok((score, max)) => r.scale(score, max),
        Err(PyException) => r.lo,
    }
}

/// `(S, M)` for two call lists that are not equal.
fn match_score(
    expected: &[Value],
    predicted: &[Value],
    rules: MatchRules,
) -> Result<(f64, f64), PyException> {
    let expected_names = names(expected)?;
    let predicted_names = names(predicted)?;
    let mut score = name_iou(&expected_names, &predicted_names, rules.strict)?;
    let mut max = 1.0;
    if rules.optimal {
        let weights = pair_weights(expected, predicted, &predicted_names, rules, &mut max)?;
        for (_, _, w) in max_weight_assignment(&weights) {
            score += w;
        }
        return Ok((score, max));
    }
    let mut used = vec![false; predicted.len()];
    for g in expected {
        let g_name = py_index(g, "name")?;
        let g_params = py_index(g, "parameters")?;
        max += call_max(g_params, rules)?;
        let mut best: Option<(usize, f64)> = None;
        for (i, p) in predicted.iter().enumerate() {
            if used[i] || !py_eq(predicted_names[i], g_name) {
                continue;
            }
            if rules.whole_call {
                if py_eq(g, p) {
                    best = Some((i, 1.0));
                    break;
                }
                continue;
            }
            let s = pair_score(g_params, py_index(p, "parameters")?, rules.strict)?;
            // Strictly greater: ties keep the earliest, and a score of 0 is never picked.
            if s > best.map_or(0.0, |(_, b)| b) {
                best = Some((i, s));
            }
        }
        if let Some((i, s)) = best {
            used[i] = true;
            score += s;
        }
    }
    Ok((score, max))
}

/// `[call["name"] for call in calls]`.
fn names(calls: &[Value]) -> Result<Vec<&Value>, PyException> {
    calls.iter().map(|c| py_index(c, "name")).collect()
}

/// What one ground-truth call adds to `M`: 1, plus its parameter count unless whole calls are
/// compared (`len()` of whatever `parameters` holds, as the reference takes it).
fn call_max(g_params: &Value, rules: MatchRules) -> Result<f64, PyException> {
    if rules.whole_call {
        Ok(1.0)
    } else {
        Ok(1.0 + py_len(g_params)? as f64)
    }
}

/// Score of a same-name candidate: key-list IoU plus the number of ground-truth parameters whose
/// value it reproduces.
fn pair_score(g_params: &Value, p_params: &Value, strict: bool) -> Result<f64, PyException> {
    let g: &Map<String, Value> = g_params.as_object().ok_or(PyException)?;
    let p: &Map<String, Value> = p_params.as_object().ok_or(PyException)?;
    let iou = key_iou(g.keys(), p.keys(), strict);
    let mut values = 0.0;
    for (k, v) in g {
        if p.get(k).is_some_and(|w| py_eq(w, v)) {
            values += 1.0;
        }
    }
    Ok(iou + values)
}

/// The score of every (expected, predicted) pair with the same name, for optimal matching. Every
/// same-name pair is weighed, so a malformed candidate fails even where greedy would not reach it.
fn pair_weights(
    expected: &[Value],
    predicted: &[Value],
    predicted_names: &[&Value],
    rules: MatchRules,
    max: &mut f64,
) -> Result<Vec<Vec<f64>>, PyException> {
    let mut weights = Vec::with_capacity(expected.len());
    for g in expected {
        let g_name = py_index(g, "name")?;
        let g_params = py_index(g, "parameters")?;
        *max += call_max(g_params, rules)?;
        let mut row = vec![0.0; predicted.len()];
        for (j, p) in predicted.iter().enumerate() {
            if !py_eq(predicted_names[j], g_name) {
                continue;
            }
            row[j] = if rules.whole_call {
                if py_eq(g, p) {
                    1.0
                } else {
                    0.0
                }
            } else {
                pair_score(g_params, py_index(p, "parameters")?, rules.strict)?
            };
        }
        weights.push(row);
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const R: Range = Range::new(-3.0, 3.0);

    fn calls(v: Value) -> Vec<Value> {
        v.as_array().unwrap().clone()
    }

    #[test]
    fn exact_and_partial() {
        let g = calls(json!([{"name": "f", "parameters": {"a": 1, "b": 2}}]));
        assert_eq!(call_list_reward(&g, &g, MatchRules::default(), R), 3.0);
        let p = calls(json!([{"name": "f", "parameters": {"a": 1.0, "b": true}}]));
        // Names 1 + keys 1 + one value out of two; M = 1 + 1 + 2.
        assert_eq!(
            call_list_reward(&g, &p, MatchRules::default(), R),
            6.0 * 3.0 / 4.0 - 3.0
        );
    }

    #[test]
    fn exceptions_give_lo_only_where_python_raises() {
        let g = calls(json!([{"name": "f", "parameters": {}}]));
        let no_name = calls(json!([{"parameters": {}}]));
        assert_eq!(
            call_list_reward(&g, &no_name, MatchRules::default(), R),
            -3.0
        );
        let no_params = calls(json!([{"name": "f"}]));
        assert_eq!(
            call_list_reward(&g, &no_params, MatchRules::default(), R),
            -3.0
        );
        // A call without parameters is harmless when no ground-truth call weighs it.
        let g2 = calls(json!([
            {"name": "f", "parameters": {"x": 1}},
            {"name": "h", "parameters": {}}
        ]));
        let p2 = calls(json!([{"name": "f", "parameters": {"x": 1}}, {"name": "z"}]));
        // Names 1/3, f: 1 + 1; M = 1 + 2 + 1.
        let want = 6.0 * (1.0 / 3.0 + 2.0) / 4.0 - 3.0;
        assert_eq!(call_list_reward(&g2, &p2, MatchRules::default(), R), want);
        // A ground truth that is not a list of calls scores `lo` (unless matched exactly).
        let odd = calls(json!(["name", "parameters"]));
        assert_eq!(call_list_reward(&odd, &g, MatchRules::default(), R), -3.0);
        assert_eq!(call_list_reward(&odd, &odd, MatchRules::default(), R), 3.0);
    }

    #[test]
    fn greedy_versus_optimal() {
        // Greedy gives the first ground-truth call the candidate that the second needed more.
        let g = calls(json!([
            {"name": "f", "parameters": {"a": 1}},
            {"name": "f", "parameters": {"a": 1, "c": 5}}
        ]));
        let p = calls(json!([
            {"name": "f", "parameters": {"a": 1, "c": 5}},
            {"name": "f", "parameters": {"a": 2}}
        ]));
        let optimal = MatchRules {
            optimal: true,
            ..MatchRules::default()
        };
        // M = 1 + 2 + 3. Greedy: S = 1 + 1.5 + 0.5; optimal: S = 1 + 1 + 3.
        assert_eq!(call_list_reward(&g, &p, MatchRules::default(), R), 0.0);
        assert!((call_list_reward(&g, &p, optimal, R) - 2.0).abs() < 1e-12);
    }
}

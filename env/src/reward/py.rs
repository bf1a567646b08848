//! Python semantics the reference reward relies on, reproduced over `serde_json::Value`.
//!
//! The published ToolRL reward is Python: JSON values compare with Python's `==` (`1 == 1.0`,
//! `True == 1`), names are counted with `collections.Counter` (which fails on unhashable values),
//! text is cut with `str.strip()` / `str.split()` (Python's whitespace set) and the length term uses
//! `round(x, 2)`. Matching the reference to the last bit means matching each of these exactly.

use serde_json::{Number, Value};

/// Python's `a == b` for values decoded by `json.loads`.
///
/// Numbers compare by exact value across int and float (`1 == 1.0`, `2**53 + 1 != 2.0**53`),
/// booleans are the integers 0 and 1, objects compare regardless of key order, arrays in order,
/// strings exactly, and `null` equals only `null`.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (PyNum::of(a), PyNum::of(b)) {
            (Some(x), Some(y)) => x.eq(y),
            _ => false,
        },
    }
}

/// Python's `list_a == list_b` for lists of JSON values.
pub fn py_eq_slice(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(p, q)| py_eq(p, q))
}

/// A JSON number or boolean as Python sees it: an exact integer or a float.
#[derive(Clone, Copy)]
enum PyNum {
    Int(i128),
    Float(f64),
}

impl PyNum {
    fn of(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(Self::Int(i128::from(*b))),
            Value::Number(n) => Some(Self::of_number(n)),
            _ => None,
        }
    }

    fn of_number(n: &Number) -> Self {
        if let Some(i) = n.as_i64() {
            Self::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Self::Int(i128::from(u))
        } else {
            // serde_json keeps every non-integer (and every integer beyond 64 bits) as f64.
            Self::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    fn eq(self, other: Self) -> bool {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a == b,
            (Self::Float(a), Self::Float(b)) => a == b,
            (Self::Int(i), Self::Float(f)) | (Self::Float(f), Self::Int(i)) => float_eq_int(f, i),
        }
    }
}

/// Python compares an int with a float exactly, never by rounding the int to a float.
fn float_eq_int(f: f64, i: i128) -> bool {
    // 2^127 bounds every i128; beyond it no float can equal one.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    f.is_finite() && f.fract() == 0.0 && f.abs() < LIMIT && f as i128 == i
}

/// The reference raised a Python exception here; every one of them ends in the lowest reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PyException;

/// Python's `len(v)`: keys of an object, items of an array, code points of a string; numbers,
/// booleans and `null` have no length (`TypeError`).
pub fn py_len(v: &Value) -> Result<usize, PyException> {
    match v {
        Value::Object(m) => Ok(m.len()),
        Value::Array(a) => Ok(a.len()),
        Value::String(s) => Ok(s.chars().count()),
        _ => Err(PyException),
    }
}

/// Python's `v[key]` on a decoded JSON value: only an object with that key answers.
pub fn py_index<'a>(v: &'a Value, key: &str) -> Result<&'a Value, PyException> {
    v.as_object().and_then(|m| m.get(key)).ok_or(PyException)
}

/// The reference's `match_score(list1, list2)` on tool names: 1 if the lists are equal, 0 under
/// strict matching or if either is empty, else the multiset intersection over the multiset union.
///
/// Counting goes through `collections.Counter`, so an array or object among the names is a
/// `TypeError` (unhashable) — but only once that point is reached.
pub fn name_iou(a: &[&Value], b: &[&Value], strict: bool) -> Result<f64, PyException> {
    if a.len() == b.len() && a.iter().zip(b).all(|(p, q)| py_eq(p, q)) {
        return Ok(1.0);
    }
    if strict || a.is_empty() || b.is_empty() {
        return Ok(0.0);
    }
    if a.iter().chain(b).any(|v| v.is_array() || v.is_object()) {
        return Err(PyException);
    }
    let distinct_a = distinct(a);
    let distinct_b = distinct(b);
    let intersection: usize = distinct_a
        .iter()
        .filter_map(|(key, n)| {
            distinct_b
                .iter()
                .find(|(other, _)| py_eq(key, other))
                .map(|(_, m)| (*n).min(*m))
        })
        .sum();
    Ok(ratio(intersection, a.len() + b.len() - intersection))
}

/// Groups equal values (as `Counter` does: `1`, `1.0` and `true` are one key) with their counts.
fn distinct<'a>(values: &[&'a Value]) -> Vec<(&'a Value, usize)> {
    let mut out: Vec<(&Value, usize)> = Vec::with_capacity(values.len());
    for v in values {
        match out.iter_mut().find(|(k, _)| py_eq(k, v)) {
            Some((_, n)) => *n += 1,
            None => out.push((v, 1)),
        }
    }
    out
}

/// `match_score` on two key lists (in JSON text order). Keys of one object are distinct, so the
/// multiset intersection is a plain set intersection.
pub fn key_iou<'a, A, B>(a: A, b: B, strict: bool) -> f64
where
    A: ExactSizeIterator<Item = &'a String> + Clone,
    B: ExactSizeIterator<Item = &'a String> + Clone,
{
    let (la, lb) = (a.len(), b.len());
    if la == lb && a.clone().zip(b.clone()).all(|(p, q)| p == q) {
        return 1.0;
    }
    if strict || la == 0 || lb == 0 {
        return 0.0;
    }
    let intersection = a.filter(|k| b.clone().any(|q| q == *k)).count();
    ratio(intersection, la + lb - intersection)
}

fn ratio(intersection: usize, union: usize) -> f64 {
    if union > 0 {
        intersection as f64 / union as f64
    } else {
        0.0
    }
}

/// Python's `str.isspace()` for one character: Unicode white space plus the four information
/// separators U+001C..U+001F, which Python counts and Rust's `char::is_whitespace` does not.
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// `len(s.split())`: the number of runs of non-space characters.
pub fn py_word_count(s: &str) -> usize {
    s.split(py_is_space).filter(|w| !w.is_empty()).count()
}

/// Python's `round(x, 2)`: the exact binary value of `x` rounded to two decimals, ties to even,
/// then read back as the nearest double.
///
/// `(x * 100.0).round() / 100.0` is wrong twice over: the product is itself rounded, and ties go
/// away from zero (`round(0.125, 2)` is `0.12` in Python).
pub fn py_round2(x: f64) -> f64 {
    // At or beyond 2^52 every double is an integer, so there is nothing to round.
    if !x.is_finite() || x == 0.0 || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let bits = x.abs().to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // x = mantissa * 2^exponent exactly.
    let (mantissa, exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let hundredfold = u128::from(mantissa) * 100;
    let q = if exponent >= 0 {
        hundredfold << exponent
    } else {
        let shift = exponent.unsigned_abs();
        if shift >= 127 {
            0
        } else {
            let q = hundredfold >> shift;
            let rest = hundredfold & ((1u128 << shift) - 1);
            let half = 1u128 << (shift - 1);
            if rest > half || (rest == half && q % 2 == 1) {
                q + 1
            } else {
                q
            }
        }
    };
    // q < 2^60 here; the division of two exact values is correctly rounded, as strtod would be.
    let rounded = q as f64 / 100.0;
    if x < 0.0 {
        -rounded
    } else {
        rounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_equality() {
        assert!(py_eq(&json!(1), &json!(1.0)));
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(py_eq(&json!(false), &json!(0.0)));
        assert!(!py_eq(&json!(null), &json!(0)));
        assert!(!py_eq(&json!("1"), &json!(1)));
        assert!(py_eq(
            &json!({"a": 1, "b": [1, 2]}),
            &json!({"b": [1.0, 2], "a": true})
        ));
        assert!(!py_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(!py_eq(
            &json!(9007199254740993_i64),
            &json!(9007199254740992.0)
        ));
        assert!(py_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!py_eq(&json!(1.5), &json!(1)));
    }

    #[test]
    fn round_half_even_on_the_binary_value() {
        assert_eq!(py_round2(0.125), 0.12);
        assert_eq!(py_round2(0.375), 0.38);
        assert_eq!(py_round2(0.625), 0.62);
        assert_eq!(py_round2(2.675), 2.67);
        assert_eq!(py_round2(0.005), 0.01); // 0.005 is slightly above the tie in binary
        assert_eq!(py_round2(0.015), 0.01); // and 0.015 slightly below
        assert_eq!(py_round2(3.0 / 512.0), 0.01);
        assert_eq!(py_round2(1.0 / 3.0), 0.33);
        assert_eq!(py_round2(5e-324), 0.0);
        assert_eq!(py_round2(-0.125), -0.12);
        assert_eq!(py_round2(1e17), 1e17);
    }

    #[test]
    fn python_whitespace() {
        assert_eq!(py_strip("\u{1f} a b\u{a0}\n"), "a b");
        assert_eq!(py_word_count(" a\u{1c}b  c\u{3000}"), 3);
        assert_eq!(py_word_count(""), 0);
    }

    #[test]
    fn counter_iou() {
        let (a, b, c) = (json!("a"), json!("b"), json!(1));
        assert_eq!(name_iou(&[&a, &b], &[&a], false), Ok(0.5));
        assert_eq!(name_iou(&[&a, &b], &[&a], true), Ok(0.0));
        assert_eq!(name_iou(&[&a, &a], &[&a, &b, &a], false), Ok(2.0 / 3.0));
        assert_eq!(name_iou(&[&c], &[&json!(true), &a], false), Ok(0.5));
        assert_eq!(name_iou(&[&a], &[&json!([1])], false), Err(PyException));
        assert_eq!(name_iou(&[&a], &[&json!([1])], true), Ok(0.0));
    }
}

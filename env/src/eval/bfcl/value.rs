//! Python's values as bfcl-eval's checker sees them: what `json.loads` gives (and what its Java
//! and JavaScript converters build), with Python's `type(x)`, `==`, `in`, `len`, `str.strip` and
//! the `int()` / `float()` parsers, so that the checker's Python reads the same in Rust.
//!
//! Known gaps, none reachable from text that `serde_json` parses the way `json.loads` does:
//! integers beyond `i128` (Python's are unbounded), and `int()` of non-ASCII decimal digits
//! (Python converts them; here they are not numbers).

use serde_json::Value;

/// A Python value: the types JSON and the checker's converters produce.
#[derive(Debug, Clone)]
pub enum Py {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i128),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `list`.
    List(Vec<Py>),
    /// `dict` with string keys, in insertion order.
    Dict(Vec<(String, Py)>),
}

/// `type(x)` of a [`Py`], and the Python types the checker's tables name (`set` included: no
/// value here has it, as no JSON value does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyType {
    /// `NoneType`.
    None,
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `str`.
    Str,
    /// `list`.
    List,
    /// `dict`.
    Dict,
    /// `set`.
    Set,
}

/// A Python exception the checker would raise (`KeyError`, `TypeError`, `ValueError`, …): bfcl-eval
/// does not catch these, so a verdict cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PyError(pub String);

/// Shorthand for results that may raise.
pub type PyResult<T> = Result<T, PyError>;

impl Py {
    /// The value `json.loads` gives for `v` (integers stay `int`, `5.0` stays `float`).
    pub fn from_json(v: &Value) -> Py {
        match v {
            Value::Null => Py::None,
            Value::Bool(b) => Py::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Py::Int(i as i128),
                (None, Some(u)) => Py::Int(u as i128),
                _ => Py::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Py::Str(s.clone()),
            Value::Array(a) => Py::List(a.iter().map(Py::from_json).collect()),
            Value::Object(o) => Py::Dict(
                o.iter()
                    .map(|(k, v)| (k.clone(), Py::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// `type(self)`.
    pub fn type_of(&self) -> PyType {
        match self {
            Py::None => PyType::None,
            Py::Bool(_) => PyType::Bool,
            Py::Int(_) => PyType::Int,
            Py::Float(_) => PyType::Float,
            Py::Str(_) => PyType::Str,
            Py::List(_) => PyType::List,
            Py::Dict(_) => PyType::Dict,
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Py::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `self == other` with Python's rules: `bool`, `int` and `float` compare by value across
    /// types (`True == 1 == 1.0`), lists element by element, dicts by their key sets and values.
    pub fn py_eq(&self, other: &Py) -> bool {
        match (self.number(), other.number()) {
            (Some(a), Some(b)) => return a.eq(&b),
            (Some(_), None) | (None, Some(_)) => return false,
            (None, None) => {}
        }
        match (self, other) {
            (Py::None, Py::None) => true,
            (Py::Str(a), Py::Str(b)) => a == b,
            (Py::List(a), Py::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.py_eq(y))
            }
            (Py::Dict(a), Py::Dict(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| dict_get(b, k).is_some_and(|w| v.py_eq(w)))
            }
            _ => false,
        }
    }

    fn number(&self) -> Option<Number> {
        match self {
            Py::Bool(b) => Some(Number::Int(i128::from(*b))),
            Py::Int(i) => Some(Number::Int(*i)),
            Py::Float(f) => Some(Number::Float(*f)),
            _ => None,
        }
    }

    /// `x in self`: membership in a list, a substring of a str, a key of a dict.
    pub fn contains(&self, x: &Py) -> PyResult<bool> {
        match self {
            Py::List(items) => Ok(items.iter().any(|e| e.py_eq(x))),
            Py::Str(s) => match x {
                Py::Str(sub) => Ok(s.contains(sub.as_str())),
                _ => Err(PyError(format!(
                    "TypeError: 'in <string>' requires string as left operand, not {}",
                    x.type_of().name()
                ))),
            },
            Py::Dict(d) => Ok(match x {
                Py::Str(k) => dict_get(d, k).is_some(),
                _ => false,
            }),
            other => Err(PyError(format!(
                "TypeError: argument of type '{}' is not iterable",
                other.type_of().name()
            ))),
        }
    }

    /// `len(self)`.
    pub fn len(&self) -> PyResult<usize> {
        match self {
            Py::List(items) => Ok(items.len()),
            Py::Str(s) => Ok(s.chars().count()),
            Py::Dict(d) => Ok(d.len()),
            other => Err(PyError(format!(
                "TypeError: object of type '{}' has no len()",
                other.type_of().name()
            ))),
        }
    }

    /// Whether `len(self) == 0` (for lists, strs and dicts).
    pub fn is_empty(&self) -> PyResult<bool> {
        self.len().map(|n| n == 0)
    }

    /// `list(self)`: the items iterating over it gives (a str's characters, a dict's keys).
    pub fn iter_items(&self) -> PyResult<Vec<Py>> {
        match self {
            Py::List(items) => Ok(items.clone()),
            Py::Str(s) => Ok(s.chars().map(|c| Py::Str(c.to_string())).collect()),
            Py::Dict(d) => Ok(d.iter().map(|(k, _)| Py::Str(k.clone())).collect()),
            other => Err(PyError(format!(
                "TypeError: '{}' object is not iterable",
                other.type_of().name()
            ))),
        }
    }

    /// `self[i]` for an integer index into a list or a str.
    pub fn index(&self, i: usize) -> PyResult<Py> {
        match self {
            Py::List(items) => items
                .get(i)
                .cloned()
                .ok_or_else(|| PyError("IndexError: list index out of range".into())),
            Py::Str(s) => s
                .chars()
                .nth(i)
                .map(|c| Py::Str(c.to_string()))
                .ok_or_else(|| PyError("IndexError: string index out of range".into())),
            Py::Dict(_) => Err(PyError(format!("KeyError: {i}"))),
            other => Err(PyError(format!(
                "TypeError: '{}' object is not subscriptable",
                other.type_of().name()
            ))),
        }
    }

    /// `self[key]` for a string key into a dict.
    pub fn get(&self, key: &str) -> PyResult<Py> {
        match self {
            Py::Dict(d) => dict_get(d, key)
                .cloned()
                .ok_or_else(|| PyError(format!("KeyError: {key:?}"))),
            Py::List(_) | Py::Str(_) => Err(PyError(format!(
                "TypeError: {} indices must be integers or slices, not str",
                self.type_of().name()
            ))),
            other => Err(PyError(format!(
                "TypeError: '{}' object is not subscriptable",
                other.type_of().name()
            ))),
        }
    }
}

/// A dict's value under `key`.
pub fn dict_get<'a>(d: &'a [(String, Py)], key: &str) -> Option<&'a Py> {
    d.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `d[key] = value`: a new key goes last, an existing one keeps its place.
pub fn dict_set(d: &mut Vec<(String, Py)>, key: String, value: Py) {
    match d.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => d.push((key, value)),
    }
}

impl PyType {
    /// The type's Python name.
    pub fn name(self) -> &'static str {
        match self {
            PyType::None => "NoneType",
            PyType::Bool => "bool",
            PyType::Int => "int",
            PyType::Float => "float",
            PyType::Str => "str",
            PyType::List => "list",
            PyType::Dict => "dict",
            PyType::Set => "set",
        }
    }
}

#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    /// Python compares an int and a float exactly, not by converting the int.
    fn eq(&self, other: &Number) -> bool {
        match (*self, *other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                f.is_finite() && f.fract() == 0.0 && f.abs() < 1.0e38 && f as i128 == i
            }
        }
    }
}

/// Whether Python's `str.isspace` holds for `c` (Unicode's White_Space and the four ASCII
/// separators `\x1c`–`\x1f`).
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `s.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `s[1:-1]`, by characters.
pub fn py_inner(s: &str) -> String {
    let n = s.chars().count();
    s.chars().skip(1).take(n.saturating_sub(2)).collect()
}

/// `s[:-1]`, by characters.
pub fn py_drop_last(s: &str) -> &str {
    match s.char_indices().last() {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// `int(s)` for a str: surrounding whitespace, a sign, decimal digits with single underscores
/// between them. `None` where Python raises `ValueError`.
pub fn py_int(s: &str) -> Option<i128> {
    let t = py_strip(s);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let clean = underscored_digits(digits)?;
    let magnitude: i128 = clean.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `float(s)` for a str: Python's grammar (sign, digits with underscores, a fraction, an
/// exponent, `inf`, `infinity`, `nan` in any case). `None` where Python raises `ValueError`.
pub fn py_float(s: &str) -> Option<f64> {
    let t = py_strip(s);
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    let (mantissa, exponent) = match lower.find('e') {
        Some(at) => (&lower[..at], Some(&lower[at + 1..])),
        None => (lower.as_str(), None),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(at) => (&mantissa[..at], Some(&mantissa[at + 1..])),
        None => (mantissa, None),
    };
    let int_clean = if int_part.is_empty() {
        String::new()
    } else {
        underscored_digits(int_part)?
    };
    let frac_clean = match frac_part {
        Some("") | None => String::new(),
        Some(f) => underscored_digits(f)?,
    };
    if int_clean.is_empty() && frac_clean.is_empty() {
        return None;
    }
    let mut text = format!(
        "{}.{}",
        if int_clean.is_empty() {
            "0"
        } else {
            &int_clean
        },
        if frac_clean.is_empty() {
            "0"
        } else {
            &frac_clean
        }
    );
    if let Some(e) = exponent {
        let (esign, edigits) = match e.as_bytes().first() {
            Some(b'-') => ("-", &e[1..]),
            Some(b'+') => ("", &e[1..]),
            _ => ("", e),
        };
        text.push('e');
        text.push_str(esign);
        text.push_str(&underscored_digits(edigits)?);
    }
    text.parse::<f64>().ok().map(|f| sign * f)
}

/// ASCII digits with single underscores between digits, the underscores removed.
fn underscored_digits(s: &str) -> Option<String> {
    if s.is_empty() || s.starts_with('_') || s.ends_with('_') || s.contains("__") {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    Some(s.replace('_', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_follows_python() {
        let one = Py::from_json(&json!(1));
        assert!(one.py_eq(&Py::Bool(true)));
        assert!(one.py_eq(&Py::Float(1.0)));
        assert!(!one.py_eq(&Py::Str("1".into())));
        assert!(
            Py::from_json(&json!({"a": [1, 2.0]})).py_eq(&Py::from_json(&json!({"a": [1.0, 2]})))
        );
        assert!(!Py::Float(f64::NAN).py_eq(&Py::Float(f64::NAN)));
        assert!(!Py::Int((1 << 53) + 1).py_eq(&Py::Float((1u64 << 53) as f64)));
        assert_eq!(Py::from_json(&json!(5.0)).type_of(), PyType::Float);
        assert_eq!(Py::from_json(&json!(5)).type_of(), PyType::Int);
    }

    #[test]
    fn int_and_float_parse_as_python_does() {
        assert_eq!(py_int(" -1_000\n"), Some(-1000));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("1.0"), None);
        assert_eq!(py_int("+7"), Some(7));
        assert_eq!(py_float("1e3"), Some(1000.0));
        assert_eq!(py_float(".5"), Some(0.5));
        assert_eq!(py_float("5."), Some(5.0));
        assert_eq!(py_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(py_float("nan").unwrap().is_nan());
        assert_eq!(py_float("."), None);
        assert_eq!(py_float("1e"), None);
        assert_eq!(py_float("abc"), None);
    }
}

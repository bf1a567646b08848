//! bfcl-eval's Java and JavaScript type converters (`java_type_converter.py`,
//! `js_type_converter.py`): BFCL asks a model for Java and JavaScript arguments as strings
//! holding literals (`"50L"`, `"new ArrayList<>(Arrays.asList(\"a\"))"`, `"[1, 2]"`), and the
//! checker turns them into Python values with these regular-expression rules before comparing.
//! The rules are kept as they are, quirks included (a Java `char` is never unquoted; a
//! JavaScript object stops at its first `}`), since the verdicts must be bfcl-eval's.
//!
//! Python's `$` also matches before a final newline; patterns that end in it are written here
//! with `\n?\z`, and the two `re.sub(r"[xX]$", …)` calls by hand.

use super::value::{
    dict_set, py_drop_last, py_float, py_inner, py_int, py_strip, Py, PyError, PyResult,
};
use regex::Regex;
use std::sync::LazyLock;

macro_rules! re {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Regex> =
            LazyLock::new(|| Regex::new($pattern).expect("a valid pattern"));
    };
}

re!(INTEGER, r"\A-?\d+\n?\z");
re!(JAVA_FLOAT, r"\A-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]\n?\z");
re!(JAVA_DOUBLE, r"\A-?\d+(\.\d+)?([eE][+-]?\d+)?\n?\z");
re!(JAVA_LONG, r"\A-?\d+[lL]\n?\z");
re!(
    ARRAYLIST_ASLIST,
    r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)"
);
re!(
    ARRAYLIST_ADD,
    r"(?s)new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}"
);
re!(ADD_CALL, r"add\((.+?)\)");
re!(ARRAYLIST_EMPTY, r"new\s+ArrayList<\w*>\(\)");
re!(JAVA_ARRAY, r"new\s+\w+\[\]\s*\{(.*?)\}");
re!(
    HASHMAP,
    r"(?s)new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}"
);
re!(PUT_CALL, r#"put\("(.*?)",\s*(.*?)\)"#);
re!(HASHMAP_EMPTY, r"new\s+HashMap<.*?>\s*\(\)");
re!(JS_FLOAT, r"\A-?\d+(\.\d+)?\n?\z");
re!(JS_BIGINT, r"\A-?\d+n\n?\z");
re!(
    JS_ARRAY_2D,
    r"\A(?:\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\))"
);
re!(JS_ARRAY, r"\A(?:\[(.*?)\]|\bnew\s+Array\((.*?)\))");
re!(JS_INNER_ARRAY, r"\[(.*?)\]");
re!(JS_DICT, r"\A\{(.*?)\}");

static JS_PAIR: LazyLock<fancy_regex::Regex> = LazyLock::new(|| {
    fancy_regex::Regex::new(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)").expect("a valid pattern")
});

/// The Java types the checker converts (`JAVA_TYPE_CONVERSION`).
pub const JAVA_TYPES: &[&str] = &[
    "byte",
    "short",
    "integer",
    "float",
    "double",
    "long",
    "boolean",
    "char",
    "Array",
    "ArrayList",
    "Set",
    "HashMap",
    "Hashtable",
    "Queue",
    "Stack",
    "String",
    "any",
];

/// The JavaScript types the checker converts (`JS_TYPE_CONVERSION`).
pub const JS_TYPES: &[&str] = &[
    "String", "integer", "float", "Bigint", "Boolean", "dict", "array", "any",
];

/// `s` with one trailing `x` or `X` removed where Python's `re.sub(r"[xX]$", "", s)` removes it:
/// at the end, or before a final newline.
fn sub_trailing(s: &str, lower: char) -> String {
    let upper = lower.to_ascii_uppercase();
    let (body, newline) = match s.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (s, ""),
    };
    if let Some(b) = s.strip_suffix([lower, upper]) {
        return b.to_string();
    }
    match body.strip_suffix([lower, upper]) {
        Some(b) => format!("{b}{newline}"),
        None => s.to_string(),
    }
}

fn int_or_raise(s: &str) -> PyResult<Py> {
    py_int(s).map(Py::Int).ok_or_else(|| {
        PyError(format!(
            "ValueError: invalid literal for int() with base 10: {s:?}"
        ))
    })
}

fn float_or_raise(s: &str) -> PyResult<Py> {
    py_float(s).map(Py::Float).ok_or_else(|| {
        PyError(format!(
            "ValueError: could not convert string to float: {s:?}"
        ))
    })
}

/// `java_type_converter(value, expected_type, nested_type)`.
pub fn java(value: &str, expected: &str, nested: Option<&str>) -> PyResult<Py> {
    let text = || Py::Str(value.to_string());
    match expected {
        "byte" | "short" | "integer" => {
            if INTEGER.is_match(value) {
                int_or_raise(value)
            } else {
                Ok(text())
            }
        }
        "float" => {
            if JAVA_FLOAT.is_match(value) {
                float_or_raise(&sub_trailing(value, 'f'))
            } else {
                Ok(text())
            }
        }
        "double" => {
            if JAVA_DOUBLE.is_match(value) {
                float_or_raise(value)
            } else {
                Ok(text())
            }
        }
        "long" => {
            if JAVA_LONG.is_match(value) {
                int_or_raise(&sub_trailing(value, 'l'))
            } else {
                Ok(text())
            }
        }
        "boolean" => Ok(match value {
            "true" => Py::Bool(true),
            "false" => Py::Bool(false),
            _ => text(),
        }),
        // The checker's pattern for a char, `^\'.$\'`, can match no string.
        "char" | "String" | "any" => Ok(text()),
        "ArrayList" => java_arraylist(value, nested),
        "Array" => java_array(value, nested),
        "HashMap" => java_hashmap(value),
        "Set" | "Hashtable" => Err(PyError(
            "NotImplementedError: Set conversion is not implemented".into(),
        )),
        "Queue" | "Stack" => Err(PyError(format!(
            "NotImplementedError: {expected} conversion is not implemented"
        ))),
        other => Err(PyError(format!("ValueError: Unsupported type: {other}"))),
    }
}

fn java_element(s: &str, nested: Option<&str>) -> PyResult<Py> {
    match nested {
        Some("char") | Some("String") => Ok(Py::Str(py_inner(s))),
        Some(t) if !t.is_empty() => java(s, t, None),
        _ => java_value(s),
    }
}

fn java_arraylist(input: &str, nested: Option<&str>) -> PyResult<Py> {
    if let Some(c) = ARRAYLIST_ASLIST.captures(input) {
        return c[1]
            .split(',')
            .map(|e| java_element(py_strip(e), nested))
            .collect::<PyResult<Vec<_>>>()
            .map(Py::List);
    }
    if let Some(c) = ARRAYLIST_ADD.captures(input) {
        return ADD_CALL
            .captures_iter(&c[1])
            .map(|m| java_element(py_strip(&m[1]), nested))
            .collect::<PyResult<Vec<_>>>()
            .map(Py::List);
    }
    if ARRAYLIST_EMPTY.is_match(input) {
        return Ok(Py::List(Vec::new()));
    }
    Ok(Py::Str(input.to_string()))
}

fn java_array(input: &str, nested: Option<&str>) -> PyResult<Py> {
    let Some(c) = JAVA_ARRAY.captures(input) else {
        return Ok(Py::Str(input.to_string()));
    };
    c[1].split(',')
        .map(py_strip)
        .filter(|x| !x.is_empty())
        .map(|x| match nested {
            Some(t) if !t.is_empty() => java(x, t, None),
            _ => java_value(x),
        })
        .collect::<PyResult<Vec<_>>>()
        .map(Py::List)
}

fn java_hashmap(input: &str) -> PyResult<Py> {
    if let Some(c) = HASHMAP.captures(input) {
        let puts = &c[1];
        let mut map = Vec::new();
        if !py_strip(puts).is_empty() {
            for m in PUT_CALL.captures_iter(puts) {
                dict_set(&mut map, m[1].to_string(), java_value(py_strip(&m[2]))?);
            }
        }
        return Ok(Py::Dict(map));
    }
    if HASHMAP_EMPTY.is_match(input) {
        return Ok(Py::Dict(Vec::new()));
    }
    Ok(Py::Str(input.to_string()))
}

/// `parse_java_value`: a Java literal whose type is not given.
fn java_value(s: &str) -> PyResult<Py> {
    if s == "true" {
        return Ok(Py::Bool(true));
    }
    if s == "false" {
        return Ok(Py::Bool(false));
    }
    if s.starts_with('"') && s.ends_with('"') {
        return Ok(Py::Str(py_inner(s)));
    }
    // `int(s[:-1])`: before a final newline this drops the newline, not the `L`, and Python
    // raises.
    if JAVA_LONG.is_match(s) {
        return int_or_raise(py_drop_last(s));
    }
    if JAVA_FLOAT.is_match(s) {
        return float_or_raise(&sub_trailing(s, 'f'));
    }
    if let Some(i) = py_int(s) {
        return Ok(Py::Int(i));
    }
    if let Some(f) = py_float(s) {
        return Ok(Py::Float(f));
    }
    Ok(Py::Str(s.to_string()))
}

/// `js_type_converter(value, expected_type, nested_type)`.
pub fn js(value: &str, expected: &str, nested: Option<&str>) -> PyResult<Py> {
    let text = || Py::Str(value.to_string());
    match expected {
        "String" => {
            let quoted = (value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\''));
            Ok(if quoted {
                Py::Str(py_inner(value))
            } else {
                text()
            })
        }
        "integer" => {
            if INTEGER.is_match(value) {
                int_or_raise(value)
            } else {
                Ok(text())
            }
        }
        "float" => {
            if JS_FLOAT.is_match(value) {
                float_or_raise(value)
            } else {
                Ok(text())
            }
        }
        "Bigint" => {
            if JS_BIGINT.is_match(value) {
                int_or_raise(py_drop_last(value))
            } else {
                Ok(text())
            }
        }
        "Boolean" => Ok(match value {
            "true" => Py::Bool(true),
            "false" => Py::Bool(false),
            _ => text(),
        }),
        "dict" => Ok(js_dict(value)),
        "array" => Ok(js_array(value, nested)),
        "any" => Ok(text()),
        other => Err(PyError(format!("ValueError: Unsupported type: {other}"))),
    }
}

/// `parse_js_collection(code, "array", nested_type)`; its `try` turns any error into the text.
fn js_array(code: &str, nested: Option<&str>) -> Py {
    let code = py_strip(code);
    let fallback = || Py::Str(code.to_string());
    if let Some(m) = JS_ARRAY_2D.find(code) {
        let elements = JS_INNER_ARRAY
            .captures_iter(m.as_str())
            .enumerate()
            .map(|(idx, c)| {
                let mut inner = py_strip(&c[1]);
                if idx == 0 {
                    if let Some(rest) = inner.strip_prefix('[') {
                        inner = rest;
                    }
                }
                Py::List(inner.split(',').map(|e| js_value(py_strip(e))).collect())
            })
            .collect();
        return Py::List(elements);
    }
    let Some(c) = JS_ARRAY.captures(code) else {
        return fallback();
    };
    let body = c.get(1).or_else(|| c.get(2)).map(|g| py_strip(g.as_str()));
    let elements: Vec<&str> = match body {
        Some(b) if !b.is_empty() => b.split(',').collect(),
        _ => Vec::new(),
    };
    let converted: PyResult<Vec<Py>> = elements
        .iter()
        .map(|e| {
            let e = py_strip(e);
            match nested {
                Some(t) if !t.is_empty() && (e.starts_with('\'') || e.starts_with('"')) => {
                    js(e, t, Some("String"))
                }
                Some(t) if !t.is_empty() => js(e, t, None),
                _ => Ok(js_value(e)),
            }
        })
        .collect();
    converted.map_or_else(|_| fallback(), Py::List)
}

/// `parse_js_collection(code, "dict")`.
fn js_dict(code: &str) -> Py {
    let code = py_strip(code);
    if code == "{}" {
        return Py::Dict(Vec::new());
    }
    let Some(c) = JS_DICT.captures(code) else {
        return Py::Str(code.to_string());
    };
    let mut map = Vec::new();
    for pair in JS_PAIR.captures_iter(&c[1]) {
        let Ok(pair) = pair else {
            return Py::Str(code.to_string());
        };
        let key = py_strip(&pair[1]).trim_matches(['\'', '"']).to_string();
        let value = py_strip(&pair[2]);
        let parsed = if value.starts_with('[') && value.ends_with(']') {
            js_array(value, None)
        } else if value.starts_with('{') && value.ends_with('}') {
            js_dict(value)
        } else {
            js_value(value.trim_matches(['\'', '"']))
        };
        dict_set(&mut map, key, parsed);
    }
    Py::Dict(map)
}

/// `parse_js_value`: a JavaScript literal whose type is not given.
fn js_value(s: &str) -> Py {
    let s = py_strip(s);
    if s == "true" {
        return Py::Bool(true);
    }
    if s == "false" {
        return Py::Bool(false);
    }
    if (s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')) {
        return Py::Str(py_inner(s));
    }
    if let Some(i) = py_int(s) {
        return Py::Int(i);
    }
    if let Some(f) = py_float(s) {
        return Py::Float(f);
    }
    Py::Str(s.to_string())
}

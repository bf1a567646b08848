//! bfcl-eval's AST checker (`ast_checker.py`) for the single-turn categories, statement for
//! statement: a decoded model output (a list of `{function name: {parameter: value}}`) against
//! an entry's function docs and possible answers, giving bfcl-eval's verdict and `error_type`.
//!
//! What it checks, as bfcl-eval does: the dispatch by category (`parallel…`: the calls in any
//! order, matched greedily answer by answer; `…multiple`: the call count, then the first call;
//! otherwise exactly one call); exact types (`true` is not an integer, `5.0` is not an integer;
//! an integer is accepted for a Python float); the "variable" rule (a value of the type the
//! possible answers hold, when that differs from the documented type); strings compared after
//! standardisation (spaces and `,./-_*^` removed, lower case, `'` as `"`); lists in order; dicts
//! and lists of dicts; optional parameters through `""`; Java and JavaScript values converted
//! from their literals first ([`super::convert`]). A `KeyError` or `TypeError` that bfcl-eval's
//! code would raise on malformed docs comes back as a [`PyError`]. The verdicts are pinned to
//! bfcl-eval's own checker by `data/bfcl/checker.jsonl` and the script that wrote it.

use super::convert;
use super::value::{Py, PyError, PyResult, PyType};

/// The language an entry's functions are in; it decides how argument values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Values are JSON values, checked against Python types.
    Python,
    /// Values are strings holding Java literals.
    Java,
    /// Values are strings holding JavaScript literals.
    JavaScript,
}

impl Language {
    /// The language of a category: `simple_java` and `simple_javascript`, else Python.
    pub fn of_category(category: &str) -> Language {
        if category.contains("javascript") {
            Language::JavaScript
        } else if category.contains("java") {
            Language::Java
        } else {
            Language::Python
        }
    }
}

/// bfcl-eval's verdict on one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the output is correct.
    pub valid: bool,
    /// bfcl-eval's `error_type` for an invalid output (`simple_function_checker:wrong_count`,
    /// `type_error:simple`, `value_error:string`, …).
    pub error_type: Option<String>,
    /// What was wrong, for people.
    pub errors: Vec<String>,
}

/// The checker's working result: its dict with `valid`, `error`, `error_type`, `is_variable`.
#[derive(Debug, Clone)]
struct Check {
    valid: bool,
    errors: Vec<String>,
    error_type: Option<&'static str>,
    is_variable: bool,
}

impl Check {
    fn ok() -> Check {
        Check {
            valid: true,
            errors: Vec::new(),
            error_type: None,
            is_variable: false,
        }
    }

    fn fail(error_type: &'static str, error: String) -> Check {
        Check {
            valid: false,
            errors: vec![error],
            error_type: Some(error_type),
            is_variable: false,
        }
    }

    fn verdict(self) -> Verdict {
        Verdict {
            valid: self.valid,
            error_type: (!self.valid).then(|| self.error_type.unwrap_or("").to_string()),
            errors: self.errors,
        }
    }
}

/// `ast_checker(func_description, model_output, possible_answer, language, test_category, …)`.
/// `underscore_to_dot` is the model's setting of that name: names with dots are expected with
/// `_` instead (endpoints with native tool calling cannot take dots in names).
pub fn ast_check(
    functions: &Py,
    output: &Py,
    possible: &Py,
    language: Language,
    category: &str,
    underscore_to_dot: bool,
) -> PyResult<Verdict> {
    let ctx = Ctx {
        language,
        underscore_to_dot,
    };
    let check = if category.contains("parallel") {
        ctx.parallel_no_order(functions, output, possible)?
    } else if category.contains("multiple") {
        ctx.multiple(functions, output, possible)?
    } else if output.len()? != 1 {
        Check::fail(
            "simple_function_checker:wrong_count",
            "Wrong number of functions.".into(),
        )
    } else {
        ctx.simple(&functions.index(0)?, &output.index(0)?, &possible.index(0)?)?
    };
    Ok(check.verdict())
}

struct Ctx {
    language: Language,
    underscore_to_dot: bool,
}

/// A language's table from documented type to Python type.
type TypeTable = fn(&str) -> Option<PyType>;
/// A language's literal converter (value, documented type, item type).
type Converter = fn(&str, &str, Option<&str>) -> PyResult<Py>;

/// `PYTHON_TYPE_MAPPING`.
fn python_type(t: &str) -> Option<PyType> {
    Some(match t {
        "string" | "any" => PyType::Str,
        "integer" => PyType::Int,
        "float" => PyType::Float,
        "boolean" => PyType::Bool,
        "array" | "tuple" => PyType::List,
        "dict" => PyType::Dict,
        _ => return None,
    })
}

/// `JAVA_TYPE_CONVERSION`.
fn java_type(t: &str) -> Option<PyType> {
    Some(match t {
        "byte" | "short" | "integer" | "long" => PyType::Int,
        "float" | "double" => PyType::Float,
        "boolean" => PyType::Bool,
        "char" | "String" | "any" => PyType::Str,
        "Array" | "ArrayList" | "Queue" | "Stack" => PyType::List,
        "Set" => PyType::Set,
        "HashMap" | "Hashtable" => PyType::Dict,
        _ => return None,
    })
}

/// `JS_TYPE_CONVERSION`.
fn js_type(t: &str) -> Option<PyType> {
    Some(match t {
        "String" | "any" => PyType::Str,
        "integer" | "Bigint" => PyType::Int,
        "float" => PyType::Float,
        "Boolean" => PyType::Bool,
        "dict" => PyType::Dict,
        "array" => PyType::List,
        _ => return None,
    })
}

fn key_error(key: &str) -> PyError {
    PyError(format!("KeyError: {key:?}"))
}

/// `standardize_string`.
pub fn standardize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | ',' | '.' | '/' | '-' | '_' | '*' | '^'))
        .collect::<String>()
        .to_lowercase()
        .replace('\'', "\"")
}

fn standardized(v: &Py) -> Py {
    match v {
        Py::Str(s) => Py::Str(standardize(s)),
        other => other.clone(),
    }
}

/// `get_possible_answer_type`: the type of the first answer that is not `""`.
fn possible_answer_type(possible: &Py) -> PyResult<Option<PyType>> {
    let empty = Py::Str(String::new());
    Ok(possible
        .iter_items()?
        .into_iter()
        .find(|a| !a.py_eq(&empty))
        .map(|a| a.type_of()))
}

fn type_checker(
    value: &Py,
    possible: &Py,
    expected_description: &str,
    expected: PyType,
    nested: Option<PyType>,
) -> PyResult<Check> {
    let mut result = Check::ok();
    result.error_type = Some("type_error:simple");
    let mut is_variable = false;
    let answer_type = possible_answer_type(possible)?;
    if let Some(t) = answer_type {
        if t != expected {
            is_variable = true;
        }
    }
    if value.type_of() == expected {
        match nested {
            None => {
                result.is_variable = is_variable;
                return Ok(result);
            }
            Some(nested) => {
                for item in possible.iter_items()? {
                    let mut flag = true;
                    if item.type_of() == PyType::List {
                        for value_item in value.iter_items()? {
                            let r = type_checker(&value_item, &item, nested.name(), nested, None)?;
                            if !r.valid {
                                flag = false;
                                break;
                            }
                        }
                    }
                    if flag {
                        let mut ok = Check::ok();
                        ok.is_variable = is_variable;
                        return Ok(ok);
                    }
                }
                result.valid = false;
                result.errors = vec![format!(
                    "Nested type checking failed. Expected outer type {expected_description} \
                     with inner type {}.",
                    nested.name()
                )];
                result.error_type = Some("type_error:nested");
            }
        }
    }
    if let Some(t) = possible_answer_type(possible)? {
        if value.type_of() == t {
            result.is_variable = true;
            return Ok(result);
        }
    }
    result.valid = false;
    result.errors.push(format!(
        "Incorrect type. Expected type {expected_description}, got {}.",
        value.type_of().name()
    ));
    result.error_type = Some("type_error:simple");
    Ok(result)
}

fn string_checker(value: &str, possible: &Py) -> PyResult<Check> {
    let mut options = Vec::new();
    for i in 0..possible.len()? {
        if let Py::Str(s) = possible.index(i)? {
            options.push(Py::Str(standardize(&s)));
        }
    }
    if !Py::List(options).contains(&Py::Str(standardize(value)))? {
        return Ok(Check::fail(
            "value_error:string",
            format!("Invalid value {value:?}. Case insensitive."),
        ));
    }
    Ok(Check::ok())
}

fn list_checker(value: &Py, possible: &Py) -> PyResult<Check> {
    let mine = Py::List(value.iter_items()?.iter().map(standardized).collect());
    let mut options = Vec::new();
    for i in 0..possible.len()? {
        let option = possible.index(i)?;
        let mut items = Vec::new();
        for j in 0..option.len()? {
            items.push(standardized(&option.index(j)?));
        }
        options.push(Py::List(items));
    }
    if !Py::List(options).contains(&mine)? {
        return Ok(Check::fail(
            "value_error:list/tuple",
            "Invalid value for the list.".into(),
        ));
    }
    Ok(Check::ok())
}

fn dict_items(v: &Py) -> PyResult<&[(String, Py)]> {
    match v {
        Py::Dict(d) => Ok(d),
        other => Err(PyError(format!(
            "AttributeError: '{}' object has no attribute 'items'",
            other.type_of().name()
        ))),
    }
}

fn dict_checker(value: &Py, possibles: &Py) -> PyResult<Check> {
    let mut result = Check::fail("dict_checker:unclear", String::new());
    result.errors.clear();
    let empty = Py::Str(String::new());
    for i in 0..possibles.len()? {
        let possible = possibles.index(i)?;
        if possible.py_eq(&empty) {
            continue;
        }
        result = Check::fail("dict_checker:unclear", String::new());
        result.errors.clear();
        let mut flag = true;
        for (key, v) in dict_items(value)? {
            if !possible.contains(&Py::Str(key.clone()))? {
                result
                    .errors
                    .push(format!("Unexpected dict key parameter: '{key}'."));
                result.error_type = Some("value_error:dict_key");
                flag = false;
                break;
            }
            let mine = standardized(v);
            let options = possible.get(key)?;
            let mut standard = Vec::new();
            for j in 0..options.len()? {
                standard.push(standardized(&options.index(j)?));
            }
            if !Py::List(standard).contains(&mine)? {
                result
                    .errors
                    .push(format!("Invalid value for parameter {key:?}."));
                result.error_type = Some("value_error:dict_value");
                flag = false;
                break;
            }
        }
        for (key, options) in dict_items(&possible)? {
            if !value.contains(&Py::Str(key.clone()))? && !options.contains(&empty)? {
                result
                    .errors
                    .push(format!("Missing dict key parameter: '{key}'."));
                result.error_type = Some("value_error:dict_key");
                flag = false;
                break;
            }
        }
        if flag {
            return Ok(Check::ok());
        }
    }
    Ok(result)
}

fn list_dict_checker(value: &Py, possibles: &Py) -> PyResult<Check> {
    let mut result = Check::fail("list_dict_checker:unclear", String::new());
    result.errors.clear();
    for a in 0..possibles.len()? {
        let answer = possibles.index(a)?;
        let mut flag = true;
        if value.len()? != answer.len()? {
            result = Check::fail(
                "value_error:list_dict_count",
                "Wrong number of dictionaries in the list.".into(),
            );
            continue;
        }
        for d in 0..value.len()? {
            result = dict_checker(&value.index(d)?, &Py::List(vec![answer.index(d)?]))?;
            if !result.valid {
                flag = false;
                break;
            }
        }
        if flag {
            return Ok(Check::ok());
        }
    }
    Ok(result)
}

/// `find_description`: the doc named `name` in a list of docs (a dict is the only doc).
fn find_description(functions: &Py, name: &str) -> PyResult<Option<Py>> {
    match functions {
        Py::List(docs) => {
            for doc in docs {
                if doc.get("name")?.py_eq(&Py::Str(name.to_string())) {
                    return Ok(Some(doc.clone()));
                }
            }
            Ok(None)
        }
        other => Ok(Some(other.clone())),
    }
}

fn first_key(d: &Py) -> PyResult<String> {
    match d {
        Py::Dict(items) => items
            .first()
            .map(|(k, _)| k.clone())
            .ok_or_else(|| PyError("IndexError: list index out of range".into())),
        other => Err(PyError(format!(
            "AttributeError: '{}' object has no attribute 'keys'",
            other.type_of().name()
        ))),
    }
}

impl Ctx {
    fn convert_name(&self, name: &str) -> String {
        if name.contains('.') && self.underscore_to_dot {
            name.replace('.', "_")
        } else {
            name.to_string()
        }
    }

    fn simple(&self, doc: &Py, output: &Py, possible: &Py) -> PyResult<Check> {
        let possible = match possible {
            Py::Dict(items) => items
                .first()
                .map(|(_, v)| v.clone())
                .ok_or_else(|| PyError("IndexError: list index out of range".into()))?,
            Py::None => {
                return Err(PyError(
                    "TypeError: 'NoneType' object is not subscriptable".into(),
                ))
            }
            other => {
                return Err(PyError(format!(
                    "AttributeError: '{}' object has no attribute 'values'",
                    other.type_of().name()
                )))
            }
        };
        if let Py::None = doc {
            return Err(PyError(
                "TypeError: 'NoneType' object is not subscriptable".into(),
            ));
        }
        let name = doc.get("name")?;
        let parameters = doc.get("parameters")?;
        let details = parameters.get("properties")?;
        let required = parameters.get("required")?;
        let name = self.convert_name(
            name.as_str()
                .ok_or_else(|| PyError("TypeError: a function name that is not a str".into()))?,
        );
        if !output.contains(&Py::Str(name.clone()))? {
            return Ok(Check::fail(
                "simple_function_checker:wrong_func_name",
                format!("Function name {name:?} not found in model output."),
            ));
        }
        let params = output.get(&name)?;
        for param in required.iter_items()? {
            if !params.contains(&param)? {
                return Ok(Check::fail(
                    "simple_function_checker:missing_required",
                    format!("Missing required parameter: {param:?}."),
                ));
            }
        }
        for (param, value) in dict_items(&params)? {
            let key = Py::Str(param.clone());
            if !details.contains(&key)? || !possible.contains(&key)? {
                return Ok(Check::fail(
                    "simple_function_checker:unexpected_param",
                    format!("Unexpected parameter: {param:?}."),
                ));
            }
            let detail = details.get(param)?;
            let description = detail.get("type")?;
            let description = description.as_str().ok_or_else(|| key_error("type"))?;
            let options = possible.get(param)?;
            let mut value = value.clone();
            let mut nested = None;
            let expected = match self.language {
                Language::Java | Language::JavaScript => {
                    let (table, convert, error_type): (TypeTable, Converter, &'static str) =
                        if self.language == Language::Java {
                            (java_type, convert::java, "type_error:java")
                        } else {
                            (js_type, convert::js, "type_error:js")
                        };
                    let expected = table(description).ok_or_else(|| key_error(description))?;
                    let Py::Str(text) = &value else {
                        return Ok(Check::fail(
                            error_type,
                            format!(
                                "Incorrect type for parameter {param:?}. Expected type String, got {}.",
                                value.type_of().name()
                            ),
                        ));
                    };
                    let text = text.clone();
                    if matches!(description, "Array" | "ArrayList" | "array") {
                        let item = detail.get("items")?.get("type")?;
                        let item = item.as_str().ok_or_else(|| key_error("type"))?.to_string();
                        nested = Some(table(&item).ok_or_else(|| key_error(&item))?);
                        value = convert(&text, description, Some(&item))?;
                    } else {
                        value = convert(&text, description, None)?;
                    }
                    expected
                }
                Language::Python => {
                    let expected =
                        python_type(description).ok_or_else(|| key_error(description))?;
                    if matches!(description, "array" | "tuple") {
                        let item = detail.get("items")?.get("type")?;
                        let item = item.as_str().ok_or_else(|| key_error("type"))?.to_string();
                        nested = Some(python_type(&item).ok_or_else(|| key_error(&item))?);
                    }
                    expected
                }
            };
            if self.language == Language::Python && description == "float" {
                if let Py::Int(i) = value {
                    value = Py::Float(i as f64);
                }
            }
            let typed = type_checker(&value, &options, description, expected, nested)?;
            if !typed.valid {
                return Ok(typed);
            }
            if !typed.is_variable {
                let special = if expected == PyType::Dict {
                    Some(dict_checker(&value, &options)?)
                } else if expected == PyType::List && nested == Some(PyType::Dict) {
                    Some(list_dict_checker(&value, &options)?)
                } else if expected == PyType::Str {
                    let text = value.as_str().unwrap_or_default().to_string();
                    Some(string_checker(&text, &options)?)
                } else if expected == PyType::List {
                    Some(list_checker(&value, &options)?)
                } else {
                    None
                };
                if let Some(r) = special {
                    if !r.valid {
                        return Ok(r);
                    }
                    continue;
                }
            }
            if !options.contains(&value)? {
                return Ok(Check::fail(
                    "value_error:others",
                    format!("Invalid value for parameter {param:?}."),
                ));
            }
        }
        let empty = Py::Str(String::new());
        for (param, options) in dict_items(&possible)? {
            if !params.contains(&Py::Str(param.clone()))? && !options.contains(&empty)? {
                return Ok(Check::fail(
                    "simple_function_checker:missing_optional",
                    format!(
                        "Optional parameter {param:?} not provided and not marked as optional."
                    ),
                ));
            }
        }
        Ok(Check::ok())
    }

    fn parallel_no_order(&self, functions: &Py, output: &Py, possibles: &Py) -> PyResult<Check> {
        if output.len()? != possibles.len()? {
            return Ok(Check::fail(
                "parallel_function_checker_no_order:wrong_count",
                "Wrong number of functions.".into(),
            ));
        }
        let mut matched: Vec<usize> = Vec::new();
        let mut last: Option<Check> = None;
        for i in 0..possibles.len()? {
            let possible = possibles.index(i)?;
            let expected = first_key(&possible)?;
            let doc = find_description(functions, &expected)?.unwrap_or(Py::None);
            for index in 0..output.len()? {
                if matched.contains(&index) {
                    continue;
                }
                let r = self.simple(&doc, &output.index(index)?, &possible)?;
                let valid = r.valid;
                last = Some(r);
                if valid {
                    matched.push(index);
                    break;
                }
            }
            // `result` is the last call's, as in the Python loop; with none yet it is unbound.
            let Some(result) = &last else {
                return Err(PyError(
                    "UnboundLocalError: local variable 'result' referenced before assignment"
                        .into(),
                ));
            };
            if !result.valid {
                return Ok(Check::fail(
                    "parallel_function_checker_no_order:cannot_find_match",
                    format!(
                        "Could not find a matching function among the model output for index {i} of possible answers."
                    ),
                ));
            }
        }
        Ok(Check::ok())
    }

    fn multiple(&self, functions: &Py, output: &Py, possibles: &Py) -> PyResult<Check> {
        if output.len()? != possibles.len()? {
            return Ok(Check::fail(
                "multiple_function_checker:wrong_count",
                "Wrong number of functions.".into(),
            ));
        }
        let possible = possibles.index(0)?;
        let expected = first_key(&possible)?;
        let doc = find_description(functions, &expected)?.unwrap_or(Py::None);
        self.simple(&doc, &output.index(0)?, &possible)
    }
}

//! One BFCL entry scored as bfcl-eval scores it, what the model is shown of its functions, and
//! BFCL v4's aggregate scores.
//!
//! - Relevance and irrelevance: whether the output holds a call at all (bfcl-eval's
//!   `is_empty_output`: no call, or only `{}`, is no call).
//! - Every other single-turn category: the AST checker ([`super::ast_check`]).
//! - The prompt shows the docs as bfcl-eval's inference does (`add_language_specific_hint_to_function_doc`):
//!   a hint on the language after each description, and for Java and JavaScript every parameter
//!   typed as a string with its real type in words, since those values are literals in strings.
//! - Native tool calling (`fc`) gets the docs as an OpenAI `tools` array, types mapped as
//!   bfcl-eval maps them (`dict` → `object`, `float` → `number`, …) and dots in names replaced by
//!   `_`, which the checker is then told to expect.

use super::checker::{ast_check, Language, Verdict};
use super::value::Py;
use crate::dataset::BfclEntry;
use crate::tooldef::ToolDef;
use serde_json::{json, Map, Value};

/// The verdict on one entry's decoded output (`calls`, bfcl-eval's decoded form).
/// `underscore_to_dot`: the calls name functions with `_` for `.` (native tool calling).
pub fn score_entry(entry: &BfclEntry, calls: &Py, underscore_to_dot: bool) -> Verdict {
    if entry.is_relevance() {
        let contains_call = calls.iter_items().is_ok_and(|items| {
            !(items.is_empty() || items.len() == 1 && items[0].is_empty().unwrap_or(false))
        });
        let irrelevance = entry.category.contains("irrelevance");
        let valid = contains_call != irrelevance;
        return Verdict {
            valid,
            error_type: (!valid).then(|| {
                if irrelevance {
                    "irrelevance_error:decoder_success".to_string()
                } else {
                    "relevance_error:decoder_failed".to_string()
                }
            }),
            errors: Vec::new(),
        };
    }
    let functions = Py::from_json(&Value::Array(entry.functions.clone()));
    let possible = entry.ground_truth.as_ref().map_or(Py::None, Py::from_json);
    let language = Language::of_category(&entry.category);
    match ast_check(
        &functions,
        calls,
        &possible,
        language,
        &entry.category,
        underscore_to_dot,
    ) {
        Ok(v) => v,
        Err(e) => Verdict {
            valid: false,
            error_type: Some("checker_exception".into()),
            errors: vec![e.0],
        },
    }
}

fn hint(category: &str) -> &'static str {
    match Language::of_category(category) {
        Language::Java => " Note that the provided function is in Java 8 SDK syntax.",
        Language::JavaScript => " Note that the provided function is in JavaScript syntax.",
        Language::Python => " Note that the provided function is in Python 3 syntax.",
    }
}

/// The entry's functions as the prompt shows them (bfcl-eval's language-specific hints).
pub fn prompt_functions(entry: &BfclEntry) -> Vec<ToolDef> {
    let language = Language::of_category(&entry.category);
    entry
        .functions
        .iter()
        .map(|f| {
            let mut f = f.clone();
            let description = f.get("description").and_then(Value::as_str).unwrap_or("");
            let description = format!("{description}{}", hint(&entry.category));
            if let Some(props) = f
                .get_mut("parameters")
                .and_then(|p| p.get_mut("properties"))
                .and_then(Value::as_object_mut)
            {
                for (_, value) in props.iter_mut() {
                    retype_for_language(value, language);
                }
            }
            ToolDef {
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                description,
                parameters: f.get("parameters").cloned().unwrap_or_else(|| json!({})),
            }
        })
        .collect()
}

/// `_func_doc_language_specific_pre_processing` for one Java or JavaScript parameter.
fn retype_for_language(value: &mut Value, language: Language) {
    let (lang, is_list): (&str, fn(&str) -> bool) = match language {
        Language::Python => return,
        Language::Java => ("Java", |t| t == "ArrayList" || t == "Array"),
        Language::JavaScript => ("JavaScript", |t| t == "array"),
    };
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    let ty = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut description = obj
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if ty == "any" {
        description.push_str(&format!(
            " This parameter can be of any type of {lang} object in string representation."
        ));
    } else {
        description.push_str(&format!(
            " This is {lang} {ty} type parameter in string representation."
        ));
    }
    if is_list(&ty) {
        let item = obj
            .get("items")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        description.push_str(&format!(
            " The list elements are of type {item}; they are not in string representation."
        ));
        obj.remove("items");
    }
    if language == Language::JavaScript && ty == "dict" {
        if let Some(props) = obj.remove("properties") {
            description.push_str(&format!(
                " The dictionary entries have the following schema; they are not in string \
                 representation. {}",
                crate::tir::to_python_json(&props)
            ));
        }
    }
    obj.insert("description".into(), Value::String(description));
    obj.insert("type".into(), Value::String("string".into()));
}

/// bfcl-eval's `GORILLA_TO_OPENAPI`.
fn openapi_type(t: &str) -> &str {
    match t {
        "float" | "double" | "number" => "number",
        "integer" | "byte" | "short" | "long" | "Bigint" => "integer",
        "boolean" | "bool" => "boolean",
        "array" | "list" | "tuple" | "ArrayList" | "Array" | "Queue" | "Stack" => "array",
        "dict" | "object" | "HashMap" | "Hashtable" => "object",
        _ => "string",
    }
}

fn to_openapi(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        let mapped = openapi_type(t).to_string();
        obj.insert("type".into(), Value::String(mapped));
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        for (_, p) in props.iter_mut() {
            to_openapi(p);
        }
    }
    if let Some(items) = obj.get_mut("items") {
        to_openapi(items);
    }
}

/// The entry's functions as an OpenAI `tools` array, for endpoints with native tool calling.
pub fn openai_tools(entry: &BfclEntry) -> Vec<Value> {
    prompt_functions(entry)
        .into_iter()
        .map(|mut f| {
            to_openapi(&mut f.parameters);
            json!({
                "type": "function",
                "function": {
                    "name": f.name.replace('.', "_"),
                    "description": f.description,
                    "parameters": f.parameters,
                }
            })
        })
        .collect()
}

/// One category's tally: entries right and entries run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Entries scored correct.
    pub correct: usize,
    /// Entries run, failed ones included.
    pub total: usize,
}

impl Tally {
    fn accuracy(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// Every category's accuracy and BFCL v4's aggregates, in percent with two decimals, as
/// bfcl-eval's `generate_leaderboard_csv` computes them. An aggregate is given only when every
/// category it is made of was run (bfcl-eval shows it as N/A otherwise):
/// - `non_live`: the unweighted mean of simple (itself the mean of simple_python, simple_java
///   and simple_javascript), multiple, parallel and parallel_multiple;
/// - `live`: the four live AST categories weighted by their entry counts;
/// - `irrelevance_detection`: the mean of irrelevance and live_irrelevance;
/// - `multi_turn`: the mean of the four multi-turn categories.
///
/// v4's overall also weights agentic categories (web search, memory) at 40%; they are not run,
/// so there is no overall.
pub fn aggregates(tallies: &[(String, Tally)]) -> Map<String, Value> {
    let get = |c: &str| tallies.iter().find(|(k, _)| k == c).map(|(_, t)| *t);
    let all = |cs: &[&str]| cs.iter().map(|c| get(c)).collect::<Option<Vec<Tally>>>();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let mut out = Map::new();
    for (category, tally) in tallies {
        out.insert(category.clone(), json!(percent(tally.accuracy())));
    }
    if let Some(t) = all(&[
        "simple_python",
        "simple_java",
        "simple_javascript",
        "multiple",
        "parallel",
        "parallel_multiple",
    ]) {
        let simple = mean(&[t[0].accuracy(), t[1].accuracy(), t[2].accuracy()]);
        let non_live = mean(&[simple, t[3].accuracy(), t[4].accuracy(), t[5].accuracy()]);
        out.insert("simple".into(), json!(percent(simple)));
        out.insert("non_live".into(), json!(percent(non_live)));
    }
    if let Some(t) = all(&[
        "live_simple",
        "live_multiple",
        "live_parallel",
        "live_parallel_multiple",
    ]) {
        let correct: usize = t.iter().map(|x| x.correct).sum();
        let total: usize = t.iter().map(|x| x.total).sum();
        out.insert(
            "live".into(),
            json!(percent(Tally { correct, total }.accuracy())),
        );
    }
    if let Some(t) = all(&["irrelevance", "live_irrelevance"]) {
        out.insert(
            "irrelevance_detection".into(),
            json!(percent(mean(&[t[0].accuracy(), t[1].accuracy()]))),
        );
    }
    if let Some(t) = all(crate::dataset::bfcl::MULTI_TURN) {
        let accs: Vec<f64> = t.iter().map(|x| x.accuracy()).collect();
        out.insert("multi_turn".into(), json!(percent(mean(&accs))));
    }
    out
}

fn percent(fraction: f64) -> f64 {
    crate::reward::py::py_round2(fraction * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_follow_bfcl() {
        let t = |c: usize, n: usize| Tally {
            correct: c,
            total: n,
        };
        let tallies: Vec<(String, Tally)> = [
            ("simple_python", t(1, 2)),
            ("simple_java", t(1, 4)),
            ("simple_javascript", t(0, 1)),
            ("multiple", t(1, 1)),
            ("parallel", t(0, 1)),
            ("parallel_multiple", t(1, 2)),
            ("live_simple", t(1, 1)),
            ("live_multiple", t(1, 3)),
            ("live_parallel", t(0, 0)),
            ("live_parallel_multiple", t(0, 0)),
            ("irrelevance", t(1, 1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let a = aggregates(&tallies);
        assert_eq!(a["simple"], json!(25.0));
        assert_eq!(a["non_live"], json!(43.75));
        assert_eq!(a["live"], json!(50.0));
        assert!(!a.contains_key("irrelevance_detection"));
        assert!(!a.contains_key("multi_turn"));
        assert_eq!(a["simple_java"], json!(25.0));
    }
}

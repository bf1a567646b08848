//! `toolenv._native`: the Rust side of the Python package. It exposes the registry, sessions
//! (episodes), the rollout loop's step, the ToolRL reward and the TIR codec, with JSON text as the
//! interchange (the Python layer, `toolenv/__init__.py`, turns it into dicts and typed results).
//!
//! The GIL is released while a call or step runs, so Python threads calling at once use every
//! core; it is taken back as `gil` describes, without a sleep in the kernel where it can. Nothing
//! the model wrote raises: a bad call is a typed error in the result. What the caller got wrong (a
//! missing config, arguments that are not JSON) raises `ValueError` or `OSError` with what and
//! where; a panic never crosses the boundary (PyO3 turns one into `PanicException`).

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use toolenv::config::ConfigError;
use toolenv::reward::{GroundTruth, Rubric};
use toolenv::rollout::{Roller, RolloutConfig};
use toolenv::serve::wire;
use toolenv::tir::{parse_turn as parse, ToolCall};
use toolenv::{Episode, LoadError, Registry};

mod gil;

/// A Python value as JSON: dicts with str keys, lists and tuples, str, int, float, bool, None.
/// Anything else is a `TypeError` naming where it is (`arguments["a"][2]`).
fn to_json(value: &Bound<'_, PyAny>, at: &mut String) -> PyResult<Value> {
    if value.is_none() {
        Ok(Value::Null)
    } else if let Ok(b) = value.cast::<PyBool>() {
        Ok(Value::Bool(b.is_true()))
    } else if let Ok(i) = value.cast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(n) => Ok(json!(n)),
            Err(_) => i.extract::<u64>().map(|n| json!(n)).map_err(|_| {
                PyValueError::new_err(format!("{at}: integer out of the 64-bit range"))
            }),
        }
    } else if let Ok(f) = value.cast::<PyFloat>() {
        serde_json::Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| {
                PyValueError::new_err(format!("{at}: {} is not a JSON number", f.value()))
            })
    } else if let Ok(s) = value.cast::<PyString>() {
        Ok(Value::String(s.to_str()?.to_owned()))
    } else if let Ok(d) = value.cast::<PyDict>() {
        let mut map = serde_json::Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!("{at}: keys must be str, got {}", type_name(&k)))
            })?;
            let key = key.to_str()?.to_owned();
            let len = at.len();
            at.push_str(&format!("[{key:?}]"));
            let v = to_json(&v, at)?;
            at.truncate(len);
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    } else if value.cast::<PyList>().is_ok() || value.cast::<PyTuple>().is_ok() {
        let mut items = Vec::new();
        for (i, v) in value.try_iter()?.enumerate() {
            let len = at.len();
            at.push_str(&format!("[{i}]"));
            items.push(to_json(&v?, at)?);
            at.truncate(len);
        }
        Ok(Value::Array(items))
    } else {
        Err(PyTypeError::new_err(format!(
            "{at}: {} is not JSON (dict, list, str, int, float, bool or None)",
            type_name(value)
        )))
    }
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

/// JSON as Python values.
fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for v in items {
                list.append(to_py(py, v)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Why a call gave no result: a stable `kind` and the message the model would be shown.
#[pyclass(frozen, eq, module = "toolenv._native")]
#[derive(PartialEq, Clone)]
struct ToolError {
    #[pyo3(get)]
    kind: String,
    #[pyo3(get)]
    message: String,
}

#[pymethods]
impl ToolError {
    #[new]
    fn new(kind: String, message: String) -> Self {
        ToolError { kind, message }
    }

    fn __repr__(&self) -> String {
        format!(
            "ToolError(kind={:?}, message={:?})",
            self.kind, self.message
        )
    }
}

/// One call's outcome: `ok` (the tool's JSON result, as Python values) or `error`, with the fuel
/// and microseconds it took.
#[pyclass(frozen, module = "toolenv._native")]
struct CallResult {
    #[pyo3(get)]
    ok: Py<PyAny>,
    #[pyo3(get)]
    error: Option<Py<ToolError>>,
    #[pyo3(get)]
    fuel: u64,
    #[pyo3(get)]
    us: u64,
}

#[pymethods]
impl CallResult {
    #[new]
    #[pyo3(signature = (ok=None, error=None, fuel=0, us=0))]
    fn new(
        ok: Option<Py<PyAny>>,
        error: Option<Py<ToolError>>,
        fuel: u64,
        us: u64,
        py: Python<'_>,
    ) -> Self {
        CallResult {
            ok: ok.unwrap_or_else(|| py.None()),
            error,
            fuel,
            us,
        }
    }

    /// Whether the call gave a result.
    #[getter]
    fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>, py: Python<'_>) -> PyResult<bool> {
        let Ok(other) = other.cast::<CallResult>() else {
            return Ok(false);
        };
        let other = other.get();
        let errors_equal = match (&self.error, &other.error) {
            (None, None) => true,
            (Some(a), Some(b)) => a.get() == b.get(),
            _ => false,
        };
        Ok(errors_equal && self.fuel == other.fuel && self.ok.bind(py).eq(other.ok.bind(py))?)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let error = match &self.error {
            Some(e) => e.get().__repr__(),
            None => "None".into(),
        };
        Ok(format!(
            "CallResult(ok={}, error={error}, fuel={}, us={})",
            self.ok.bind(py).repr()?,
            self.fuel,
            self.us
        ))
    }
}

fn load_error(e: LoadError) -> PyErr {
    match e {
        LoadError::Config(ConfigError::Io { .. }) => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// The registry of tools a config describes.
#[pyclass(frozen, module = "toolenv._native")]
struct Env {
    roller: Arc<Roller>,
    runtime: Arc<tokio::runtime::Runtime>,
}

#[pymethods]
impl Env {
    #[new]
    #[pyo3(signature = (config_path, tools=None, max_turns=None, max_calls_per_turn=None))]
    fn new(
        py: Python<'_>,
        config_path: PathBuf,
        tools: Option<Vec<String>>,
        max_turns: Option<u32>,
        max_calls_per_turn: Option<usize>,
    ) -> PyResult<Self> {
        let registry = py
            .detach(|| Registry::load_selecting(&config_path, tools.as_deref()))
            .map_err(load_error)?;
        let defaults = RolloutConfig::default();
        let config = RolloutConfig {
            max_turns: max_turns.unwrap_or(defaults.max_turns),
            max_calls_per_turn: max_calls_per_turn.unwrap_or(defaults.max_calls_per_turn),
            ..defaults
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("starting the async runtime: {e}")))?;
        Ok(Env {
            roller: Arc::new(Roller::new(Arc::new(registry), config)),
            runtime: Arc::new(runtime),
        })
    }

    /// The OpenAI `tools` array, as JSON text.
    fn tools_json(&self) -> String {
        Value::Array(self.roller.registry().openai_tools()).to_string()
    }

    /// A new session (episode) with its own tool state.
    #[pyo3(signature = (id=None, seed=None))]
    fn session(&self, id: Option<String>, seed: Option<u64>) -> Session {
        let registry = self.roller.registry();
        let episode = match seed {
            Some(seed) => registry.episode_with_seed(seed),
            None => registry.episode(),
        };
        Session {
            id: id.unwrap_or_default(),
            seed: episode.seed(),
            episode: Mutex::new(Some(Arc::new(episode))),
            roller: self.roller.clone(),
            runtime: self.runtime.clone(),
            turns: AtomicUsize::new(0),
        }
    }
}

/// One episode: calls made in it share the state of stateful tools.
#[pyclass(frozen, module = "toolenv._native")]
struct Session {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    seed: u64,
    episode: Mutex<Option<Arc<Episode>>>,
    roller: Arc<Roller>,
    runtime: Arc<tokio::runtime::Runtime>,
    turns: AtomicUsize,
}

impl Session {
    fn episode(&self) -> PyResult<Arc<Episode>> {
        self.episode
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err("the session is closed"))
    }
}

#[pymethods]
impl Session {
    /// Calls `name` with `arguments` (a dict, or a JSON string holding an object). What the model
    /// got wrong is in the result's `error`; arguments that are not JSON raise.
    fn call(
        &self,
        py: Python<'_>,
        name: &str,
        arguments: &Bound<'_, PyAny>,
    ) -> PyResult<CallResult> {
        let value = if let Ok(text) = arguments.cast::<PyString>() {
            serde_json::from_str(text.to_str()?)
                .map_err(|e| PyValueError::new_err(format!("arguments: not JSON: {e}")))?
        } else if arguments.cast::<PyDict>().is_ok() {
            to_json(arguments, &mut "arguments".to_string())?
        } else {
            return Err(PyTypeError::new_err(format!(
                "arguments must be a dict or a JSON string, got {}",
                type_name(arguments)
            )));
        };
        let episode = self.episode()?;
        let registry = self.roller.registry();
        let args = match value {
            Value::Object(_) => value,
            // The registry's typing of a non-object, as the rollout and the server give it.
            other => match wire::arguments(Some(&other)) {
                Ok(map) => Value::Object(map),
                Err(message) => {
                    let error = Py::new(py, ToolError::new("parse".into(), message))?;
                    return Ok(CallResult::new(None, Some(error), 0, 0, py));
                }
            },
        };
        let outcome = gil::detach(py, || registry.call(&episode, name, &args))
            .map_err(|e| PyRuntimeError::new_err(format!("host fault: {e}")))?;
        let us = outcome.elapsed.as_micros() as u64;
        Ok(match &outcome.result {
            Ok(v) => CallResult::new(
                Some(to_py(py, v)?.unbind()),
                None,
                outcome.fuel_used,
                us,
                py,
            ),
            Err(e) => {
                let error = Py::new(py, ToolError::new(e.kind().into(), e.to_string()))?;
                CallResult::new(None, Some(error), outcome.fuel_used, us, py)
            }
        })
    }

    /// Runs one assistant turn through the rollout loop's step; JSON text of `{"turn",
    /// "observation", "calls", "results", "errors", "done", "stop"}` (what `toolenv serve`'s
    /// `/step` answers).
    fn step_json(&self, py: Python<'_>, text: &str) -> PyResult<String> {
        let episode = self.episode()?;
        let (roller, runtime) = (&self.roller, &self.runtime);
        let turn = self.turns.fetch_add(1, Ordering::Relaxed);
        let step = gil::detach(py, || {
            runtime.block_on(roller.step(&episode, text, &self.id))
        })
        .map_err(|e| PyRuntimeError::new_err(format!("host fault: {e}")))?;
        let done = roller.done_after(turn, &step);
        Ok(wire::step(&step, turn, done).to_string())
    }

    /// Removes the session's state now (it is also removed when the session is garbage
    /// collected). Calls after this raise.
    fn close(&self) -> PyResult<()> {
        let episode = self
            .episode
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(Ok(episode)) = episode.map(Arc::try_unwrap) {
            episode
                .close()
                .map_err(|e| PyOSError::new_err(format!("removing the session's state: {e}")))?;
        }
        Ok(())
    }
}

fn score(text: &str, ground_truth: &str, step: u64, variant: &str) -> PyResult<Value> {
    let rubric =
        Rubric::for_variant(variant).map_err(|e| PyValueError::new_err(format!("variant: {e}")))?;
    let truth = GroundTruth::parse(ground_truth)
        .map_err(|e| PyValueError::new_err(format!("ground_truth: {e}")))?;
    Ok(json!(rubric.score(text, &truth, step)))
}

/// ToolRL's reward terms of one completion, as JSON text (`toolenv reward`'s line).
#[pyfunction]
#[pyo3(signature = (text, ground_truth, step=0, variant="default"))]
fn reward_json(text: &str, ground_truth: &str, step: u64, variant: &str) -> PyResult<String> {
    Ok(score(text, ground_truth, step, variant)?.to_string())
}

/// The TIR codec's reading of one assistant turn, as JSON text: `{"think", "calls": [{"line",
/// "name", "arguments"} or {"line", "error"}], "response", "issues"}`.
#[pyfunction]
fn parse_turn_json(text: &str) -> String {
    let turn = parse(text);
    let calls: Vec<Value> = turn
        .tool_calls
        .iter()
        .flatten()
        .map(|c| match &c.result {
            Ok(ToolCall { name, parameters }) => {
                json!({"line": c.line, "name": name, "arguments": parameters})
            }
            Err(e) => json!({"line": c.line, "error": e.to_string()}),
        })
        .collect();
    let issues: Vec<String> = turn.issues.iter().map(ToString::to_string).collect();
    json!({
        "think": turn.think,
        "tool_call_block": turn.tool_calls.is_some(),
        "calls": calls,
        "response": turn.response,
        "issues": issues,
    })
    .to_string()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Env>()?;
    m.add_class::<Session>()?;
    m.add_class::<CallResult>()?;
    m.add_class::<ToolError>()?;
    m.add_function(wrap_pyfunction!(reward_json, m)?)?;
    m.add_function(wrap_pyfunction!(parse_turn_json, m)?)?;
    Ok(())
}

//! The registry: the config, every tool's definition and compiled module, and the call path.
//!
//! Loading checks everything up front and reports every problem at once, each with its file,
//! line (where the file is ours to point into) and field, so a user fixes a config in one pass.
//! After loading, a call is: find the tool, validate the arguments with the precompiled schema
//! validator, run a fresh instance, parse and (optionally) validate the result.

use crate::config::{ConfigError, LoadedConfig, Location};
use crate::episode::Episode;
use crate::sandbox::{
    CallOutcome, CallSpec, EngineSettings, HostError, LimitOverrides, Limits, ModuleCache,
    Preopens, PreparedTool, Sandbox, ToolError,
};
use crate::tooldef::{compile_schema, load_definition, violations, ToolDef};
use jsonschema::Validator;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Most schema violations reported for one call: enough to fix the call, short enough for a
/// model's context.
const MAX_VIOLATIONS: usize = 5;

/// Largest memory cap a tool may ask for, in MiB (the pooling allocator reserves address space
/// for this per slot).
const MAX_MEMORY_MIB: u64 = 4096;

/// One problem found while loading, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File, line and field.
    pub location: Location,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why a registry could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The config file could not be read or parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config parsed, but what it names has problems; all of them are listed.
    #[error("{} has {} problem{}:\n{}", .config.display(), .problems.len(),
        if .problems.len() == 1 { "" } else { "s" },
        .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Problems {
        /// The config file.
        config: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The engine could not be created.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A selection of tools names one the config does not register.
    #[error("{} registers no tool named {}; it registers {}", .config.display(),
        .missing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "), .available.join(", "))]
    UnknownSelection {
        /// The config file.
        config: PathBuf,
        /// The selected names it lacks.
        missing: Vec<String>,
        /// The names it registers.
        available: Vec<String>,
    },
}

/// A registered tool, ready to call.
pub struct Tool {
    /// Its definition, as shown to the model.
    pub def: ToolDef,
    /// Its budgets.
    pub limits: Limits,
    /// Whether it gets a per-episode `/state`.
    pub stateful: bool,
    /// The name of the episode's `/state` directory it gets: its own name, or its state group's.
    pub state_key: String,
    /// Host directory preopened read-only at `/data`.
    pub data_dir: Option<PathBuf>,
    validator: Validator,
    result_validator: Option<Validator>,
    module: PreparedTool,
}

impl Tool {
    /// `"module"` (a wasm32-wasip1 command) or `"component"` (a `wasi:cli/command` component).
    pub fn kind(&self) -> &'static str {
        self.module.kind()
    }
}

/// All registered tools over one shared sandbox. `Sync`: share it by reference across threads.
pub struct Registry {
    sandbox: Sandbox,
    tools: Vec<Tool>,
    by_name: HashMap<String, usize>,
    seed: u64,
    clock: Duration,
    state_root: PathBuf,
}

impl Registry {
    /// Reads `path` and loads every tool it names.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        Self::from_config(&LoadedConfig::read(path)?)
    }

    /// Reads `path` and loads only the tools named in `selection` (all of them with `None`),
    /// e.g. the tools one training run's tasks are about. Unselected tools are not compiled.
    pub fn load_selecting(path: &Path, selection: Option<&[String]>) -> Result<Self, LoadError> {
        let mut loaded = LoadedConfig::read(path)?;
        if let Some(names) = selection {
            select_tools(&mut loaded, names)?;
        }
        Self::from_config(&loaded)
    }

    /// Loads every tool a parsed config names, collecting every problem.
    pub fn from_config(loaded: &LoadedConfig) -> Result<Self, LoadError> {
        let cfg = &loaded.config;
        let sb = &cfg.sandbox;
        let mut problems = Vec::new();
        let mut problem =
            |location: Location, message: String| problems.push(Problem { location, message });
        let config_at = |field: &str| Location {
            file: loaded.path.clone(),
            line: None,
            field: field.to_string(),
        };

        if sb.max_instances == 0 {
            problem(
                config_at("sandbox.max_instances"),
                "must be at least 1".into(),
            );
        }
        let limits: Vec<Limits> = cfg
            .tools
            .iter()
            .map(|t| t.limits.apply(sb.limits))
            .collect();
        for (field, l) in std::iter::once(("sandbox.limits".to_string(), &sb.limits)).chain(
            // A tool that overrides nothing inherits the defaults, already checked above.
            limits
                .iter()
                .enumerate()
                .filter(|&(i, _)| cfg.tools[i].limits != LimitOverrides::default())
                .map(|(i, l)| (format!("tools[{i}].limits"), l)),
        ) {
            for message in check_limits(l) {
                problem(config_at(&field), message);
            }
        }
        // Invalid caps are reported above; they must not shrink the pool for the valid tools.
        let max_memory_mib = limits
            .iter()
            .map(|l| l.memory_mib)
            .chain([sb.limits.memory_mib])
            .filter(|m| (1..=MAX_MEMORY_MIB).contains(m))
            .max()
            .unwrap_or(Limits::default().memory_mib);
        let cache_dir = match &sb.cache_dir {
            None => ModuleCache::default_dir(),
            Some(d) if d.get_ref().is_empty() => None,
            Some(d) => Some(loaded.resolve(d.get_ref())),
        };
        // Read first: whether any tool is a component decides how the instance pool is sized.
        // Each file is read, and below prepared, once however many tools it serves (BFCL's
        // backends: one 27 MB component behind 130 tools).
        let module_paths: Vec<PathBuf> = cfg
            .tools
            .iter()
            .map(|entry| loaded.resolve(entry.module.get_ref()))
            .collect();
        let mut module_bytes: HashMap<&Path, std::io::Result<Vec<u8>>> = HashMap::new();
        for path in &module_paths {
            module_bytes
                .entry(path.as_path())
                .or_insert_with(|| std::fs::read(path));
        }
        let components = module_bytes
            .values()
            .any(|b| b.as_deref().is_ok_and(crate::sandbox::is_component));
        let mut prepared: HashMap<&Path, Result<PreparedTool, String>> = HashMap::new();
        let sandbox = Sandbox::new(&EngineSettings {
            max_memory_bytes: max_memory_mib * 1024 * 1024,
            max_instances: sb.max_instances.max(1),
            cache_dir,
            components,
        })?;

        let mut tools = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, entry) in cfg.tools.iter().enumerate() {
            let field = |f: &str| format!("tools[{i}].{f}");
            let schema_path = loaded.resolve(entry.schema.get_ref());
            let def = if !schema_path.is_file() {
                problem(
                    loaded.locate(&entry.schema, field("schema")),
                    format!("file not found: {}", schema_path.display()),
                );
                None
            } else {
                match load_definition(&schema_path) {
                    Ok(d) => Some(d),
                    Err(ps) => {
                        for p in ps {
                            let location = Location {
                                file: schema_path.clone(),
                                line: p.line,
                                field: p.field,
                            };
                            problem(location, p.message);
                        }
                        None
                    }
                }
            };

            let result_schema = match &entry.result_schema {
                Some(s) => Some((loaded.resolve(s.get_ref()), Some(s))),
                None => {
                    let beside = schema_path.with_extension("result.json");
                    beside.is_file().then_some((beside, None))
                }
            };
            let result_validator = match result_schema {
                None => None,
                Some((path, spanned)) => match read_json(&path) {
                    Ok(schema) => match compile_schema(&schema, "") {
                        Ok(v) => Some(v),
                        Err(p) => {
                            let location = Location {
                                file: path,
                                line: None,
                                field: p.field,
                            };
                            problem(location, p.message);
                            None
                        }
                    },
                    Err(message) => {
                        let location = match spanned {
                            Some(s) => loaded.locate(s, field("result_schema")),
                            None => Location {
                                file: path,
                                line: None,
                                field: String::new(),
                            },
                        };
                        problem(location, message);
                        None
                    }
                },
            };

            let module_path = module_paths[i].as_path();
            let module = match &module_bytes[module_path] {
                Err(e) => {
                    problem(
                        loaded.locate(&entry.module, field("module")),
                        format!("cannot read {}: {e}", module_path.display()),
                    );
                    None
                }
                Ok(bytes) => match prepared
                    .entry(module_path)
                    .or_insert_with(|| sandbox.prepare(bytes).map_err(|e| e.to_string()))
                {
                    Ok(m) => Some(m.clone()),
                    Err(e) => {
                        problem(
                            loaded.locate(&entry.module, field("module")),
                            format!("{}: {e}", module_path.display()),
                        );
                        None
                    }
                },
            };

            let data_dir = entry.data_dir.as_ref().and_then(|d| {
                let path = loaded.resolve(d.get_ref());
                if path.is_dir() {
                    Some(path)
                } else {
                    problem(
                        loaded.locate(d, field("data_dir")),
                        format!("not a directory: {}", path.display()),
                    );
                    None
                }
            });

            if let Some((def, _)) = &def {
                if let Some(&j) = by_name.get(&def.name) {
                    problem(
                        loaded.locate(&entry.schema, field("schema")),
                        format!(
                            "tool name `{}` is already registered by tools[{j}] ({})",
                            def.name,
                            cfg.tools[j].schema.get_ref()
                        ),
                    );
                    continue;
                }
                by_name.insert(def.name.clone(), i);
            }
            // A group's directory is named after it, beside the tools' own: `group-<name>`.
            let group = entry.state_group.as_ref().and_then(|g| {
                let name = g.get_ref();
                let safe = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !safe {
                    problem(
                        loaded.locate(g, field("state_group")),
                        format!("{name:?}: a state group is named with ASCII letters, digits, `_` and `-`"),
                    );
                }
                safe.then(|| format!("group-{name}"))
            });
            if let (Some((def, validator)), Some(module)) = (def, module) {
                let state_key = group.unwrap_or_else(|| def.name.clone());
                tools.push(Tool {
                    def,
                    limits: limits[i],
                    stateful: entry.stateful || entry.state_group.is_some(),
                    state_key,
                    data_dir,
                    validator,
                    result_validator,
                    module,
                });
            }
        }
        if !problems.is_empty() {
            return Err(LoadError::Problems {
                config: loaded.path.clone(),
                problems,
            });
        }
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.def.name.clone(), i))
            .collect();
        let state_root = match &sb.state_root {
            Some(d) => loaded.resolve(d.get_ref()),
            None => std::env::temp_dir(),
        };
        Ok(Registry {
            sandbox,
            tools,
            by_name,
            seed: sb.seed,
            clock: Duration::from_secs(sb.clock_unix_s),
            state_root,
        })
    }

    /// The tools in config order.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The tools as the OpenAI chat-completions `tools` array
    /// (`[{"type": "function", "function": {name, description, parameters}}]`).
    pub fn openai_tools(&self) -> Vec<Value> {
        self.tools
            .iter()
            .map(|t| serde_json::json!({"type": "function", "function": t.def.to_json()}))
            .collect()
    }

    /// The tool called `name`.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    /// A new episode with the config's seed.
    pub fn episode(&self) -> Episode {
        self.episode_with_seed(self.seed)
    }

    /// A new episode with its own seed.
    pub fn episode_with_seed(&self, seed: u64) -> Episode {
        Episode::new(seed, self.state_root.clone())
    }

    /// Calls `name` with `args` within `episode`. Every tool failure is in the outcome's
    /// `result`; `Err` is reserved for faults of the host.
    pub fn call(
        &self,
        episode: &Episode,
        name: &str,
        args: &Value,
    ) -> Result<CallOutcome, HostError> {
        let start = Instant::now();
        let (result, fuel_used) = self.call_inner(episode, name, args)?;
        Ok(CallOutcome {
            result,
            fuel_used,
            elapsed: start.elapsed(),
        })
    }

    fn call_inner(
        &self,
        episode: &Episode,
        name: &str,
        args: &Value,
    ) -> Result<(Result<Value, ToolError>, u64), HostError> {
        let Some(tool) = self.tool(name) else {
            let available: Vec<&str> = self.tools.iter().map(|t| t.def.name.as_str()).collect();
            let error = ToolError::UnknownTool {
                name: name.to_string(),
                available: available.join(", "),
            };
            return Ok((Err(error), 0));
        };
        let bad = violations(&tool.validator, args, MAX_VIOLATIONS);
        if !bad.is_empty() {
            let error = ToolError::InvalidArguments {
                tool: name.to_string(),
                violations: bad,
            };
            return Ok((Err(error), 0));
        }
        // Serializing a `Value` cannot fail: its keys are strings.
        let stdin = serde_json::to_vec(args).unwrap_or_default();
        let state = if tool.stateful {
            Some(episode.state_dir(&tool.state_key)?)
        } else {
            None
        };
        let spec = CallSpec {
            tool: name,
            stdin: &stdin,
            limits: tool.limits,
            preopens: Preopens {
                data: tool.data_dir.as_deref(),
                state: state.as_deref(),
            },
            seed: episode.seed(),
            clock: self.clock,
        };
        let (result, fuel) = self.sandbox.run(&tool.module, &spec)?;
        let result = match (result, &tool.result_validator) {
            (Ok(value), Some(v)) => {
                let bad = violations(v, &value, MAX_VIOLATIONS);
                if bad.is_empty() {
                    Ok(value)
                } else {
                    Err(ToolError::InvalidOutput {
                        tool: name.to_string(),
                        violations: bad,
                    })
                }
            }
            (result, _) => result,
        };
        Ok((result, fuel))
    }
}

/// Keeps the `[[tools]]` entries whose definition names a selected tool. An entry whose definition
/// cannot be read is kept, so that loading reports its problem.
fn select_tools(loaded: &mut LoadedConfig, names: &[String]) -> Result<(), LoadError> {
    let name_of = |schema: &str| -> Option<String> {
        let def = read_json(&loaded.resolve(schema)).ok()?;
        def.get("name")?.as_str().map(str::to_string)
    };
    let entry_names: Vec<Option<String>> = loaded
        .config
        .tools
        .iter()
        .map(|t| name_of(t.schema.get_ref()))
        .collect();
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !entry_names.iter().any(|e| e.as_deref() == Some(n.as_str())))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(LoadError::UnknownSelection {
            config: loaded.path.clone(),
            missing,
            available: entry_names.into_iter().flatten().collect(),
        });
    }
    let mut keep = entry_names
        .iter()
        .map(|e| e.as_ref().is_none_or(|n| names.contains(n)));
    loaded.config.tools.retain(|_| keep.next().unwrap_or(true));
    Ok(())
}

fn check_limits(l: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    if l.fuel == 0 {
        out.push("fuel must be at least 1".to_string());
    }
    if l.timeout_ms == 0 {
        out.push("timeout_ms must be at least 1".to_string());
    }
    if l.memory_mib == 0 || l.memory_mib > MAX_MEMORY_MIB {
        out.push(format!(
            "memory_mib must be between 1 and {MAX_MEMORY_MIB}, found {}",
            l.memory_mib
        ));
    }
    if l.max_output_bytes == 0 {
        out.push("max_output_bytes must be at least 1".to_string());
    }
    out
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

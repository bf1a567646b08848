//! `env/config.toml`: which tools exist and how they may run.
//!
//! Plain serde structs with a doc comment on every field and `deny_unknown_fields` everywhere, so a
//! misspelt key is an error naming it. Paths keep their position in the file (`toml::Spanned`) so
//! that problems found later, when the files they name are read, can still point at a line.
//! Relative paths are relative to the config file's directory.
//!
//! ```toml
//! [sandbox]
//! seed = 0
//! [sandbox.limits]          # defaults for every tool
//! fuel = 100_000_000
//! timeout_ms = 1000
//! memory_mib = 64
//!
//! [[tools]]
//! module = "../tools/wasm/kv_store.wasm"
//! schema = "../schemas/tools/kv_store.json"
//! stateful = true           # gets a fresh /state directory per episode
//! limits = { fuel = 10_000_000 }
//!
//! [[tools]]                 # tools of one state group share one /state (a class's methods)
//! module = "backends.wasm"
//! schema = "cd.json"
//! state_group = "files"
//! ```

use crate::sandbox::{LimitOverrides, Limits};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The whole environment config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// Engine-wide settings and default limits.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// The registered tools, in the order they are listed to the model.
    #[serde(default)]
    pub tools: Vec<ToolEntry>,
    /// Training tables, read and checked key by key by the `trainer` crate (`trainer grpo`,
    /// `trainer sft`); the environment itself does not use them.
    #[serde(flatten)]
    pub training: TrainingTables,
}

/// The tables of the file that configure training (documented in `trainer/src/train/config.rs`).
/// Kept as raw TOML here so the environment does not depend on the trainer, while a misspelt
/// table name is still an unknown key.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TrainingTables {
    /// `[model]`: the model to train.
    pub model: Option<toml::Table>,
    /// `[data]`: the training prompts.
    pub data: Option<toml::Table>,
    /// `[rollout]`: sampling and episode limits.
    pub rollout: Option<toml::Table>,
    /// `[reward]`: rubric, variant and reward-term weights.
    pub reward: Option<toml::Table>,
    /// `[optimizer]`: AdamW and the learning-rate schedule.
    pub optimizer: Option<toml::Table>,
    /// `[grpo]`: the policy-gradient objective.
    pub grpo: Option<toml::Table>,
    /// `[sft]`: the supervised warm start.
    pub sft: Option<toml::Table>,
    /// `[eval]`: evaluation during training.
    pub eval: Option<toml::Table>,
    /// `[checkpoints]`: where and how often to save.
    pub checkpoints: Option<toml::Table>,
    /// `[train]`: seed, device, steps and output directory.
    pub train: Option<toml::Table>,
}

/// Engine-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Directory for compiled-module artifacts. Default: `$XDG_CACHE_HOME/toolenv` or
    /// `~/.cache/toolenv`. Set to `""` to disable caching.
    pub cache_dir: Option<Spanned<String>>,
    /// Parent directory of per-episode `/state` directories. Default: the system temp dir.
    pub state_root: Option<Spanned<String>>,
    /// Default episode seed: guests' randomness derives from it, the tool and the arguments.
    pub seed: u64,
    /// What every guest's wall clock reads, in seconds since the Unix epoch (frozen, so results
    /// do not depend on when a call ran). Default: 2025-01-01T00:00:00Z.
    pub clock_unix_s: u64,
    /// Most calls that may run at once (instance pool size).
    pub max_instances: u32,
    /// Default limits of every call; tools may override each field.
    pub limits: Limits,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            state_root: None,
            seed: 0,
            clock_unix_s: 1_735_689_600,
            max_instances: 128,
            limits: Limits::default(),
        }
    }
}

/// One registered tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolEntry {
    /// Path of the compiled module (`.wasm`, a wasm32-wasip1 command; `.wat` text also works).
    pub module: Spanned<String>,
    /// Path of the OpenAI-style function definition: `{"name", "description", "parameters"}`,
    /// `parameters` being a JSON Schema (draft 2020-12, or the draft its `$schema` names).
    pub schema: Spanned<String>,
    /// Optional JSON Schema that every successful result must satisfy. Default:
    /// `<schema stem>.result.json` beside `schema`, if that file exists.
    pub result_schema: Option<Spanned<String>>,
    /// Optional directory preopened read-only at `/data` (corpora, tables, models).
    pub data_dir: Option<Spanned<String>>,
    /// Whether the tool keeps state within an episode: if so it gets a private read-write
    /// `/state` directory, created fresh for each episode and removed after it.
    #[serde(default)]
    pub stateful: bool,
    /// Makes the tool stateful and shares its `/state` with every tool of the same group (the
    /// methods of one object, each registered as its own tool). Without it, each stateful tool's
    /// `/state` is its own.
    pub state_group: Option<Spanned<String>>,
    /// Overrides of the sandbox's default limits for this tool.
    #[serde(default)]
    pub limits: LimitOverrides,
}

/// Where a problem is: a file, a line in it when known, and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field, e.g. `tools[2].module` or `parameters`.
    pub field: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        Ok(())
    }
}

/// A config file parsed, with what is needed to point back into it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed config.
    pub config: EnvConfig,
    /// The config file's path.
    pub path: PathBuf,
    /// The file's text, for turning byte spans into lines.
    pub text: String,
}

/// Why the config file itself could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (unknown key, wrong type).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
}

impl LoadedConfig {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Self, ConfigError> {
        match toml::from_str::<EnvConfig>(&text) {
            Ok(config) => Ok(LoadedConfig {
                config,
                path: path.to_path_buf(),
                text,
            }),
            Err(e) => {
                let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
                Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: e.message().to_string(),
                })
            }
        }
    }

    /// The location of a spanned value, for error messages.
    pub fn locate<T>(&self, value: &Spanned<T>, field: impl Into<String>) -> Location {
        Location {
            file: self.path.clone(),
            line: Some(line_col(&self.text, value.span().start).0),
            field: field.into(),
        }
    }

    /// The config file's directory, against which relative paths resolve.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// `value` resolved against the config file's directory.
    pub fn resolve(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir().join(p)
        }
    }
}

/// 1-based line and column of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

//! Shared fixtures: paths into the repo and configs written to temporary directories.

use std::path::PathBuf;
use toolenv::{LoadedConfig, Registry};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The built module of guest `name`; the guests are built by `./tools/build.sh`.
pub fn wasm(name: &str) -> PathBuf {
    let path = repo().join("tools/wasm").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run ./tools/build.sh first",
        path.display()
    );
    path
}

/// The definition file of tool `name`.
pub fn schema(name: &str) -> PathBuf {
    repo().join("schemas/tools").join(format!("{name}.json"))
}

/// A config file in its own temporary directory (kept alive by the returned guard).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Fixture {
    /// Writes `toml` as `config.toml` in a fresh temporary directory.
    pub fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).expect("write config");
        Fixture { dir, path }
    }

    /// Writes another file beside the config.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write fixture file");
        path
    }

    pub fn load(&self) -> Result<Registry, toolenv::LoadError> {
        Registry::load(&self.path)
    }
}

/// A `[[tools]]` entry for a guest in tools/wasm with its schema, plus extra TOML lines.
pub fn tool_entry(name: &str, extra: &str) -> String {
    format!(
        "[[tools]]\nmodule = {:?}\nschema = {:?}\n{extra}\n",
        wasm(name).display().to_string(),
        schema(name).display().to_string()
    )
}

/// A registry with the hostile guest (default limits) and the calculator, cache off.
pub fn hostile_registry() -> (Fixture, Registry) {
    let toml = format!(
        "[sandbox]\ncache_dir = \"\"\n{}{}",
        tool_entry("hostile", ""),
        tool_entry("calculator", "")
    );
    let fx = Fixture::new(&toml);
    let reg = fx.load().unwrap_or_else(|e| panic!("{e}"));
    (fx, reg)
}

/// Parses a config without loading it, for error-message tests.
#[allow(dead_code)]
pub fn parse(toml: &str) -> Result<LoadedConfig, toolenv::config::ConfigError> {
    LoadedConfig::parse(std::path::Path::new("env/config.toml"), toml.to_string())
}

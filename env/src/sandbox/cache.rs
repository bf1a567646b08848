//! On-disk cache of compiled modules and components, so a tool is compiled once per machine, not
//! once per start (a Python component takes seconds to compile and milliseconds to load).
//!
//! The key is the SHA-256 of the wasm bytes together with the engine's compatibility hash (its
//! version and every codegen setting), so a changed module or a changed engine config misses the
//! cache instead of loading stale code. Entries are written to a temporary file and renamed into
//! place, so a crash mid-write never leaves a torn artifact. A compile runs under a lock file on
//! its key, so concurrent loads of one tool (test threads, worker processes) compile it once. A
//! cache that cannot be read or written only costs a compilation: it is never an error.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

/// Where compiled artifacts live; `None` disables caching.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: Option<PathBuf>,
}

impl ModuleCache {
    /// A cache in `dir`, created on first write.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ModuleCache { dir }
    }

    /// The platform's default location: `$XDG_CACHE_HOME/toolenv` or `~/.cache/toolenv`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("toolenv"))
    }

    /// Loads the compiled form of `wasm` (a core module or a component, as `A` says) from the
    /// cache, or compiles and stores it.
    pub fn load_or_compile<A: Artifact>(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<A> {
        let Some(dir) = &self.dir else {
            return A::compile(engine, wasm);
        };
        let key = key(engine, wasm);
        let path = dir.join(format!("{key}.cwasm"));
        if let Some(artifact) = load::<A>(engine, &path) {
            return Ok(artifact);
        }
        // Compile under an exclusive lock on the key, so that processes and threads loading the
        // same tool at once compile it once (a Python component takes seconds) and the others
        // load the result. Without a lock file the cache still works, with duplicate compiles.
        let _lock = lock(dir, &key);
        if let Some(artifact) = load::<A>(engine, &path) {
            return Ok(artifact);
        }
        let artifact = A::compile(engine, wasm)?;
        if let Err(e) = artifact
            .serialize()
            .and_then(|b| Ok(write_atomic(&path, &b)?))
        {
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled artifact");
        }
        Ok(artifact)
    }
}

/// The cached artifact at `path`, if there is a usable one.
fn load<A: Artifact>(engine: &Engine, path: &Path) -> Option<A> {
    let bytes = std::fs::read(path).ok()?;
    match A::deserialize(engine, &bytes) {
        Ok(artifact) => Some(artifact),
        Err(_) => {
            tracing::warn!(path = %path.display(), "ignoring unusable cached artifact");
            None
        }
    }
}

/// An exclusive lock on `<key>.lock` in `dir`, released when the file is dropped.
fn lock(dir: &Path, key: &str) -> Option<std::fs::File> {
    std::fs::create_dir_all(dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{key}.lock")))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// What the cache can hold: wasmtime's two kinds of compiled code. Both are keyed by their source
/// bytes, which differ between a module and a component, so one directory serves both.
pub trait Artifact: Sized {
    /// Compiles from wasm bytes (or WebAssembly text, for modules).
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self>;
    /// The compiled form, for the cache.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// Loads what [`Artifact::serialize`] wrote.
    fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
}

impl Artifact for Module {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, wasm)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
    #[allow(unsafe_code)]
    fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: see `trusted_artifact`.
        unsafe { Module::deserialize(engine, bytes) }
    }
}

impl Artifact for Component {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, wasm)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    #[allow(unsafe_code)]
    fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: see `trusted_artifact`.
        unsafe { Component::deserialize(engine, bytes) }
    }
}

fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut h = Sha256::new();
    h.update(wasm);
    h.update(engine_hash.finish().to_le_bytes());
    h.finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect()
}

// Why deserializing is sound (`trusted_artifact`): `Module::deserialize` and
// `Component::deserialize` trust their input to be wasmtime's own output. Our entries are written
// only by `load_or_compile` from `serialize`, named by a hash of the source and of the engine
// configuration, and renamed into place whole; wasmtime itself rejects artifacts from another
// version, configuration or kind with an error. The cache directory must not be writable by anyone
// the host does not trust, as with any compiled code it runs.

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

//! The wasm sandbox: one shared engine, tools compiled once, a fresh isolated instance per call.
//!
//! Isolation is by construction rather than by filtering. A guest gets exactly the WASI imports
//! (`wasi_snapshot_preview1` for a core module, WASI 0.2 for a component) wired to a context that
//! has no environment variables, no arguments beyond its name, no sockets, no preopened directory
//! unless the tool's config grants one (`/data` read-only, `/state` read-write per episode), a
//! frozen clock and seeded randomness. Each call runs in a new `Store` with its own fuel, epoch
//! deadline, memory cap and bounded output pipes, instantiated from a pre-linked `InstancePre` on
//! the pooling allocator, which is what makes a call cost tens of microseconds for a Rust module
//! and about a millisecond for a Python component. Modules and components share every part of the
//! call but the two lines that instantiate and run them.

mod cache;
mod call;
mod component;
pub mod determinism;
mod limits;
mod outcome;
mod pipe;
mod virtual_time;

pub use cache::{Artifact, ModuleCache};
pub use call::{CallSpec, Preopens};
pub use limits::{LimitOverrides, Limits, MemoryLimitExceeded};
pub use outcome::{CallOutcome, ToolError, Violation};
pub use pipe::OutputOverflow;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Config, Engine, InstancePre, Linker, Module, PoolingAllocationConfig};
use wasmtime_wasi::p2::bindings::sync::CommandPre;

/// How long one epoch tick lasts; `timeout_ms` is counted in these.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Engine-wide settings (the parts of the config that are not per tool).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Largest memory cap of any tool, in bytes: the pooling allocator's slot size.
    pub max_memory_bytes: u64,
    /// How many instances may be alive at once (concurrent calls).
    pub max_instances: u32,
    /// Where compiled modules are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Whether any tool is a component: the instance pool is then sized for components, each of
    /// which holds several core instances, memories and tables (a componentize-py component ~14
    /// instances, 2 tables of ≥ 6,000 elements).
    pub components: bool,
}

/// What the instance pool reserves for one instance slot (one concurrent call). Address space is
/// reserved up front; memory becomes resident only as guests touch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Core instances per slot: 1 for a module; a componentize-py component holds about 14.
    pub core_instances: u32,
    /// Linear memories per slot.
    pub memories: u32,
    /// Largest size of each memory, in bytes (the largest cap of any tool).
    pub memory_bytes: u64,
    /// Tables per slot (a componentize-py component uses 2).
    pub tables: u32,
    /// Elements per table (componentize-py needs ≥ 6,000).
    pub table_elements: usize,
}

impl PoolShape {
    /// A slot for one core module.
    pub fn for_modules(memory_bytes: u64) -> Self {
        PoolShape {
            core_instances: 1,
            memories: 1,
            memory_bytes,
            tables: 1,
            table_elements: 20_000,
        }
    }

    /// A slot for one component, with room to spare over what componentize-py's use.
    pub fn for_components(memory_bytes: u64) -> Self {
        PoolShape {
            core_instances: 24,
            memories: 4,
            memory_bytes,
            tables: 4,
            table_elements: 20_000,
        }
    }
}

/// Faults of the host, not of the tool: these are `Err`, never observations.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The wasmtime engine could not be configured.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// A per-episode state directory or a data directory could not be opened.
    #[error("cannot open directory {path} for the guest: {message}")]
    Preopen {
        /// The host path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Instantiation failed for a reason that is not the guest's (e.g. the instance pool is
    /// exhausted because more calls run at once than `max_instances`).
    #[error("cannot instantiate tool `{tool}`: {message}")]
    Instantiate {
        /// The tool.
        tool: String,
        /// What went wrong.
        message: String,
    },
}

/// Why a module cannot become a tool. Reported at load time with the config's file and field.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Neither a wasm binary nor WebAssembly text.
    #[error("not a wasm module (no `\\0asm` header) nor valid WebAssembly text: {0}")]
    Invalid(String),
    /// A wasm binary that wasmtime rejects: malformed, or needing more than the sandbox
    /// allows (e.g. a larger initial memory than the biggest memory cap).
    #[error("cannot be compiled for the sandbox: {0}")]
    Compile(String),
    /// A component, but the sandbox was built without room for components (an embedding that
    /// set [`EngineSettings::components`] to false).
    #[error("is a WebAssembly component, and this sandbox was configured for core modules only")]
    ComponentsDisabled,
    /// A component that does not export `wasi:cli/run`: a library rather than a command.
    #[error("is a component that does not export `wasi:cli/run`: a tool must be a command (componentize-py with `-w wasi:cli/command`, or a Rust binary for wasm32-wasip2), not a library or a reactor")]
    NotCommand,
    /// A component importing an interface outside what the sandbox provides.
    #[error("is a component that imports `{name}`, which the sandbox does not provide (only wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random and wasi:sockets, with sockets refused)")]
    ComponentImport {
        /// The imported interface, e.g. `wasi:http/outgoing-handler@0.2.0`.
        name: String,
    },
    /// No `_start` export: a library (reactor) rather than a command.
    #[error("exports no `_start` function: a tool must be a WASI command module (a binary with `fn main`), not a library")]
    NoStart,
    /// An import the linker cannot satisfy (a WASI function that does not exist, a wrong type).
    #[error("cannot be linked against the sandbox's WASI imports: {0}")]
    Link(String),
    /// An import outside `wasi_snapshot_preview1`, which the sandbox does not provide.
    #[error("imports `{module}::{name}`, which the sandbox does not provide (only wasi_snapshot_preview1 is available)")]
    Import {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
}

/// The per-call store state of a core module: its WASI context and its memory limiter.
pub(crate) struct CallState {
    wasi: wasmtime_wasi::p1::WasiP1Ctx,
    limiter: limits::Limiter,
}

/// A tool compiled and linked, ready to be instantiated per call: a core module or a component.
#[derive(Clone)]
pub struct PreparedTool {
    kind: Prepared,
}

#[derive(Clone)]
enum Prepared {
    Module(InstancePre<CallState>),
    Component(CommandPre<component::ComponentState>),
}

impl PreparedTool {
    /// `"module"` (wasm32-wasip1) or `"component"` (wasi:cli/command).
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Prepared::Module(_) => "module",
            Prepared::Component(_) => "component",
        }
    }
}

/// The shared engine, linkers and cache. Cheap to share across threads (`&Sandbox` is `Sync`).
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    component_linker: wasmtime::component::Linker<component::ComponentState>,
    components: bool,
    cache: ModuleCache,
    ticker_stop: Arc<AtomicBool>,
}

impl Sandbox {
    /// Builds the engine (fuel, epoch interruption, pooling allocator) and the WASI linker.
    pub fn new(settings: &EngineSettings) -> Result<Self, HostError> {
        let mut pool = PoolingAllocationConfig::default();
        let n = settings.max_instances;
        let shape = match settings.components {
            true => PoolShape::for_components(settings.max_memory_bytes),
            false => PoolShape::for_modules(settings.max_memory_bytes),
        };
        pool.total_core_instances(n.saturating_mul(shape.core_instances))
            .total_memories(n.saturating_mul(shape.memories))
            .total_tables(n.saturating_mul(shape.tables))
            .table_elements(shape.table_elements)
            .total_component_instances(if settings.components { n } else { 0 })
            .max_core_instances_per_component(shape.core_instances)
            .max_memories_per_component(shape.memories)
            .max_tables_per_component(shape.tables)
            .total_stacks(0)
            .max_memory_size(shape.memory_bytes.try_into().unwrap_or(usize::MAX))
            // Resetting a memory or table in place is cheaper than madvise + page faults on the
            // next call. With the kernel's PAGEMAP_SCAN (Linux 6.7+) wasmtime copies back up to
            // these many bytes of the pages the guest dirtied, which then stay resident: a Python
            // echo call took 253 page faults instead of 374. Without the ioctl it resets this
            // prefix of each memory and table instead (stack and data, what every guest touches).
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 16)
            .pagemap_scan(pagemap_scan());
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(1 << 20)
            // Every call ends in an error value when the guest calls `exit` (how a command ends),
            // and capturing a wasm backtrace for it took a third of a Python call. The typed
            // outcome never uses one: traps are classified by kind, messages come from stderr.
            .wasm_backtrace_max_frames(None)
            .allocation_strategy(pool);
        let engine = Engine::new(&config).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut CallState| &mut s.wasi)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        virtual_time::install(&mut linker).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let component_linker =
            component::linker(&engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(&engine, ticker_stop.clone());
        Ok(Sandbox {
            engine,
            linker,
            component_linker,
            components: settings.components,
            cache: ModuleCache::new(settings.cache_dir.clone()),
            ticker_stop,
        })
    }

    /// Compiles (or loads from the cache) and links `wasm`, checking that it is a command (a
    /// module exporting `_start`, or a component exporting `wasi:cli/run`) whose every import the
    /// sandbox provides.
    pub fn prepare(&self, wasm: &[u8]) -> Result<PreparedTool, PrepareError> {
        if is_component(wasm) {
            if !self.components {
                return Err(PrepareError::ComponentsDisabled);
            }
            let pre = component::prepare(self, wasm)?;
            return Ok(PreparedTool {
                kind: Prepared::Component(pre),
            });
        }
        let module: Module =
            self.cache
                .load_or_compile(&self.engine, wasm)
                .map_err(|e| match wasm.starts_with(b"\0asm") {
                    true => PrepareError::Compile(format!("{e:#}")),
                    false => PrepareError::Invalid(format!("{e:#}")),
                })?;
        for import in module.imports() {
            if import.module() != "wasi_snapshot_preview1" {
                return Err(PrepareError::Import {
                    module: import.module().to_string(),
                    name: import.name().to_string(),
                });
            }
        }
        if !matches!(
            module.get_export("_start"),
            Some(wasmtime::ExternType::Func(_))
        ) {
            return Err(PrepareError::NoStart);
        }
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| PrepareError::Link(format!("{e:#}")))?;
        Ok(PreparedTool {
            kind: Prepared::Module(pre),
        })
    }

    /// Runs one call in a fresh instance. See [`CallSpec`] for what the call gets.
    pub fn run(
        &self,
        module: &PreparedTool,
        spec: &CallSpec<'_>,
    ) -> Result<(Result<serde_json::Value, ToolError>, u64), HostError> {
        call::run(self, module, spec)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Whether the pool may reset memories with the kernel's `PAGEMAP_SCAN`: not while swap is on.
///
/// Wasmtime 48.0.8's scan resets in place only the dirty pages that are *present*. A dirty page
/// the kernel has swapped out is neither reset nor decommitted, so the next call in that slot
/// would read the previous call's data (wasmtime fixes this upstream in a later 48.0.x, whose
/// companion crates the registry lacks). With swap on, the pool falls back to resetting a prefix
/// in place and decommitting the rest, which drops swapped pages too: slower (more page faults),
/// never stale.
fn pagemap_scan() -> wasmtime::Enabled {
    match std::fs::read_to_string("/proc/swaps") {
        Ok(text) if !swap_active(&text) => wasmtime::Enabled::Auto,
        Ok(_) => {
            tracing::warn!(
                "swap is on: resetting sandbox memories without PAGEMAP_SCAN (slower, never stale)"
            );
            wasmtime::Enabled::No
        }
        // No /proc/swaps: not Linux (where the scan does not exist anyway) or no procfs.
        Err(_) => wasmtime::Enabled::Auto,
    }
}

/// Whether `/proc/swaps` lists a swap area (a line after its header).
fn swap_active(proc_swaps: &str) -> bool {
    proc_swaps.lines().skip(1).any(|l| !l.trim().is_empty())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] so stores can have wall-clock deadlines.
/// Holds only a weak reference: the thread ends once the sandbox is dropped.
fn spawn_ticker(engine: &Engine, stop: Arc<AtomicBool>) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("toolenv-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    if let Err(e) = spawned {
        // Fuel still bounds every call; only the wall-clock backstop is lost.
        tracing::warn!(error = %e, "cannot start the epoch ticker; wall-clock deadlines are off");
    }
}

/// A component starts with the same magic as a module but a different version/layer field.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

#[cfg(test)]
mod tests {
    use super::swap_active;

    #[test]
    fn swap_is_active_when_proc_swaps_lists_an_area() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(!swap_active(header));
        assert!(!swap_active(""));
        let on =
            format!("{header}/swapfile                               file\t\t8388604\t\t0\t\t-2\n");
        assert!(swap_active(&on));
    }
}

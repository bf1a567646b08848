//! Tools that are WebAssembly components (`wasi:cli/command`): what a component may import, what it
//! must export, and the store state its WASI 0.2 imports run on.
//!
//! A component gets the same world as a core module, through WASI 0.2 instead of preview 1: the
//! same frozen clocks, seeded randomness, capped pipes, no environment, no sockets and only the
//! preopens its config grants. Python tools (componentize-py) are components; so are Rust tools
//! built for `wasm32-wasip2`. What is checked here, at load, is everything that would otherwise
//! fail later or silently: the file is a command (it exports `wasi:cli/run`), and every interface
//! it imports is one the sandbox provides, named when it is not.

use super::limits::Limiter;
use super::PrepareError;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The WASI 0.2 packages a component may import from. `wasi:sockets` is linked so that networking
/// code loads, but the context allows no address, so every socket operation is refused.
const PROVIDED_PACKAGES: [&str; 6] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// The per-call store state of a component: its WASI context, resource table and memory limiter.
pub(crate) struct ComponentState {
    pub(super) ctx: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The component linker: WASI 0.2 (synchronous host functions), then the frozen-time overrides.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    super::virtual_time::install_p2(&mut linker)?;
    Ok(linker)
}

/// Compiles (or loads from the cache) a component and links it as a command.
pub(super) fn prepare(
    sandbox: &super::Sandbox,
    wasm: &[u8],
) -> Result<CommandPre<ComponentState>, PrepareError> {
    let component: Component = sandbox
        .cache
        .load_or_compile(&sandbox.engine, wasm)
        .map_err(|e| PrepareError::Compile(format!("{e:#}")))?;
    let ty = component.component_type();
    for (name, _) in ty.imports(&sandbox.engine) {
        if !PROVIDED_PACKAGES.iter().any(|p| name.starts_with(p)) {
            return Err(PrepareError::ComponentImport {
                name: name.to_string(),
            });
        }
    }
    let exports_run = ty.exports(&sandbox.engine).any(|(name, item)| {
        name.starts_with("wasi:cli/run@") && matches!(item.ty, ComponentItem::ComponentInstance(_))
    });
    if !exports_run {
        return Err(PrepareError::NotCommand);
    }
    let pre = sandbox
        .component_linker
        .instantiate_pre(&component)
        .map_err(|e| PrepareError::Link(format!("{e:#}")))?;
    CommandPre::new(pre).map_err(|e| PrepareError::Link(format!("{e:#}")))
}

//! Waiting without real waiting: preview 1's `poll_oneoff` and WASI 0.2's monotonic-clock
//! subscriptions.
//!
//! wasmtime-wasi implements clock subscriptions with real timers, and a host thread blocked in a
//! host call is out of reach of both fuel and epoch interruption: a guest calling
//! `sleep(3600 s)` would hold a worker for an hour. In this sandbox time is frozen anyway, so every
//! subscription completes at once: clock subscriptions report that their time has come, and fd
//! subscriptions report readiness (stdin and stdout are in-memory pipes, always ready). A guest
//! that sleeps in a loop then spins, and its fuel stops it. For components the same holds by
//! replacing `subscribe-duration` and `subscribe-instant` with pollables that are ready at once;
//! `wasi:io/poll` then returns without waiting.

use super::component::ComponentState;
use super::CallState;
use wasmtime::component::Resource;
use wasmtime::StoreContextMut;
use wasmtime::{Caller, Extern, Linker};
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};

/// The interface whose subscriptions are replaced, at the version wasmtime-wasi defines it (the
/// linker matches a component's import of any semver-compatible 0.2 version to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A clock subscription whose time has always come.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}

/// Replaces the component linker's monotonic-clock subscriptions with [`Elapsed`] pollables.
pub(super) fn install_p2(
    linker: &mut wasmtime::component::Linker<ComponentState>,
) -> wasmtime::Result<()> {
    fn elapsed(
        mut store: StoreContextMut<'_, ComponentState>,
    ) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let table = &mut store.data_mut().table;
        let resource = table.push(Elapsed)?;
        Ok((subscribe(table, resource)?,))
    }
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |store, (_,): (u64,)| elapsed(store))?;
    clock.func_wrap("subscribe-instant", |store, (_,): (u64,)| elapsed(store))?;
    linker.allow_shadowing(false);
    Ok(())
}

const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

/// Replaces the linker's `wasi_snapshot_preview1::poll_oneoff`.
pub(super) fn install(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        |mut caller: Caller<'_, CallState>, input: i32, output: i32, count: i32, nevents: i32| {
            Ok(poll(&mut caller, input, output, count, nevents))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn poll(
    caller: &mut Caller<'_, CallState>,
    input: i32,
    output: i32,
    count: i32,
    nevents: i32,
) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return ERRNO_FAULT;
    };
    let count = count as u32 as usize;
    if count == 0 {
        return ERRNO_INVAL;
    }
    let mem = memory.data_mut(caller);
    let (input, output, nevents) = (
        input as u32 as usize,
        output as u32 as usize,
        nevents as u32 as usize,
    );
    let Some(subs_end) = count
        .checked_mul(SUBSCRIPTION_SIZE)
        .and_then(|n| n.checked_add(input))
    else {
        return ERRNO_FAULT;
    };
    let Some(events_end) = count
        .checked_mul(EVENT_SIZE)
        .and_then(|n| n.checked_add(output))
    else {
        return ERRNO_FAULT;
    };
    if subs_end > mem.len() || events_end > mem.len() || nevents.saturating_add(4) > mem.len() {
        return ERRNO_FAULT;
    }
    for i in 0..count {
        let sub = input + i * SUBSCRIPTION_SIZE;
        let mut event = [0u8; EVENT_SIZE];
        event[0..8].copy_from_slice(&mem[sub..sub + 8]); // userdata
        event[10] = mem[sub + 8]; // event type = subscription tag
        let at = output + i * EVENT_SIZE;
        mem[at..at + EVENT_SIZE].copy_from_slice(&event);
    }
    mem[nevents..nevents + 4].copy_from_slice(&(count as u32).to_le_bytes());
    ERRNO_SUCCESS
}

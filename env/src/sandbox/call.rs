//! One call: build the guest's world, run it (`_start` of a module, `wasi:cli/run` of a component),
//! and type whatever happened. Both kinds share the world, the store's budgets and the typing of
//! the outcome; only instantiating and entering differ.
//!
//! Classification prefers the host's own records over error messages: the output pipes and the
//! memory limiter set flags when they refuse something, so `output_too_large` and `memory` are
//! reported correctly even when the guest's runtime turns the refusal into an abort of its own.

use super::component::ComponentState;
use super::determinism::{call_seed, rng, FrozenMonotonicClock, FrozenWallClock};
use super::limits::{Limiter, Limits, MemoryLimitExceeded};
use super::pipe::CappedPipe;
use super::{CallState, HostError, Prepared, PreparedTool, Sandbox, ToolError, EPOCH_TICK};
use std::path::Path;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Host directories a call may see.
#[derive(Debug, Clone, Copy, Default)]
pub struct Preopens<'a> {
    /// Preopened read-only at `/data`.
    pub data: Option<&'a Path>,
    /// Preopened read-write at `/state`.
    pub state: Option<&'a Path>,
}

/// Everything one call needs besides the module.
#[derive(Debug, Clone, Copy)]
pub struct CallSpec<'a> {
    /// The tool's name: `argv[0]` and part of the random seed.
    pub tool: &'a str,
    /// The arguments object, serialized: the guest's stdin.
    pub stdin: &'a [u8],
    /// Budgets for this call.
    pub limits: Limits,
    /// Directories the guest may see.
    pub preopens: Preopens<'a>,
    /// The episode's seed; the call's randomness is derived from it, the tool and the arguments.
    pub seed: u64,
    /// What the guest's wall clock reads, since the Unix epoch.
    pub clock: Duration,
}

/// Runs `spec` and returns the tool's result (or typed error) and the fuel it consumed.
pub(super) fn run(
    sandbox: &Sandbox,
    tool: &PreparedTool,
    spec: &CallSpec<'_>,
) -> Result<(Result<serde_json::Value, ToolError>, u64), HostError> {
    let limits = spec.limits;
    let stdout = CappedPipe::new("stdout", limits.max_output_bytes);
    let stderr = CappedPipe::new("stderr", limits.max_stderr_bytes);
    let seed = call_seed(spec.seed, spec.tool, spec.stdin);
    let mut insecure_seed = seed;
    insecure_seed[0] ^= 0xff;

    let mut wasi = WasiCtxBuilder::new();
    // File operations run on the calling thread. Otherwise wasmtime-wasi hands each one to
    // tokio's blocking pool, which deadlocks when the call itself occupies the pool's last thread
    // (calls from `spawn_blocking` with a bounded pool), and costs a thread hop per operation.
    // Must precede the preopens, which capture it.
    wasi.allow_blocking_current_thread(true);
    wasi.stdin(MemoryInputPipe::new(spec.stdin.to_vec()))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .arg(spec.tool)
        .wall_clock(FrozenWallClock(spec.clock))
        .monotonic_clock(FrozenMonotonicClock)
        .secure_random(rng(seed))
        .insecure_random(rng(insecure_seed))
        .insecure_random_seed(u128::from_le_bytes(
            seed[..16].try_into().unwrap_or([0; 16]),
        ))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for (host, guest, perms) in [
        (spec.preopens.data, "/data", FsPerms::ReadOnly),
        (spec.preopens.state, "/state", FsPerms::ReadWrite),
    ] {
        if let Some(host) = host {
            wasi.preopened_dir(host, guest, perms)
                .map_err(|e| HostError::Preopen {
                    path: host.to_path_buf(),
                    message: format!("{e:#}"),
                })?;
        }
    }

    let limiter = Limiter {
        memory_bytes: limits.memory_bytes(),
    };
    // The outer `Err` is an instantiation failure, the inner one a failure while running.
    let (ran, fuel_used) = match &tool.kind {
        Prepared::Module(pre) => {
            let state = CallState {
                wasi: wasi.build_p1(),
                limiter,
            };
            let mut store = new_store(sandbox, state, &limits, |s| &mut s.limiter)?;
            let ran = pre.instantiate(&mut store).map(|instance| {
                instance
                    .get_typed_func::<(), ()>(&mut store, "_start")
                    .and_then(|start| start.call(&mut store, ()))
            });
            (ran, fuel_consumed(&store, &limits))
        }
        Prepared::Component(pre) => {
            let state = ComponentState {
                ctx: wasi.build(),
                table: ResourceTable::new(),
                limiter,
            };
            let mut store = new_store(sandbox, state, &limits, |s| &mut s.limiter)?;
            let ran = pre.instantiate(&mut store).map(|command| {
                match command.wasi_cli_run().call_run(&mut store) {
                    Ok(Ok(())) => Ok(()),
                    // `run` returning its error without calling `exit`: a failure with no code.
                    Ok(Err(())) => Err(wasmtime::Error::new(I32Exit(1))),
                    Err(e) => Err(e),
                }
            });
            (ran, fuel_consumed(&store, &limits))
        }
    };
    let outcome = match ran {
        Ok(outcome) => outcome,
        Err(e) => {
            let memory = e.chain().any(|c| c.is::<MemoryLimitExceeded>());
            if !memory && e.downcast_ref::<Trap>().is_none() {
                return Err(HostError::Instantiate {
                    tool: spec.tool.to_string(),
                    message: format!("{e:#}"),
                });
            }
            Err(e)
        }
    };

    let tool = spec.tool.to_string();
    let (out, out_overflow) = stdout.take();
    let (err, err_overflow) = stderr.take();
    let exit_code = match outcome {
        Ok(()) => 0,
        Err(e) => match exit_status(&e) {
            Some(code) => code,
            None => {
                let error = if out_overflow || err_overflow {
                    ToolError::OutputTooLarge {
                        tool,
                        stream: if out_overflow { "stdout" } else { "stderr" },
                        limit_bytes: if out_overflow {
                            limits.max_output_bytes
                        } else {
                            limits.max_stderr_bytes
                        },
                    }
                } else {
                    classify_failure(&e, tool, &limits, &err)
                };
                return Ok((Err(error), fuel_used));
            }
        },
    };
    // A guest that catches a refused write and exits cleanly still produced truncated output.
    if out_overflow {
        return Ok((
            Err(ToolError::OutputTooLarge {
                tool,
                stream: "stdout",
                limit_bytes: limits.max_output_bytes,
            }),
            fuel_used,
        ));
    }
    if exit_code != 0 {
        return Ok((
            Err(ToolError::Exit {
                tool,
                code: exit_code,
                stderr: String::from_utf8_lossy(&err).trim().to_string(),
            }),
            fuel_used,
        ));
    }
    let result = serde_json::from_slice(&out).map_err(|e| ToolError::NotJson {
        tool,
        message: if out.is_empty() {
            "no output".to_string()
        } else {
            e.to_string()
        },
        head: String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned(),
    });
    Ok((result, fuel_used))
}

/// A store with the call's fuel, wall-clock deadline and memory limiter.
fn new_store<T: 'static>(
    sandbox: &Sandbox,
    state: T,
    limits: &Limits,
    limiter: fn(&mut T) -> &mut Limiter,
) -> Result<Store<T>, HostError> {
    let mut store = Store::new(sandbox.engine(), state);
    store.limiter(move |s| limiter(s) as &mut dyn wasmtime::ResourceLimiter);
    store
        .set_fuel(limits.fuel)
        .map_err(|e| HostError::Engine(format!("{e:#}")))?;
    let ticks = limits
        .timeout_ms
        .div_ceil(EPOCH_TICK.as_millis() as u64)
        .max(1);
    // +1: the tick in progress when the call starts may end at any moment.
    store.set_epoch_deadline(ticks + 1);
    Ok(store)
}

/// Fuel the call consumed.
fn fuel_consumed<T>(store: &Store<T>, limits: &Limits) -> u64 {
    limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0))
}

fn exit_status(e: &wasmtime::Error) -> Option<i32> {
    e.chain()
        .find_map(|c| c.downcast_ref::<I32Exit>())
        .map(|exit| exit.0)
}

fn classify_failure(
    e: &wasmtime::Error,
    tool: String,
    limits: &Limits,
    stderr: &[u8],
) -> ToolError {
    if e.chain().any(|c| c.is::<MemoryLimitExceeded>()) {
        return ToolError::Memory {
            tool,
            limit_bytes: limits.memory_bytes(),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ToolError::Deadline {
            tool,
            budget: format!("fuel ({} units)", limits.fuel),
        },
        Some(Trap::Interrupt) => ToolError::Deadline {
            tool,
            budget: format!("time ({} ms)", limits.timeout_ms),
        },
        Some(Trap::StackOverflow) => ToolError::Trap {
            tool,
            message: "stack overflow (recursion too deep)".to_string(),
        },
        // A panicking Rust guest prints its message before aborting: the model should see it.
        Some(trap) => ToolError::Trap {
            tool,
            message: match String::from_utf8_lossy(stderr).trim() {
                "" => trap.to_string(),
                said => format!("{trap}; stderr: {said}"),
            },
        },
        None => ToolError::Trap {
            tool,
            message: format!("{e:#}"),
        },
    }
}

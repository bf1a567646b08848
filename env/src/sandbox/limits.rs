//! Resource limits of one call, and the limiter that enforces the memory cap.
//!
//! The pooling allocator bounds every instance by the largest cap of any tool; this limiter
//! enforces each tool's own cap and, unlike `StoreLimits`, traps with a typed
//! [`MemoryLimitExceeded`] so the host can tell "out of memory" from any other crash.

use serde::{Deserialize, Serialize};

/// Per-call budgets. Every field has a default, and a tool may override any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Fuel, roughly wasm instructions. Deterministic: the same call always stops at the same
    /// point. 100 million is about 0.1–0.3 s of guest code.
    pub fuel: u64,
    /// Wall-clock deadline in milliseconds (epoch interruption, 1 ms ticks): a backstop for
    /// time spent where fuel is not charged.
    pub timeout_ms: u64,
    /// Linear memory cap in MiB.
    pub memory_mib: u64,
    /// Largest stdout a tool may write, in bytes; the result must fit.
    pub max_output_bytes: usize,
    /// Largest stderr a tool may write, in bytes (error messages go back to the model).
    pub max_stderr_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 100_000_000,
            timeout_ms: 1_000,
            memory_mib: 64,
            max_output_bytes: 64 * 1024,
            max_stderr_bytes: 4 * 1024,
        }
    }
}

impl Limits {
    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib.saturating_mul(1024 * 1024)
    }
}

/// Optional per-tool overrides of [`Limits`]; unset fields take the sandbox defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// See [`Limits::fuel`].
    pub fuel: Option<u64>,
    /// See [`Limits::timeout_ms`].
    pub timeout_ms: Option<u64>,
    /// See [`Limits::memory_mib`].
    pub memory_mib: Option<u64>,
    /// See [`Limits::max_output_bytes`].
    pub max_output_bytes: Option<usize>,
    /// See [`Limits::max_stderr_bytes`].
    pub max_stderr_bytes: Option<usize>,
}

impl LimitOverrides {
    /// `base` with every set field of `self` replacing its counterpart.
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(base.fuel),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            memory_mib: self.memory_mib.unwrap_or(base.memory_mib),
            max_output_bytes: self.max_output_bytes.unwrap_or(base.max_output_bytes),
            max_stderr_bytes: self.max_stderr_bytes.unwrap_or(base.max_stderr_bytes),
        }
    }
}

/// The trap payload raised when a guest grows memory or a table past its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (asked for {desired})")]
pub struct MemoryLimitExceeded {
    /// The cap in bytes.
    pub limit: u64,
    /// What the guest asked for.
    pub desired: u64,
}

/// Most table elements a guest may have; tables hold function references, and no real tool
/// needs more than a few thousand.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Enforces one call's memory cap.
pub struct Limiter {
    /// The cap in bytes.
    pub memory_bytes: u64,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_bytes {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory_bytes,
                desired: desired as u64,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory_bytes,
                desired: desired as u64,
            }));
        }
        Ok(true)
    }
}

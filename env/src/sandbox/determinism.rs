//! The guest's view of time and randomness, fixed so that the same call gives the same result.
//!
//! Reproducible episodes matter for RL: a reward must not depend on when or in which order calls
//! ran. Guests therefore see a wall clock frozen at a configured instant, a monotonic clock frozen
//! at zero, and random bytes from a ChaCha stream seeded by the episode's seed, the tool's name and
//! the call's arguments.

use rand::SeedableRng;
use sha2::{Digest, Sha256};
use std::time::Duration;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// A wall clock that always reads the same instant.
pub struct FrozenWallClock(pub Duration);

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// A monotonic clock that never advances. Guests that wait for time to pass spin until their CPU
/// budget stops them, which is the behaviour we want from a deterministic sandbox.
pub struct FrozenMonotonicClock;

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The seed of one call: a hash of the episode seed, the tool and its exact argument bytes.
pub fn call_seed(episode_seed: u64, tool: &str, args: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(episode_seed.to_le_bytes());
    h.update((tool.len() as u64).to_le_bytes());
    h.update(tool.as_bytes());
    h.update(args);
    h.finalize().into()
}

/// A seeded cryptographic-quality generator for `random_get`.
pub fn rng(seed: [u8; 32]) -> rand::rngs::StdRng {
    rand::rngs::StdRng::from_seed(seed)
}

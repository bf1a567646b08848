//! `kv_store`: a small key-value store that lives for one episode, e.g.
//! `{"op": "set", "key": "x", "value": 42}` then `{"op": "get", "key": "x"}` → `{"key": "x", "value": 42}`.
//!
//! The host preopens a fresh, writable directory at `/state` for each episode; the store is the
//! file `/state/kv.json`. The logic takes the directory as a parameter so it is tested natively.

use std::path::Path;

mod ops;
mod store;

/// Where the host mounts the episode's state directory.
const STATE_DIR: &str = "/state";

fn main() {
    guest::run(|args| ops::execute(Path::new(STATE_DIR), args))
}

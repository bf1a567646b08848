//! `search`: ranked keyword search over a small fixed corpus, e.g.
//! `{"query": "moons of Mars"}` → `{"results": [{"id": "planet-mars", ...}]}`.
//!
//! The host preopens the tool's read-only `data/` directory at `/data`. The logic takes the
//! corpus path as a parameter so it is tested natively against the same file.

use std::path::Path;

mod bm25;
mod corpus;
mod text;
mod tool;

/// Where the corpus lies inside the sandbox.
const CORPUS: &str = "/data/corpus.jsonl";

fn main() {
    guest::run(|args| tool::search(Path::new(CORPUS), args))
}

//! Persistence: the whole store is one JSON object in `kv.json`, read before and rewritten after
//! each change. Writes go to a temporary file renamed over the old one, so a tool killed mid-write
//! (out of fuel, timeout) leaves the previous store intact rather than a truncated file.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

/// The store file's name inside the state directory.
pub const FILE: &str = "kv.json";
const TEMP_FILE: &str = "kv.json.tmp";

/// Largest store accepted, in bytes of its compact JSON encoding (60 KiB). A `get` or `list`
/// result is never larger than the store plus a key, so this keeps every result within the
/// host's default 64 KiB output cap: a model can always read back what it stored.
pub const MAX_BYTES: usize = 60 * 1024;

/// The store's contents; a `BTreeMap` keeps keys sorted, for `list` and for a stable file.
pub type Map = BTreeMap<String, Value>;

/// Reads the store in `dir`; a missing file is an empty store (the first call of an episode).
pub fn load(dir: &Path) -> Result<Map, String> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(format!("cannot read the store: {e}")),
    };
    serde_json::from_slice(&bytes).map_err(|e| format!("the store file is corrupt: {e}"))
}

/// Replaces the store in `dir` with `map`, unless it would exceed [`MAX_BYTES`].
pub fn save(dir: &Path, map: &Map) -> Result<(), String> {
    let bytes = serde_json::to_vec(map).map_err(|e| format!("cannot encode the store: {e}"))?;
    if bytes.len() > MAX_BYTES {
        return Err(format!(
            "store full: the store would take {} bytes (limit {MAX_BYTES}); delete keys or store smaller values",
            bytes.len()
        ));
    }
    let temp = dir.join(TEMP_FILE);
    std::fs::write(&temp, &bytes).map_err(|e| format!("cannot write the store: {e}"))?;
    std::fs::rename(&temp, dir.join(FILE)).map_err(|e| format!("cannot write the store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn round_trip_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut map = Map::new();
        map.insert("b".into(), json!([1, 2]));
        map.insert("a".into(), json!(null));
        save(dir.path(), &map).unwrap();
        assert_eq!(load(dir.path()).unwrap(), map);
        assert!(!dir.path().join(TEMP_FILE).exists());
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text, r#"{"a":null,"b":[1,2]}"#);
    }

    #[test]
    fn corrupt_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        assert!(load(dir.path())
            .unwrap_err()
            .starts_with("the store file is corrupt"));
        std::fs::write(dir.path().join(FILE), "[1]").unwrap();
        assert!(load(dir.path()).is_err());
    }

    #[test]
    fn oversized_store_is_refused_and_old_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut map = Map::new();
        map.insert("k".into(), json!("small"));
        save(dir.path(), &map).unwrap();
        map.insert("big".into(), json!("x".repeat(MAX_BYTES)));
        assert!(save(dir.path(), &map)
            .unwrap_err()
            .starts_with("store full"));
        assert_eq!(load(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        assert!(save(&gone, &Map::new())
            .unwrap_err()
            .starts_with("cannot write the store"));
    }
}

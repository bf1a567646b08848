//! The four operations (get, set, delete, list): argument decoding, key checks and the result
//! shapes. A `get` of a missing key is an error, not `{"found": false}`: the error message names
//! the keys that do exist, which tells the model more about its mistake.

use crate::store;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::path::Path;

/// Longest key accepted, in characters.
pub const MAX_KEY: usize = 256;

/// How many bytes of existing keys a "no key" error lists before summarizing the rest; the host
/// caps error messages at a few KiB.
const KEYS_IN_ERROR_BYTES: usize = 1000;

/// Which operation to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Read the value stored under `key`.
    Get,
    /// Store `value` under `key`, replacing any previous value.
    Set,
    /// Remove `key`.
    Delete,
    /// List all keys.
    List,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::List => "list",
        }
    }
}

/// Arguments, as described by `schemas/tools/kv_store.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The operation.
    pub op: Op,
    /// The key (get, set, delete).
    #[serde(default)]
    pub key: Option<String>,
    /// The value to store (set only); `Some(Value::Null)` when the caller stores `null`.
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
}

/// Tells an explicit `"value": null` (store null) apart from an absent value, which plain
/// `Option<Value>` would conflate.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Runs one operation against the store in `dir`.
pub fn execute(dir: &Path, args: Args) -> Result<Value, String> {
    let op = args.op;
    if op != Op::Set && args.value.is_some() {
        return Err(format!(
            "op '{}' takes no 'value' (only 'set' does)",
            op.name()
        ));
    }
    let key = match (op, args.key) {
        (Op::List, Some(_)) => return Err("op 'list' takes no 'key'".to_string()),
        (Op::List, None) => {
            let keys: Vec<String> = store::load(dir)?.into_keys().collect();
            return Ok(json!({ "keys": keys }));
        }
        (_, None) => return Err(format!("op '{}' needs a 'key'", op.name())),
        (_, Some(key)) => key,
    };
    check_key(&key)?;
    let mut map = store::load(dir)?;
    match (op, args.value) {
        (Op::Set, Some(value)) => {
            map.insert(key.clone(), value);
            store::save(dir, &map)?;
            Ok(json!({ "ok": true, "key": key }))
        }
        (Op::Set, None) => Err("op 'set' needs a 'value' (any JSON value)".to_string()),
        (Op::Delete, _) => {
            let deleted = map.remove(&key).is_some();
            if deleted {
                store::save(dir, &map)?;
            }
            Ok(json!({ "deleted": deleted }))
        }
        // `list` returned above.
        (Op::Get | Op::List, _) => match map.remove(&key) {
            Some(value) => Ok(json!({ "key": key, "value": value })),
            None => Err(missing(&key, &map)),
        },
    }
}

fn check_key(key: &str) -> Result<(), String> {
    let len = key.chars().count();
    if len == 0 {
        return Err("the key must not be empty".to_string());
    }
    if len > MAX_KEY {
        return Err(format!(
            "the key is {len} characters long (limit {MAX_KEY})"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("the key must not contain control characters (such as newlines)".to_string());
    }
    Ok(())
}

fn missing(key: &str, map: &store::Map) -> String {
    if map.is_empty() {
        return format!("no key '{key}' (the store is empty)");
    }
    let mut listed = String::new();
    let mut shown = 0;
    for stored in map.keys() {
        if !listed.is_empty() && listed.len() + stored.len() > KEYS_IN_ERROR_BYTES {
            break;
        }
        if !listed.is_empty() {
            listed.push_str(", ");
        }
        listed.push_str(stored);
        shown += 1;
    }
    let more = map.len() - shown;
    if more > 0 {
        listed.push_str(&format!(" and {more} more"));
    }
    format!("no key '{key}'; stored keys: {listed}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(dir: &Path, args: Value) -> Result<Value, String> {
        let args: Args = serde_json::from_value(args).map_err(|e| format!("decode: {e}"))?;
        execute(dir, args)
    }

    #[test]
    fn set_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(call(d, json!({"op": "list"})).unwrap(), json!({"keys": []}));
        assert_eq!(
            call(
                d,
                json!({"op": "set", "key": "x", "value": {"a": [1, 2.5, "s"]}})
            )
            .unwrap(),
            json!({"ok": true, "key": "x"})
        );
        call(d, json!({"op": "set", "key": "b", "value": 7})).unwrap();
        assert_eq!(
            call(d, json!({"op": "get", "key": "x"})).unwrap(),
            json!({"key": "x", "value": {"a": [1, 2.5, "s"]}})
        );
        assert_eq!(
            call(d, json!({"op": "list"})).unwrap(),
            json!({"keys": ["b", "x"]})
        );
        assert_eq!(
            call(d, json!({"op": "delete", "key": "x"})).unwrap(),
            json!({"deleted": true})
        );
        assert_eq!(
            call(d, json!({"op": "delete", "key": "x"})).unwrap(),
            json!({"deleted": false})
        );
        assert_eq!(
            call(d, json!({"op": "list"})).unwrap(),
            json!({"keys": ["b"]})
        );
    }

    #[test]
    fn set_overwrites_and_stores_null() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        call(d, json!({"op": "set", "key": "k", "value": 1})).unwrap();
        call(d, json!({"op": "set", "key": "k", "value": null})).unwrap();
        assert_eq!(
            call(d, json!({"op": "get", "key": "k"})).unwrap(),
            json!({"key": "k", "value": null})
        );
    }

    #[test]
    fn missing_key_is_an_error_naming_stored_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            call(d, json!({"op": "get", "key": "x"})).unwrap_err(),
            "no key 'x' (the store is empty)"
        );
        call(d, json!({"op": "set", "key": "b", "value": 1})).unwrap();
        call(d, json!({"op": "set", "key": "a", "value": 1})).unwrap();
        assert_eq!(
            call(d, json!({"op": "get", "key": "x"})).unwrap_err(),
            "no key 'x'; stored keys: a, b"
        );
        for i in 0..30 {
            let key = format!("k{i:02}{}", "k".repeat(97));
            call(d, json!({"op": "set", "key": key, "value": i})).unwrap();
        }
        let err = call(d, json!({"op": "get", "key": "x"})).unwrap_err();
        assert!(err.len() < 1200, "{err}");
        assert!(err.ends_with("k and 21 more"), "{err}");
    }

    #[test]
    fn argument_combinations() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            call(d, json!({"op": "set", "key": "k"})).unwrap_err(),
            "op 'set' needs a 'value' (any JSON value)"
        );
        assert_eq!(
            call(d, json!({"op": "get"})).unwrap_err(),
            "op 'get' needs a 'key'"
        );
        assert_eq!(
            call(d, json!({"op": "delete", "key": "k", "value": 1})).unwrap_err(),
            "op 'delete' takes no 'value' (only 'set' does)"
        );
        assert_eq!(
            call(d, json!({"op": "list", "key": "k"})).unwrap_err(),
            "op 'list' takes no 'key'"
        );
        assert!(call(d, json!({"op": "put", "key": "k"})).is_err());
        assert!(call(d, json!({"op": "get", "key": "k", "extra": 1})).is_err());
    }

    #[test]
    fn keys_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            call(d, json!({"op": "set", "key": "", "value": 1})).unwrap_err(),
            "the key must not be empty"
        );
        let long = "é".repeat(MAX_KEY + 1);
        assert_eq!(
            call(d, json!({"op": "get", "key": long})).unwrap_err(),
            "the key is 257 characters long (limit 256)"
        );
        let max = "é".repeat(MAX_KEY);
        call(d, json!({"op": "set", "key": max, "value": true})).unwrap();
        assert!(call(d, json!({"op": "set", "key": "a\nb", "value": 1}))
            .unwrap_err()
            .contains("control characters"));
    }

    #[test]
    fn store_size_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let half = "x".repeat(store::MAX_BYTES / 2);
        call(d, json!({"op": "set", "key": "a", "value": half})).unwrap();
        let err = call(d, json!({"op": "set", "key": "b", "value": half})).unwrap_err();
        assert!(err.starts_with("store full"), "{err}");
        assert_eq!(
            call(d, json!({"op": "list"})).unwrap(),
            json!({"keys": ["a"]})
        );
        // Overwriting a large value with a small one must still work when the store is near full.
        call(d, json!({"op": "set", "key": "a", "value": 1})).unwrap();
        call(d, json!({"op": "set", "key": "b", "value": half})).unwrap();
    }

    #[test]
    fn results_fit_the_default_output_cap() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Worst case for `list`: as many long keys as fit, with values as small as possible.
        let mut i = 0;
        while call(
            d,
            json!({"op": "set", "key": format!("{i:0256}"), "value": 0}),
        )
        .is_ok()
        {
            i += 1;
        }
        let list = call(d, json!({"op": "list"})).unwrap().to_string();
        assert!(list.len() < 64 * 1024, "{}", list.len());
        // Worst case for `get`: one value filling the store.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let big = "\u{1F600}".repeat(store::MAX_BYTES / 4 - 80);
        call(
            d,
            json!({"op": "set", "key": "k".repeat(MAX_KEY), "value": big}),
        )
        .unwrap();
        let get = call(d, json!({"op": "get", "key": "k".repeat(MAX_KEY)}))
            .unwrap()
            .to_string();
        assert!(get.len() < 64 * 1024, "{}", get.len());
    }
}

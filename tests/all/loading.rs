//! Loading checks everything up front and reports every problem with file, line and field.

use crate::common::{parse, schema, tool_entry, wasm, Fixture};
use toolenv::LoadError;

fn problems(fx: &Fixture) -> Vec<String> {
    match fx.load() {
        Err(LoadError::Problems { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => panic!("expected a list of problems, got: {e}"),
        Ok(_) => panic!("expected problems, the config loaded"),
    }
}

#[test]
fn the_shipped_config_loads() {
    let path = crate::common::repo().join("env/config.toml");
    let reg = toolenv::Registry::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = reg.tools().iter().map(|t| t.def.name.as_str()).collect();
    assert_eq!(
        names,
        ["calculator", "unit_convert", "kv_store", "search", "python"]
    );
    assert_eq!(reg.tool("python").unwrap().kind(), "component");
}

#[test]
fn unknown_keys_and_bad_types_name_the_line() {
    let e = parse("[sandbox]\nseed = 1\n\n[[tools]]\nmodule = \"a.wasm\"\nschema = \"a.json\"\ncolour = \"red\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("env/config.toml:7:"), "{e}");
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = parse("[sandbox.limits]\nfuel = \"lots\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("env/config.toml:2:"), "{e}");
    let e = parse("[[tools]]\nmodule = \"a.wasm\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field `schema`"), "{e}");
}

#[test]
fn every_problem_is_reported_with_file_line_and_field() {
    let fx = Fixture::new("");
    let not_wasm = fx.file("notwasm.wasm", "this is not a wasm module");
    let library = fx.file("lib.wat", "(module (func (export \"add\")))");
    let foreign = fx.file(
        "foreign.wat",
        "(module (import \"env\" \"host_secret\" (func)) (func (export \"_start\")))",
    );
    let component = fx.file("comp.wasm", b"\0asm\x0d\x00\x01\x00");
    let bad_schema = fx.file(
        "bad.json",
        r#"{"name": "bad", "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "integr"}}}}"#,
    );
    let not_json = fx.file("notjson.json", "{\"name\": \"x\",\n  oops}");
    let calc_schema = schema("calculator");
    let toml = format!(
        r#"[sandbox]
cache_dir = ""
limits = {{ memory_mib = 0 }}

[[tools]]
module = "missing.wasm"
schema = {calc:?}

[[tools]]
module = {not_wasm:?}
schema = {calc:?}

[[tools]]
module = {library:?}
schema = {calc:?}

[[tools]]
module = {foreign:?}
schema = {calc:?}

[[tools]]
module = {component:?}
schema = {calc:?}

[[tools]]
module = {good:?}
schema = {bad_schema:?}

[[tools]]
module = {good:?}
schema = {not_json:?}

[[tools]]
module = {good:?}
schema = "nowhere.json"

[[tools]]
module = {good:?}
schema = {calc:?}

[[tools]]
module = {good:?}
schema = {calc:?}
data_dir = "no/such/dir"
"#,
        calc = calc_schema,
        good = wasm("calculator"),
    );
    std::fs::write(&fx.path, toml).unwrap();
    let found = problems(&fx);
    let cfg = fx.path.display().to_string();
    let expect = [
        (
            format!("{cfg}: sandbox.limits"),
            "memory_mib must be between 1 and 4096",
        ),
        (format!("{cfg}:6: tools[0].module"), "missing.wasm"),
        (format!("{cfg}:10: tools[1].module"), "not a wasm module"),
        (format!("{cfg}:14: tools[2].module"), "no `_start`"),
        (
            format!("{cfg}:18: tools[3].module"),
            "imports `env::host_secret`",
        ),
        (format!("{cfg}:22: tools[4].module"), "component"),
        (
            format!("{}: parameters/properties/x/type", bad_schema.display()),
            "not a valid JSON Schema",
        ),
        (format!("{}:2", not_json.display()), "not valid JSON"),
        (format!("{cfg}:35: tools[7].schema"), "file not found"),
        (format!("{cfg}:44: tools[9].data_dir"), "not a directory"),
    ];
    for (at, words) in &expect {
        assert!(
            found
                .iter()
                .any(|p| p.starts_with(at.as_str()) && p.contains(words)),
            "no problem at {at} saying {words:?} in:\n{}",
            found.join("\n")
        );
    }
    // tools[8] and tools[9] both register `calculator`; tools[0..5] also use its schema but
    // their modules failed, and the clash is reported against the first good one.
    assert!(
        found
            .iter()
            .any(|p| p.contains("tools[") && p.contains("already registered")),
        "{}",
        found.join("\n")
    );
}

#[test]
fn name_clash_is_reported() {
    let toml = format!(
        "[sandbox]\ncache_dir = \"\"\n{}{}",
        tool_entry("calculator", ""),
        tool_entry("calculator", "")
    );
    let fx = Fixture::new(&toml);
    let found = problems(&fx);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("tools[1].schema")
            && found[0].contains("`calculator` is already registered by tools[0]"),
        "{}",
        found[0]
    );
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let toml = format!(
        "[sandbox]\ncache_dir = {:?}\n{}",
        cache.path().display().to_string(),
        tool_entry("calculator", "")
    );
    let fx = Fixture::new(&toml);
    let first = fx.load().unwrap();
    drop(first);
    let artifacts = std::fs::read_dir(cache.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("cwasm".as_ref()))
        .count();
    assert_eq!(artifacts, 1, "one artifact per module");
    let reg = fx.load().unwrap();
    let out = reg
        .call(
            &reg.episode(),
            "calculator",
            &serde_json::json!({"expression": "1+1"}),
        )
        .unwrap();
    assert_eq!(out.result.unwrap(), serde_json::json!({"value": 2}));
}

#[test]
fn a_selection_loads_only_the_named_tools_and_rejects_unknown_names() {
    let toml = format!(
        "[sandbox]\ncache_dir = \"\"\n{}{}",
        tool_entry("calculator", ""),
        tool_entry("unit_convert", "")
    );
    let fx = Fixture::new(&toml);
    let names = ["unit_convert".to_string()];
    let reg = toolenv::Registry::load_selecting(&fx.path, Some(&names)).unwrap();
    let loaded: Vec<&str> = reg.tools().iter().map(|t| t.def.name.as_str()).collect();
    assert_eq!(loaded, ["unit_convert"]);
    let e = reg
        .call(
            &reg.episode(),
            "calculator",
            &serde_json::json!({"expression": "1"}),
        )
        .unwrap()
        .result
        .unwrap_err();
    assert_eq!(e.kind(), "unknown_tool", "{e}");

    let names = ["calculator".to_string(), "abacus".to_string()];
    let e = toolenv::Registry::load_selecting(&fx.path, Some(&names))
        .err()
        .expect("an unknown name is an error")
        .to_string();
    assert!(
        e.contains("registers no tool named `abacus`; it registers calculator, unit_convert"),
        "{e}"
    );
}

#[test]
fn tools_of_a_state_group_share_their_state_and_others_do_not() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema("kv_store")).unwrap()).unwrap();
    let mut other = schema.clone();
    other["name"] = "kv_other".into();
    let set = serde_json::json!({"op": "set", "key": "k", "value": 7});
    let get = serde_json::json!({"op": "get", "key": "k"});
    for (extra, shared) in [("state_group = \"g\"", true), ("stateful = true", false)] {
        let fx = Fixture::new("");
        let other_path = fx.file("kv_other.json", other.to_string());
        let toml = format!(
            "{}[[tools]]\nmodule = {:?}\nschema = {:?}\n{extra}\n",
            tool_entry("kv_store", extra),
            wasm("kv_store").display().to_string(),
            other_path.display().to_string()
        );
        std::fs::write(&fx.path, toml).unwrap();
        let reg = fx.load().unwrap_or_else(|e| panic!("{e}"));
        let episode = reg.episode();
        assert!(reg.call(&episode, "kv_store", &set).unwrap().result.is_ok());
        let got = reg.call(&episode, "kv_other", &get).unwrap().result;
        assert_eq!(got.is_ok(), shared, "{extra}: {got:?}");
        if shared {
            assert_eq!(got.unwrap()["value"], 7);
            // Another episode's group starts empty.
            let fresh = reg.episode();
            assert!(reg.call(&fresh, "kv_other", &get).unwrap().result.is_err());
        }
    }
    let fx = Fixture::new(&tool_entry("kv_store", "state_group = \"../up\""));
    let p = problems(&fx).join("\n");
    assert!(
        p.contains("tools[0].state_group") && p.contains("a state group is named"),
        "{p}"
    );
}

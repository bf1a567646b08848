//! Components as tools beside core modules: a Rust tool built both ways answers byte for byte the
//! same, and a component that cannot be a tool is refused at load, naming the file and the reason.

use crate::common::{schema, tool_entry, wasm, Fixture};
use serde_json::json;

/// Load problems of `module` (bytes written beside the config) registered under `schema`.
fn load_problems(module: &[u8]) -> String {
    let fx = Fixture::new("");
    let path = fx.file("tool.wasm", module);
    let toml = format!(
        "[sandbox]\ncache_dir = \"\"\n\n[[tools]]\nmodule = {:?}\nschema = {:?}\n",
        path.display().to_string(),
        schema("calculator").display().to_string()
    );
    std::fs::write(&fx.path, toml).unwrap();
    match fx.load() {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_component_that_is_not_a_command_is_refused_at_load() {
    let library = wat::parse_str("(component (core module) )").unwrap();
    let e = load_problems(&library);
    assert!(
        e.contains("tools[0].module") && e.contains("does not export `wasi:cli/run`"),
        "{e}"
    );
}

#[test]
fn a_component_importing_what_the_sandbox_lacks_is_refused_by_name() {
    let http =
        wat::parse_str(r#"(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#)
            .unwrap();
    let e = load_problems(&http);
    assert!(
        e.contains("tools[0].module")
            && e.contains(
                "imports `wasi:http/outgoing-handler@0.2.0`, which the sandbox does not provide"
            ),
        "{e}"
    );
}

#[test]
fn a_truncated_component_is_refused_at_load() {
    let whole = std::fs::read(wasm("text_stats")).unwrap();
    let e = load_problems(&whole[..whole.len() / 2]);
    assert!(
        e.contains("tools[0].module") && e.contains("cannot be compiled"),
        "{e}"
    );
}

#[test]
fn a_rust_tool_built_as_module_and_as_component_gives_the_same_bytes() {
    let component = wasm("p2/calculator");
    let toml = format!(
        "[sandbox]\ncache_dir = \"\"\n{}[[tools]]\nmodule = {:?}\nschema = {:?}\n",
        tool_entry("calculator", ""),
        component.display().to_string(),
        // The same definition under another name, so both kinds are registered at once.
        write_renamed_schema(),
    );
    let fx = Fixture::new(&toml);
    let reg = fx.load().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reg.tool("calculator").unwrap().kind(), "module");
    assert_eq!(reg.tool("calculator_p2").unwrap().kind(), "component");
    for expression in [
        "6*7",
        "2^0.5",
        "sqrt(2) * pi / 7",
        "1/0",
        "(1+",
        "10 % 3 - 2 ** 10",
    ] {
        let args = json!({ "expression": expression });
        let run = |name: &str| {
            let out = reg.call(&reg.episode(), name, &args).unwrap();
            match out.result {
                Ok(v) => serde_json::to_vec(&v).unwrap(),
                Err(e) => format!("{}: {}", e.kind(), e)
                    .replace("calculator_p2", "calculator")
                    .into_bytes(),
            }
        };
        assert_eq!(
            String::from_utf8(run("calculator")).unwrap(),
            String::from_utf8(run("calculator_p2")).unwrap(),
            "{expression}"
        );
    }
}

/// The calculator's definition renamed `calculator_p2`, in a temporary file kept for the test run.
fn write_renamed_schema() -> String {
    let mut def: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema("calculator")).unwrap()).unwrap();
    def["name"] = json!("calculator_p2");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("calculator_p2.json");
    std::fs::write(&path, def.to_string()).unwrap();
    path.display().to_string()
}

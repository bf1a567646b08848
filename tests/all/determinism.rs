//! Same call, same result: frozen clocks, seeded randomness, per-episode state that starts empty
//! and is removed afterwards, read-only data.

use crate::common::{hostile_registry, tool_entry, Fixture};
use serde_json::json;

#[test]
fn clock_and_randomness_are_reproducible_and_seeded() {
    let (_fx, reg) = hostile_registry();
    let args = json!({"mode": "entropy"});
    let run = |seed: u64| {
        reg.call(&reg.episode_with_seed(seed), "hostile", &args)
            .unwrap()
            .result
            .unwrap()
    };
    let a = run(7);
    assert_eq!(a["now"], json!(1_735_689_600u64), "{a}");
    assert_eq!(a["elapsed_ns"], json!(0), "{a}");
    assert_eq!(a, run(7));
    assert_ne!(a["random"], run(8)["random"]);
}

#[test]
fn state_is_private_to_an_episode_and_removed_after_it() {
    let state_root = tempfile::tempdir().unwrap();
    let toml = format!(
        "[sandbox]\ncache_dir = \"\"\nstate_root = {:?}\n{}",
        state_root.path().display().to_string(),
        tool_entry("hostile", "stateful = true")
    );
    let fx = Fixture::new(&toml);
    let reg = fx.load().unwrap();
    let write = json!({"mode": "write_file", "path": "/state/note"});
    let read = json!({"mode": "read_file", "path": "/state/note"});

    let first = reg.episode();
    assert!(reg.call(&first, "hostile", &write).unwrap().result.is_ok());
    let got = reg.call(&first, "hostile", &read).unwrap().result.unwrap();
    assert_eq!(got, json!({"content": "pwned"}));
    let root = first.root().unwrap().to_path_buf();
    assert!(root.starts_with(state_root.path()));

    let second = reg.episode();
    let e = reg
        .call(&second, "hostile", &read)
        .unwrap()
        .result
        .unwrap_err();
    assert_eq!(e.kind(), "exit", "a new episode starts empty: {e}");

    first.close().unwrap();
    assert!(!root.exists(), "state outlived its episode");
    drop(second);
    assert_eq!(std::fs::read_dir(state_root.path()).unwrap().count(), 0);
}

#[test]
fn data_dir_is_readable_but_not_writable() {
    let fx = Fixture::new("");
    std::fs::create_dir(fx.dir.path().join("data")).unwrap();
    fx.file("data/fact.txt", "water boils at 100 C");
    let toml = format!(
        "[sandbox]\ncache_dir = \"\"\n{}",
        tool_entry("hostile", "data_dir = \"data\"")
    );
    std::fs::write(&fx.path, toml).unwrap();
    let reg = fx.load().unwrap_or_else(|e| panic!("{e}"));
    let ep = reg.episode();
    let got = reg
        .call(
            &ep,
            "hostile",
            &json!({"mode": "read_file", "path": "/data/fact.txt"}),
        )
        .unwrap()
        .result
        .unwrap();
    assert_eq!(got, json!({"content": "water boils at 100 C"}));
    let e = reg
        .call(
            &ep,
            "hostile",
            &json!({"mode": "write_file", "path": "/data/fact.txt"}),
        )
        .unwrap()
        .result
        .unwrap_err();
    assert_eq!(e.kind(), "exit", "{e}");
    let e = reg
        .call(
            &ep,
            "hostile",
            &json!({"mode": "read_file", "path": "/data/../config.toml"}),
        )
        .unwrap()
        .result
        .unwrap_err();
    assert_eq!(e.kind(), "exit", "escaped /data: {e}");
    assert_eq!(
        std::fs::read_to_string(fx.dir.path().join("data/fact.txt")).unwrap(),
        "water boils at 100 C"
    );
}

#[test]
fn concurrent_calls_share_one_registry() {
    let (_fx, reg) = hostile_registry();
    std::thread::scope(|s| {
        for t in 0..4 {
            let reg = &reg;
            s.spawn(move || {
                let ep = reg.episode();
                for i in 0..50 {
                    let expr = format!("{t}*100+{i}");
                    let out = reg
                        .call(&ep, "calculator", &json!({"expression": expr}))
                        .unwrap();
                    assert_eq!(out.result.unwrap(), json!({"value": t * 100 + i}));
                }
            });
        }
    });
}

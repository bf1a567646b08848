//! Shared fixtures: the reference JSON and the SmolLM2 model, loaded once per test binary.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device};
use trainer::LoadedModel;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("trainer crate sits in the repository root")
        .to_path_buf()
}

pub fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

pub fn read_json(name: &str) -> serde_json::Value {
    let path = reference_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON parses")
}

/// The default model's path; fails (never skips) when it has not been fetched.
pub fn gguf_path() -> PathBuf {
    let path = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run trainer/scripts/fetch-model.sh",
        path.display()
    );
    path
}

pub fn smollm2() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        trainer::load(&gguf_path(), DType::F32, &Device::Cpu).expect("SmolLM2 loads")
    })
}

pub fn smollm2_reference() -> &'static serde_json::Value {
    static REF: OnceLock<serde_json::Value> = OnceLock::new();
    REF.get_or_init(|| read_json("smollm2.json"))
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

//! Loading fails with errors that name the problem.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use trainer::{Error, Model, ModelConfig};

use crate::common::reference_dir;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trainer-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn missing_model_path_is_named() {
    let err = trainer::load(
        Path::new("/nonexistent/model.gguf"),
        DType::F32,
        &Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/model.gguf"));
}

#[test]
fn missing_config_json_is_named() {
    let dir = temp_dir("noconfig");
    let err = trainer::load_weights(&dir).err().unwrap();
    assert!(
        matches!(&err, Error::MissingFile { path, .. } if path.ends_with("config.json")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unsupported_architecture_is_refused() {
    let dir = temp_dir("gpt2");
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 10,
            "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2}"#,
    )
    .unwrap();
    let err = trainer::load_weights(&dir).err().unwrap();
    assert!(
        matches!(&err, Error::UnsupportedArchitecture(a) if a == "GPT2LMHeadModel"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn shape_mismatch_names_the_tensor() {
    let (mut config, weights) = trainer::load_weights(&reference_dir().join("tiny-qwen2")).unwrap();
    config.intermediate_size += 1;
    let err = Model::from_weights(config, weights, DType::F32, &Device::Cpu)
        .err()
        .unwrap();
    match &err {
        Error::ShapeMismatch {
            name,
            expected,
            found,
        } => {
            assert!(name.contains("mlp"), "{name}");
            assert_ne!(expected, found);
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }
}

#[test]
fn missing_tensor_is_named() {
    let config = ModelConfig::tiny(trainer::Architecture::Llama);
    let mut weights = trainer::model::random_weights(&config, 3).unwrap();
    weights.remove("model.layers.1.self_attn.v_proj.weight");
    let err = Model::from_weights(config, weights, DType::F32, &Device::Cpu)
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::MissingTensor(n) if n == "model.layers.1.self_attn.v_proj.weight")
    );
}

#[test]
fn out_of_vocabulary_ids_are_an_error_not_a_panic() {
    let config = ModelConfig::tiny(trainer::Architecture::Llama);
    let model = Model::random(config, DType::F32, &Device::Cpu, 1).unwrap();
    let input = Tensor::new(&[[1u32, 999]], &Device::Cpu).unwrap();
    assert!(model.logits(&input, None).is_err());
}

#[test]
fn empty_inputs_are_errors_not_panics() {
    let config = ModelConfig::tiny(trainer::Architecture::Llama);
    let model = Model::random(config, DType::F32, &Device::Cpu, 1).unwrap();
    let empty = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
    assert!(model.logits(&empty, None).is_err());
    let mut cache = trainer::KvCache::new(2);
    assert!(model
        .forward_step(&empty, &[vec![]], &[vec![]], &mut cache)
        .is_err());
    let one = Tensor::new(&[[3u32]], &Device::Cpu).unwrap();
    assert!(model.token_logprobs(&one, None, 8).is_err());
    // A mask of the wrong shape is refused.
    let two = Tensor::new(&[[3u32, 4]], &Device::Cpu).unwrap();
    assert!(model.logits(&two, Some(&[vec![true]])).is_err());
}

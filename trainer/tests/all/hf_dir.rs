//! Hugging Face directories: a tiny random Qwen2 (q/k/v biases, untied head, five safetensors
//! shards) saved by transformers, whose logits transformers also computed.

use candle_core::{DType, Device, IndexOp, Tensor};
use trainer::{Architecture, Model};

use crate::common::{floats, ids, read_json, reference_dir};

#[test]
fn sharded_qwen2_logits_match_transformers() {
    let dir = reference_dir().join("tiny-qwen2");
    let (config, weights) = trainer::load_weights(&dir).unwrap();
    assert_eq!(config.architecture, Architecture::Qwen2);
    assert!(config.attention_bias && !config.tie_word_embeddings);
    let model = Model::from_weights(config, weights, DType::F32, &Device::Cpu).unwrap();
    let reference = read_json("tiny_qwen2.json");
    let tokens = ids(&reference["ids"]);
    let input = Tensor::new(tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.logits(&input, None).unwrap().i(0).unwrap();
    let mut worst = 0f32;
    for (p, row) in reference["logits"].as_array().unwrap().iter().enumerate() {
        let got: Vec<f32> = logits.i(p).unwrap().to_vec1().unwrap();
        for (g, w) in got.iter().zip(floats(row)) {
            worst = worst.max((g - w).abs());
        }
    }
    assert!(worst <= 1e-4, "max abs logit difference {worst}");
}

#[test]
fn left_padding_does_not_change_logits() {
    let dir = reference_dir().join("tiny-qwen2");
    let (config, weights) = trainer::load_weights(&dir).unwrap();
    let model = Model::from_weights(config, weights, DType::F32, &Device::Cpu).unwrap();
    let tokens = [3u32, 14, 15, 9, 26];
    let alone = Tensor::new(&tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let alone = model.logits(&alone, None).unwrap().i((0, 4)).unwrap();
    let padded = Tensor::new(&[[0u32, 0, 3, 14, 15, 9, 26]], &Device::Cpu).unwrap();
    let mask = vec![vec![false, false, true, true, true, true, true]];
    let padded = model
        .logits(&padded, Some(&mask))
        .unwrap()
        .i((0, 6))
        .unwrap();
    let diff: f32 = (alone - padded)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(diff < 1e-5, "left padding changed the logits by {diff}");
}

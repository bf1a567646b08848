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

#[test]
fn full_hf_directory_loads_tokenizer_and_chat_template() {
    use crate::common::{smollm2, smollm2_reference};
    use trainer::Message;

    // A Hugging Face directory assembled from the tiny Qwen2 weights and SmolLM2's tokenizer
    // (written by our GGUF conversion), with the chat template in tokenizer_config.json.
    let dir = std::env::temp_dir().join(format!("trainer-hfdir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(reference_dir().join("tiny-qwen2")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let gguf_tok = &smollm2().tokenizer;
    gguf_tok
        .inner()
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    let reference = smollm2_reference();
    let template = {
        let gguf = trainer::model::weights::GgufFile::open(&crate::common::gguf_path()).unwrap();
        gguf.string("tokenizer.chat_template").unwrap().to_string()
    };
    let config = serde_json::json!({
        "bos_token": "<|im_start|>",
        "eos_token": {"content": "<|im_end|>"},
        "chat_template": template,
    });
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();

    let loaded = trainer::load(&dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(loaded.tokenizer.eos(), Some(("<|im_end|>", 2)));
    for case in reference["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            loaded.tokenizer.encode(text, true).unwrap(),
            ids(&case["ids"]),
            "{text:?}"
        );
    }
    let messages: Vec<Message> =
        serde_json::from_value(reference["chat"]["messages"].clone()).unwrap();
    assert_eq!(
        loaded
            .tokenizer
            .apply_chat_template(&messages, true)
            .unwrap(),
        reference["chat"]["text"].as_str().unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_tokenizer_json_is_named() {
    let dir = std::env::temp_dir().join(format!("trainer-notok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        reference_dir().join("tiny-qwen2/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let err = trainer::load(&dir, DType::F32, &Device::Cpu).err().unwrap();
    assert!(
        matches!(&err, trainer::Error::MissingFile { path, .. } if path.ends_with("tokenizer.json")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

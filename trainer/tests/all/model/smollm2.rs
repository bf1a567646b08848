//! SmolLM2-135M-Instruct (GGUF) against transformers: tokenizer, chat template, logits, greedy
//! generation and the `logprobs` command.

use candle_core::{IndexOp, Tensor};
use trainer::{generate, Message, SamplingParams};

use crate::common::{floats, ids, smollm2, smollm2_reference};

#[test]
fn tokenizer_ids_match_transformers() {
    let tok = &smollm2().tokenizer;
    for case in smollm2_reference()["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = tok.encode(text, true).unwrap();
        assert_eq!(got, ids(&case["ids"]), "ids of {text:?}");
    }
}

#[test]
fn decode_matches_transformers() {
    let tok = &smollm2().tokenizer;
    for case in smollm2_reference()["decode"].as_array().unwrap() {
        let got = tok.decode(&ids(&case["ids"]), false).unwrap();
        assert_eq!(got, case["text"].as_str().unwrap());
    }
}

#[test]
fn chat_template_matches_transformers() {
    let tok = &smollm2().tokenizer;
    let reference = smollm2_reference();
    for (key, gen_prompt) in [("chat", true), ("chat_no_system", false)] {
        let messages: Vec<Message> =
            serde_json::from_value(reference[key]["messages"].clone()).unwrap();
        let got = tok.apply_chat_template(&messages, gen_prompt).unwrap();
        assert_eq!(got, reference[key]["text"].as_str().unwrap(), "{key}");
    }
}

#[test]
fn special_tokens_come_from_metadata() {
    let tok = &smollm2().tokenizer;
    assert_eq!(tok.bos(), Some(("<|im_start|>", 1)));
    assert_eq!(tok.eos(), Some(("<|im_end|>", 2)));
}

#[test]
fn logits_match_transformers() {
    let loaded = smollm2();
    let reference = &smollm2_reference()["logits"];
    let prompt = ids(&reference["prompt_ids"]);
    let input = Tensor::new(prompt.as_slice(), &candle_core::Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = loaded.model.logits(&input, None).unwrap().i(0).unwrap();
    let mut worst = 0f32;
    for (p, pos) in reference["positions"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let row: Vec<f32> = logits.i(p).unwrap().to_vec1().unwrap();
        for (id, want) in ids(&pos["ids"]).iter().zip(floats(&pos["logits"])) {
            worst = worst.max((row[*id as usize] - want).abs());
        }
    }
    println!("max |logit - transformers| = {worst:e}");
    assert!(worst <= 1e-3, "max abs logit difference {worst} > 1e-3");
}

#[test]
fn greedy_generation_matches_transformers() {
    let loaded = smollm2();
    let reference = &smollm2_reference()["greedy"];
    let prompt = ids(&reference["prompt_ids"]);
    let want = ids(&reference["new_ids"]);
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: want.len(),
        ..SamplingParams::default()
    };
    let out = generate(&loaded.model, &loaded.tokenizer, &[prompt], &params).unwrap();
    assert_eq!(out[0].tokens, want);
    let text = loaded.tokenizer.decode(&out[0].tokens, false).unwrap();
    assert_eq!(text, reference["text"].as_str().unwrap());
}

#[test]
fn token_logprobs_match_transformers() {
    let loaded = smollm2();
    let reference = &smollm2_reference()["logprobs"];
    let tokens = loaded
        .tokenizer
        .encode(reference["text"].as_str().unwrap(), true)
        .unwrap();
    assert_eq!(tokens, ids(&reference["tokens"]));
    let input = Tensor::new(tokens.as_slice(), &candle_core::Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    // A chunk smaller than the sequence exercises the chunked path.
    let got: Vec<f32> = loaded
        .model
        .token_logprobs(&input, None, 5)
        .unwrap()
        .i(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    let want = reference["logprobs"].as_array().unwrap();
    assert!(want[0].is_null());
    assert_eq!(got.len(), want.len() - 1);
    for (g, w) in got.iter().zip(&want[1..]) {
        let w = w.as_f64().unwrap() as f32;
        assert!((g - w).abs() <= 1e-3, "logprob {g} vs transformers {w}");
    }
}

#[test]
fn logprobs_command_prints_json() {
    let reference = &smollm2_reference()["logprobs"];
    let dir = std::env::temp_dir().join(format!("trainer-logprobs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("text.txt");
    std::fs::write(&file, reference["text"].as_str().unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["logprobs", "--model"])
        .arg(crate::common::gguf_path())
        .arg("--text-file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tokens"], reference["tokens"]);
    let got = json["logprobs"].as_array().unwrap();
    assert!(got[0].is_null());
    for (g, w) in got[1..]
        .iter()
        .zip(&reference["logprobs"].as_array().unwrap()[1..])
    {
        assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() <= 1e-3);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn generate_command_prints_the_greedy_reply() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["generate", "--model"])
        .arg(crate::common::gguf_path())
        .args([
            "--system",
            "You are a calculator.",
            "--prompt",
            "What is 2+3?",
        ])
        .args(["--max-new-tokens", "24", "--temperature", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = &smollm2_reference()["greedy"];
    let text = String::from_utf8(out.stdout).unwrap();
    // The command stops at EOS (`<|im_end|>`); the reference ran on past it.
    let want = reference["text"]
        .as_str()
        .unwrap()
        .split("<|im_end|>")
        .next()
        .unwrap();
    assert_eq!(text.trim_end_matches('\n'), want);
}

#[test]
fn every_parameter_gets_a_gradient() {
    let loaded = smollm2();
    let tokens = loaded
        .tokenizer
        .encode("Gradients reach every weight.", true)
        .unwrap();
    let input = Tensor::new(tokens.as_slice(), &candle_core::Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let loss = loaded
        .model
        .token_logprobs(&input, None, 4)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let vars = loaded.model.varmap().data().lock().unwrap();
    assert_eq!(
        vars.len(),
        2 + 30 * 9,
        "SmolLM2 has 272 weight tensors (tied head)"
    );
    for (name, var) in vars.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "gradient of {name} has norm {norm}"
        );
    }
}

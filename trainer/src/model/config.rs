//! Model hyper-parameters: one struct for the decoder-only families we implement (Llama and
//! Qwen2), filled either from a Hugging Face `config.json` or from GGUF metadata.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Which family a checkpoint belongs to. They share one code path; the differences are flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama / Mistral-style (SmolLM2 is one): no attention biases.
    Llama,
    /// Qwen2 / Qwen2.5: biases on the q, k and v projections.
    Qwen2,
}

/// Hyper-parameters of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Model family.
    pub architecture: Architecture,
    /// Number of token ids.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (grouped-query attention when smaller than `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Epsilon of the RMS norms.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// Whether the output projection reuses the token embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether q, k and v projections have biases.
    pub attention_bias: bool,
    /// Longest context the model was trained for.
    pub max_position_embeddings: usize,
}

impl ModelConfig {
    /// A tiny configuration for tests: a few layers, grouped-query attention, untied head.
    pub fn tiny(architecture: Architecture) -> Self {
        ModelConfig {
            architecture,
            vocab_size: 32,
            hidden_size: 16,
            intermediate_size: 24,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 4,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            tie_word_embeddings: false,
            attention_bias: architecture == Architecture::Qwen2,
            max_position_embeddings: 128,
        }
    }

    /// The shapes of SmolLM2-135M (used by the benchmark to build a random model).
    pub fn smollm2_135m() -> Self {
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 100000.0,
            tie_word_embeddings: true,
            attention_bias: false,
            max_position_embeddings: 8192,
        }
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let raw: HfConfig = serde_json::from_str(&text).map_err(|e| Error::InvalidJson {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let model_type = raw.model_type.clone().unwrap_or_default();
        let architecture = match model_type.as_str() {
            "llama" | "mistral" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            other => {
                let named = raw
                    .architectures
                    .as_ref()
                    .and_then(|a| a.first().cloned())
                    .unwrap_or_else(|| other.to_string());
                return Err(Error::UnsupportedArchitecture(named));
            }
        };
        // Scaled RoPE variants (llama3, yarn, ...) change every position's angles; computing plain
        // RoPE for them would silently give a different model.
        let rope_type = raw
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_type.clone())
            .or_else(|| {
                raw.rope_scaling
                    .as_ref()
                    .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
                    .and_then(|t| t.as_str().map(str::to_string))
            });
        if let Some(kind) = rope_type.filter(|k| k != "default") {
            return Err(Error::UnsupportedArchitecture(format!(
                "{model_type} with rope scaling {kind:?}"
            )));
        }
        let rope_theta = raw
            .rope_theta
            .or_else(|| raw.rope_parameters.as_ref().and_then(|r| r.rope_theta))
            .unwrap_or(10000.0);
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if raw.num_attention_heads == 0 || num_kv_heads == 0 {
            return Err(Error::InvalidJson {
                path: path.to_path_buf(),
                message: "num_attention_heads and num_key_value_heads must be positive".into(),
            });
        }
        let config = ModelConfig {
            architecture,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim: raw
                .head_dim
                .unwrap_or(raw.hidden_size / raw.num_attention_heads),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            attention_bias: raw
                .attention_bias
                .unwrap_or(architecture == Architecture::Qwen2),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(4096),
        };
        config.validate().map_err(|message| Error::InvalidJson {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// The Hugging Face `config.json` of this model (what [`ModelConfig::from_hf_config`] and
    /// `transformers` read), with the tokenizer's special-token ids.
    pub fn to_hf_json(&self, tokenizer: &crate::model::TextTokenizer) -> serde_json::Value {
        let (model_type, arch) = match self.architecture {
            Architecture::Llama => ("llama", "LlamaForCausalLM"),
            Architecture::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
        };
        let mut v = serde_json::json!({
            "architectures": [arch],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.attention_bias,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
        });
        if let Some((_, bos)) = tokenizer.bos() {
            v["bos_token_id"] = bos.into();
        }
        if let Some((_, eos)) = tokenizer.eos() {
            v["eos_token_id"] = eos.into();
        }
        v
    }

    /// Checks the relations between sizes that the model code relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_kv_heads == 0 || !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "num_heads {} is not a multiple of num_kv_heads {}",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) || self.head_dim == 0 {
            return Err(format!(
                "head_dim {} must be even and positive",
                self.head_dim
            ));
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err("vocab_size, hidden_size and num_layers must be positive".into());
        }
        Ok(())
    }
}

/// The subset of `config.json` we read; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    max_position_embeddings: Option<usize>,
    /// transformers 5 moved `rope_theta` (and the scaling type) here.
    rope_parameters: Option<RopeParameters>,
    rope_scaling: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RopeParameters {
    rope_theta: Option<f64>,
    rope_type: Option<String>,
}

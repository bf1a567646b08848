//! Reading checkpoints into named f32 tensors with Hugging Face names: GGUF files (llama
//! architecture, any quantization candle can dequantize) and Hugging Face directories
//! (`config.json` + single or sharded safetensors).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::model::config::{Architecture, ModelConfig};

/// An opened GGUF file: its metadata and tensor directory (tensor data is read on demand).
pub struct GgufFile {
    path: PathBuf,
    content: gguf_file::Content,
}

impl GgufFile {
    /// Parses the header of `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| Error::Metadata(format!("{}: {e}", path.display())))?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            content,
        })
    }

    /// A metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&gguf_file::Value> {
        self.content.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&gguf_file::Value> {
        self.get(key)
            .ok_or_else(|| Error::Metadata(format!("missing key {key}")))
    }

    /// An integer metadata value (GGUF writers use various integer widths).
    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.require(key)?;
        let n = match v {
            gguf_file::Value::U8(x) => *x as u64,
            gguf_file::Value::U16(x) => *x as u64,
            gguf_file::Value::U32(x) => *x as u64,
            gguf_file::Value::U64(x) => *x,
            gguf_file::Value::I8(x) if *x >= 0 => *x as u64,
            gguf_file::Value::I16(x) if *x >= 0 => *x as u64,
            gguf_file::Value::I32(x) if *x >= 0 => *x as u64,
            gguf_file::Value::I64(x) if *x >= 0 => *x as u64,
            other => {
                return Err(Error::Metadata(format!(
                    "{key}: expected a non-negative integer, found {other:?}"
                )))
            }
        };
        usize::try_from(n).map_err(|_| Error::Metadata(format!("{key}: {n} too large")))
    }

    /// A floating-point metadata value.
    pub fn f64(&self, key: &str) -> Result<f64> {
        match self.require(key)? {
            gguf_file::Value::F32(x) => Ok(*x as f64),
            gguf_file::Value::F64(x) => Ok(*x),
            other => Err(Error::Metadata(format!(
                "{key}: expected a float, found {other:?}"
            ))),
        }
    }

    /// A string metadata value.
    pub fn string(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            gguf_file::Value::String(s) => Ok(s),
            other => Err(Error::Metadata(format!(
                "{key}: expected a string, found {other:?}"
            ))),
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.require(key)? {
            gguf_file::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    gguf_file::Value::String(s) => Ok(s.clone()),
                    other => Err(Error::Metadata(format!("{key}: non-string item {other:?}"))),
                })
                .collect(),
            other => Err(Error::Metadata(format!(
                "{key}: expected an array, found {other:?}"
            ))),
        }
    }

    /// An array of integers (token types).
    pub fn ints(&self, key: &str) -> Result<Vec<i64>> {
        match self.require(key)? {
            gguf_file::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.to_i64()
                        .or_else(|_| v.to_i32().map(i64::from))
                        .or_else(|_| v.to_u32().map(i64::from))
                        .map_err(|_| Error::Metadata(format!("{key}: non-integer item {v:?}")))
                })
                .collect(),
            other => Err(Error::Metadata(format!(
                "{key}: expected an array, found {other:?}"
            ))),
        }
    }

    /// A boolean metadata value, `None` if absent.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(gguf_file::Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The model hyper-parameters (llama architecture only).
    pub fn config(&self) -> Result<ModelConfig> {
        let arch = self.string("general.architecture")?.to_string();
        if arch != "llama" {
            return Err(Error::UnsupportedArchitecture(arch));
        }
        let hidden = self.usize("llama.embedding_length")?;
        let heads = self.usize("llama.attention.head_count")?;
        if heads == 0 {
            return Err(Error::Metadata("llama.attention.head_count is 0".into()));
        }
        let vocab_size = match self.usize("llama.vocab_size") {
            Ok(v) => v,
            Err(_) => self.strings("tokenizer.ggml.tokens")?.len(),
        };
        let config = ModelConfig {
            architecture: Architecture::Llama,
            vocab_size,
            hidden_size: hidden,
            intermediate_size: self.usize("llama.feed_forward_length")?,
            num_layers: self.usize("llama.block_count")?,
            num_heads: heads,
            num_kv_heads: self.usize("llama.attention.head_count_kv").unwrap_or(heads),
            head_dim: self
                .usize("llama.attention.key_length")
                .unwrap_or(hidden / heads),
            rms_norm_eps: self.f64("llama.attention.layer_norm_rms_epsilon")?,
            rope_theta: self.f64("llama.rope.freq_base").unwrap_or(10000.0),
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            attention_bias: false,
            max_position_embeddings: self.usize("llama.context_length").unwrap_or(4096),
        };
        config.validate().map_err(Error::Metadata)?;
        Ok(config)
    }

    /// Every tensor dequantized to f32 on the CPU, renamed to Hugging Face names, with the q/k
    /// projections un-permuted (see [`unpermute_qk`]).
    pub fn weights(&self, config: &ModelConfig) -> Result<HashMap<String, Tensor>> {
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut out = HashMap::new();
        for name in self.content.tensor_infos.keys() {
            let Some(hf) = hf_name(name) else {
                // Extra tensors (e.g. precomputed rope factors) are not part of our model.
                continue;
            };
            let q = self.content.tensor(&mut file, name, &Device::Cpu)?;
            let t = q.dequantize(&Device::Cpu)?.to_dtype(DType::F32)?;
            let t = if name.ends_with("attn_q.weight") {
                unpermute_qk(&t, config.num_heads, &hf)?
            } else if name.ends_with("attn_k.weight") {
                unpermute_qk(&t, config.num_kv_heads, &hf)?
            } else {
                t
            };
            out.insert(hf, t);
        }
        Ok(out)
    }
}

/// llama.cpp's converter permutes the rows of q and k so that its rotary kernel can rotate
/// adjacent pairs; Hugging Face rotates the two halves of each head. This undoes the permutation
/// (rows `[head, half, pair]` -> `[head, pair, half]`), as transformers' GGUF loader does.
pub fn unpermute_qk(w: &Tensor, heads: usize, name: &str) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if heads == 0 || rows % (2 * heads) != 0 {
        return Err(Error::ShapeMismatch {
            name: name.to_string(),
            expected: vec![heads * 2 * (rows / (2 * heads.max(1))).max(1), cols],
            found: vec![rows, cols],
        });
    }
    let half = rows / heads / 2;
    Ok(w.reshape((heads, half, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = match tail {
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "attn_q.bias" => "self_attn.q_proj.bias",
        "attn_k.bias" => "self_attn.k_proj.bias",
        "attn_v.bias" => "self_attn.v_proj.bias",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// Reads `config.json` and the safetensors weights of a Hugging Face model directory, as f32.
pub fn load_hf_dir(dir: &Path) -> Result<(ModelConfig, HashMap<String, Tensor>)> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(Error::MissingFile {
            path: config_path,
            what: "the model's hyper-parameters".into(),
        });
    }
    let config = ModelConfig::from_hf_config(&config_path)?;
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        shard_files(dir, &index)?
    } else {
        return Err(Error::MissingFile {
            path: single,
            what: "weights (or a sharded model.safetensors.index.json)".into(),
        });
    };
    let mut weights = HashMap::new();
    for file in files {
        if !file.is_file() {
            return Err(Error::MissingFile {
                path: file,
                what: "a weight shard named in model.safetensors.index.json".into(),
            });
        }
        let tensors = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| Error::Metadata(format!("{}: {e}", file.display())))?;
        for (name, t) in tensors {
            weights.insert(name, t.to_dtype(DType::F32)?);
        }
    }
    Ok((config, weights))
}

fn shard_files(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::InvalidJson {
        path: index.to_path_buf(),
        message: e.to_string(),
    })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::InvalidJson {
            path: index.to_path_buf(),
            message: "no weight_map object".into(),
        })?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    files.sort();
    files.dedup();
    // Shard names come from a file we do not control: refuse paths that leave the directory.
    if let Some(bad) = files
        .iter()
        .find(|f| f.contains("..") || f.starts_with('/'))
    {
        return Err(Error::InvalidJson {
            path: index.to_path_buf(),
            message: format!("shard path {bad:?} escapes the model directory"),
        });
    }
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

//! One entry point for "a model path": a `.gguf` file or a Hugging Face directory becomes a
//! trainable [`Model`] plus its [`TextTokenizer`].

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::tokenizer::TextTokenizer;
use crate::model::weights::{load_hf_dir, GgufFile};
use crate::model::Model;

/// A model with its tokenizer.
pub struct LoadedModel {
    /// The trainable model.
    pub model: Model,
    /// Its tokenizer, special tokens and chat template.
    pub tokenizer: TextTokenizer,
}

/// Loads a model and its tokenizer from a `.gguf` file or a Hugging Face directory.
pub fn load(path: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    if path.is_dir() {
        let tokenizer = TextTokenizer::from_hf_dir(path)?;
        let (config, weights) = load_hf_dir(path)?;
        let model = Model::from_weights(config, weights, dtype, device)?;
        Ok(LoadedModel { model, tokenizer })
    } else {
        let gguf = open_gguf(path)?;
        let tokenizer = TextTokenizer::from_gguf(&gguf)?;
        let config = gguf.config()?;
        let weights = gguf.weights(&config)?;
        let model = Model::from_weights(config, weights, dtype, device)?;
        Ok(LoadedModel { model, tokenizer })
    }
}

/// Only the config and weights (f32, CPU, Hugging Face names) of a `.gguf` file or a Hugging Face
/// directory; no tokenizer needed.
pub fn load_weights(path: &Path) -> Result<(ModelConfig, HashMap<String, Tensor>)> {
    if path.is_dir() {
        load_hf_dir(path)
    } else {
        let gguf = open_gguf(path)?;
        let config = gguf.config()?;
        let weights = gguf.weights(&config)?;
        Ok((config, weights))
    }
}

fn open_gguf(path: &Path) -> Result<GgufFile> {
    if !path.exists() {
        return Err(Error::MissingFile {
            path: path.to_path_buf(),
            what: "a .gguf model file or a Hugging Face model directory".into(),
        });
    }
    GgufFile::open(path)
}

//! Checkpoints and Hugging Face exports, written so that a kill at any moment leaves the last
//! complete checkpoint intact.
//!
//! A checkpoint is a directory `checkpoints/step-NNNNNN/` holding `model.safetensors` (every
//! weight under its HF name), `optimizer.safetensors` (AdamW's moments, `<name>.exp_avg` and
//! `<name>.exp_avg_sq`), `state.json` (step, optimizer step count, seed, the data cursor) and
//! `config.toml` (the file the run was started with). It is written into a temporary sibling
//! directory, every file synced, then renamed into place (atomic on POSIX), and only then is
//! `checkpoints/latest` (a one-line file naming it) replaced, itself by write-then-rename. Old
//! checkpoints are deleted after the new one is complete.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::tokenizer::TextTokenizer;
use crate::model::Model;
use crate::train::adamw::AdamW;

/// What a checkpoint records besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps completed.
    pub step: u64,
    /// The optimizer's own step count (bias correction).
    pub optimizer_steps: u64,
    /// The run's seed. Every random choice of step `s` (prompt order, sampling, tools) derives
    /// from `(seed, s)`, so this and `step` are the whole generator state.
    pub seed: u64,
    /// Kind of run (`grpo`, `sft`).
    pub kind: String,
}

/// The trainable variables of `model`, sorted by name (the order optimizers and checkpoints
/// use).
pub fn named_vars(model: &Model) -> Vec<(String, candle_core::Var)> {
    let data = model.varmap().data().lock();
    let mut vars: Vec<(String, candle_core::Var)> = match data {
        Ok(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Err(poisoned) => poisoned
            .into_inner()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_file(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Writes a checkpoint of `step` under `dir/checkpoints`, points `latest` at it and keeps the
/// newest `keep` checkpoints. Returns its directory.
pub fn save(
    dir: &Path,
    model: &Model,
    optimizer: &AdamW,
    state: &TrainState,
    config_text: &str,
    keep: usize,
) -> Result<PathBuf> {
    let root = dir.join("checkpoints");
    fs::create_dir_all(&root).map_err(io(&root))?;
    let name = format!("step-{:06}", state.step);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp"))
        .tempdir_in(&root)
        .map_err(io(&root))?;

    let vars = named_vars(model);
    let weights: HashMap<String, Tensor> = vars
        .iter()
        .map(|(n, v)| Ok((n.clone(), v.as_tensor().to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let model_path = tmp.path().join("model.safetensors");
    candle_core::safetensors::save(&weights, &model_path)?;
    sync_file(&model_path)?;

    let moments = optimizer.moments()?;
    if moments.len() != vars.len() {
        return Err(Error::InvalidInput(
            "the optimizer does not cover the model's variables".into(),
        ));
    }
    let mut opt: HashMap<String, Tensor> = HashMap::new();
    for ((n, _), (m, v)) in vars.iter().zip(moments) {
        opt.insert(format!("{n}.exp_avg"), m);
        opt.insert(format!("{n}.exp_avg_sq"), v);
    }
    let opt_path = tmp.path().join("optimizer.safetensors");
    candle_core::safetensors::save(&opt, &opt_path)?;
    sync_file(&opt_path)?;

    let state_json = serde_json::to_string_pretty(state)
        .map_err(|e| Error::InvalidInput(format!("state.json: {e}")))?;
    write_synced(&tmp.path().join("state.json"), state_json.as_bytes())?;
    write_synced(&tmp.path().join("config.toml"), config_text.as_bytes())?;

    let final_dir = root.join(&name);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
    }
    let tmp_path = tmp.keep();
    fs::rename(&tmp_path, &final_dir).map_err(io(&final_dir))?;
    sync_dir(&root)?;

    let latest_tmp = root.join(".latest.tmp");
    write_synced(&latest_tmp, format!("{name}\n").as_bytes())?;
    let latest = root.join("latest");
    fs::rename(&latest_tmp, &latest).map_err(io(&latest))?;
    sync_dir(&root)?;

    prune(&root, keep.max(1))?;
    Ok(final_dir)
}

/// An export is for others to read: the safetensors writer creates its file owner-only.
fn readable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(io(path))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Makes the renames durable; directories can be opened read-only and synced on Unix.
    match fs::File::open(dir) {
        Ok(f) => {
            let _ = f.sync_all();
            Ok(())
        }
        Err(source) => Err(Error::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let mut steps: Vec<PathBuf> = fs::read_dir(root)
        .map_err(io(root))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
        })
        .collect();
    steps.sort();
    // Leftovers of interrupted saves are removed too.
    for entry in fs::read_dir(root).map_err(io(root))?.flatten() {
        let p = entry.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".step-"))
        {
            let _ = fs::remove_dir_all(&p);
        }
    }
    let excess = steps.len().saturating_sub(keep);
    for old in &steps[..excess] {
        fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(())
}

/// The checkpoint `dir/checkpoints/latest` names, if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>> {
    let root = dir.join("checkpoints");
    let latest = root.join("latest");
    if !latest.exists() {
        return Ok(None);
    }
    let name = fs::read_to_string(&latest).map_err(io(&latest))?;
    let path = root.join(name.trim());
    if !path.join("state.json").exists() {
        return Err(Error::InvalidInput(format!(
            "{} names {}, which is not a complete checkpoint",
            latest.display(),
            path.display()
        )));
    }
    Ok(Some(path))
}

/// Restores weights and optimizer state from checkpoint `path` into `model` and `optimizer`.
pub fn restore(path: &Path, model: &Model, optimizer: &mut AdamW) -> Result<TrainState> {
    let state_path = path.join("state.json");
    let text = fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: TrainState = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", state_path.display())))?;
    let vars = named_vars(model);
    let weights = candle_core::safetensors::load(path.join("model.safetensors"), &Device::Cpu)?;
    for (name, var) in &vars {
        let w = weights
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.clone()))?;
        if w.dims() != var.as_tensor().dims() {
            return Err(Error::ShapeMismatch {
                name: name.clone(),
                expected: var.as_tensor().dims().to_vec(),
                found: w.dims().to_vec(),
            });
        }
        var.set(&w.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    let opt = candle_core::safetensors::load(path.join("optimizer.safetensors"), &Device::Cpu)?;
    let moments = vars
        .iter()
        .map(|(name, _)| {
            let m = opt
                .get(&format!("{name}.exp_avg"))
                .ok_or_else(|| Error::MissingTensor(format!("{name}.exp_avg")))?;
            let v = opt
                .get(&format!("{name}.exp_avg_sq"))
                .ok_or_else(|| Error::MissingTensor(format!("{name}.exp_avg_sq")))?;
            Ok((m.clone(), v.clone()))
        })
        .collect::<Result<Vec<_>>>()?;
    optimizer.restore(moments, state.optimizer_steps)?;
    Ok(state)
}

/// Writes `model` as a Hugging Face directory (`config.json`, `model.safetensors`,
/// `tokenizer.json`, `tokenizer_config.json` with the chat template, `generation_config.json`)
/// that `transformers` and [`crate::model::load()`] read back. Atomic like a checkpoint.
pub fn export_hf(dir: &Path, model: &Model, tokenizer: &TextTokenizer) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".export.tmp")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let c = model.config();
    let mut weights: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in named_vars(model) {
        weights.insert(name, var.as_tensor().to_device(&Device::Cpu)?);
    }
    let weights_path = tmp.path().join("model.safetensors");
    candle_core::safetensors::save(&weights, &weights_path)?;
    readable(&weights_path)?;
    sync_file(&weights_path)?;
    let config = c.to_hf_json(tokenizer);
    write_synced(
        &tmp.path().join("config.json"),
        serde_json::to_string_pretty(&config)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let tok_path = tmp.path().join("tokenizer.json");
    tokenizer
        .inner()
        .save(&tok_path, false)
        .map_err(|e| Error::Tokenizer(format!("saving {}: {e}", tok_path.display())))?;
    let mut tok_config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": false,
    });
    if let Some((bos, _)) = tokenizer.bos() {
        tok_config["bos_token"] = bos.into();
    }
    if let Some((eos, _)) = tokenizer.eos() {
        tok_config["eos_token"] = eos.into();
    }
    if let Some(template) = tokenizer.chat_template() {
        tok_config["chat_template"] = template.source().into();
    }
    write_synced(
        &tmp.path().join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tok_config)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let mut generation = serde_json::json!({});
    if let Some((_, bos)) = tokenizer.bos() {
        generation["bos_token_id"] = bos.into();
    }
    if let Some((_, eos)) = tokenizer.eos() {
        generation["eos_token_id"] = eos.into();
    }
    write_synced(
        &tmp.path().join("generation_config.json"),
        generation.to_string().as_bytes(),
    )?;
    let old = parent.join(".export.old");
    if dir.exists() {
        let _ = fs::remove_dir_all(&old);
        fs::rename(dir, &old).map_err(io(dir))?;
    }
    let tmp_path = tmp.keep();
    fs::rename(&tmp_path, dir).map_err(io(dir))?;
    let _ = fs::remove_dir_all(&old);
    sync_dir(parent)
}

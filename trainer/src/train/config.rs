//! The training tables of the environment file (`env/config.toml`): everything `trainer grpo`
//! and `trainer sft` need besides the tools. Every field is documented here and has a default;
//! an unknown or misspelt key, or a value of the wrong type, is an error naming the file, the
//! line and the key. Relative paths are relative to the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toolenv::reward::{Matching, RewardConfig, Weights};
use toolenv::rollout::{PromptStyle, ToolListing};

use crate::train::grpo::{RewardScale, Schedule};

/// Why the training configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, a wrong type (the message has the line and the key).
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A `--set` override that is not `TABLE.KEY=VALUE` or names no table.
    #[error("{}: --set {setting}: {message}", path.display())]
    Override {
        /// The file.
        path: PathBuf,
        /// The override as given.
        setting: String,
        /// What is wrong.
        message: String,
    },
    /// A value out of its range.
    #[error("{}: [{table}] {key}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole file as the trainer reads it; the environment's own tables are checked by
/// `toolenv` when the registry loads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    sandbox: Option<toml::Value>,
    #[serde(default)]
    tools: Option<toml::Value>,
    #[serde(default)]
    model: ModelSection,
    #[serde(default)]
    data: DataSection,
    #[serde(default)]
    rollout: RolloutSection,
    #[serde(default)]
    reward: RewardSection,
    #[serde(default)]
    optimizer: OptimizerSection,
    #[serde(default)]
    grpo: GrpoSection,
    #[serde(default)]
    sft: SftSection,
    #[serde(default)]
    eval: EvalSection,
    #[serde(default)]
    checkpoints: CheckpointSection,
    #[serde(default)]
    train: RunSection,
}

/// Everything `trainer grpo` and `trainer sft` read from the file, paths resolved.
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// `[model]`.
    pub model: ModelSection,
    /// `[data]`.
    pub data: DataSection,
    /// `[rollout]`.
    pub rollout: RolloutSection,
    /// `[reward]`.
    pub reward: RewardSection,
    /// `[optimizer]`.
    pub optimizer: OptimizerSection,
    /// `[grpo]`.
    pub grpo: GrpoSection,
    /// `[sft]`.
    pub sft: SftSection,
    /// `[eval]`.
    pub eval: EvalSection,
    /// `[checkpoints]`.
    pub checkpoints: CheckpointSection,
    /// `[train]`.
    pub train: RunSection,
    /// The TOML the run was configured by: the file's text, or with `--set` overrides the
    /// file's tables with them applied. What a checkpoint keeps as `config.toml`.
    #[serde(skip)]
    pub text: String,
}

/// `[model]`: the model to train.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// The pretrained model: a `.gguf` file or a Hugging Face directory.
    pub path: PathBuf,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            path: PathBuf::from("../models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        }
    }
}

/// `[data]`: the training prompts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// A dataset name (`tasks-train`, `toolrl`, `toolrl-sft`, …) or a JSONL path. Executable
    /// tasks run as multi-turn episodes with real tools; ToolRL samples as one turn scored by
    /// the rubric, as in the paper.
    pub train: String,
    /// Use only the first N samples (all when absent).
    pub limit: Option<usize>,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            train: "tasks-train".into(),
            limit: None,
        }
    }
}

/// `[rollout]`: how episodes are sampled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSection {
    /// Completions sampled per prompt (the GRPO group, G).
    pub group_size: usize,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling threshold (1 = off).
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Most tokens per assistant turn.
    pub max_new_tokens: u32,
    /// Most assistant turns per episode.
    pub max_turns: u32,
    /// Most generated tokens per episode, all turns together.
    pub max_episode_tokens: u32,
    /// `chat` (one message per turn and observation) or `paper` (history re-rendered, as the
    /// ToolRL data).
    pub style: PromptStyle,
    /// Most sequences per sampling forward pass.
    pub max_batch: usize,
    /// Tool documentation in the system prompt: `full` or `brief` (first sentences; the
    /// prompt's length is most of the training cost).
    pub tool_listing: ToolListing,
    /// The registered tools this run's episodes see and may call (by name); absent: all of
    /// them. Unselected tools are not even compiled.
    pub tools: Option<Vec<String>>,
}

impl Default for RolloutSection {
    fn default() -> Self {
        RolloutSection {
            group_size: 4,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 128,
            max_turns: 3,
            max_episode_tokens: 384,
            style: PromptStyle::Chat,
            max_batch: 16,
            tool_listing: ToolListing::Brief,
            tools: None,
        }
    }
}

/// `[reward]`: how a completion or an episode is scored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardSection {
    /// ToolRL variant expression (`default`, `coarse`, `refined+length`, …; see `toolenv`'s
    /// reward docs). Scores ToolRL samples, and each turn of an episode against its reference.
    pub variant: String,
    /// `greedy` (the paper) or `optimal` (Hungarian) pairing of predicted and reference calls.
    pub matching: Matching,
    /// Weights of the rubric's format, correctness and length terms (ToolRL samples).
    pub weights: Weights,
    /// Weights of the episode terms for executable tasks; the reward is their weighted sum.
    /// Names: `answer_exact_match`, `answer_normalized_match`, `tool_success_rate`,
    /// `mean_turn_format`, `mean_turn_correctness`, `tool_name_match`. Every term is logged
    /// whatever its weight.
    pub terms: BTreeMap<String, f64>,
    /// Compresses the step-scheduled variants (`schedule`, `twostage`, `schedlength`) onto a run
    /// of this many steps: the rubric sees step `s` as `s × 150 / schedule_steps`, so the
    /// paper's 150-step schedule runs its whole course in this run. 0 (the default): the
    /// paper's step numbers, unscaled.
    pub schedule_steps: u64,
}

/// The episode terms a `[reward.terms]` key may name.
pub const EPISODE_TERMS: [&str; 6] = [
    "answer_exact_match",
    "answer_normalized_match",
    "tool_success_rate",
    "mean_turn_format",
    "mean_turn_correctness",
    "tool_name_match",
];

impl Default for RewardSection {
    fn default() -> Self {
        let rubric = RewardConfig::default();
        RewardSection {
            variant: rubric.variant,
            matching: rubric.matching,
            weights: rubric.weights,
            terms: BTreeMap::from([
                ("answer_normalized_match".to_string(), 1.0),
                ("mean_turn_format".to_string(), 0.5),
                ("mean_turn_correctness".to_string(), 0.25),
            ]),
            schedule_steps: 0,
        }
    }
}

impl RewardSection {
    /// The rubric part as `toolenv` takes it.
    pub fn rubric_config(&self) -> RewardConfig {
        RewardConfig {
            variant: self.variant.clone(),
            matching: self.matching,
            weights: self.weights,
        }
    }

    /// The step the rubric sees at training step `step` (see `schedule_steps`).
    pub fn rubric_step(&self, step: u64) -> u64 {
        match self.schedule_steps {
            0 => step,
            n => step.saturating_mul(toolenv::reward::range::SCHEDULE_STEPS) / n,
        }
    }
}

/// `[optimizer]`: AdamW and the learning-rate schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerSection {
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW β1.
    pub beta1: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// `constant` or `cosine` after warm-up.
    pub schedule: Schedule,
    /// Cosine floor as a fraction of the peak.
    pub min_lr_ratio: f64,
}

impl Default for OptimizerSection {
    fn default() -> Self {
        OptimizerSection {
            lr: 1e-6,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            grad_clip: 1.0,
            warmup_steps: 0,
            schedule: Schedule::Constant,
            min_lr_ratio: 0.1,
        }
    }
}

/// `[grpo]`: the objective and the batch of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoSection {
    /// Training steps (`--steps` overrides).
    pub steps: u64,
    /// Prompts per step; each is sampled `rollout.group_size` times.
    pub prompts_per_step: usize,
    /// Most sequences per forward-backward pass; gradients accumulate over the micro-batches of
    /// a step.
    pub micro_batch: usize,
    /// Most padded tokens per forward-backward pass (sequences × the longest one's length).
    pub micro_batch_tokens: usize,
    /// Most attention cells per forward-backward pass (sequences × the longest one's length²):
    /// the memory bound for long sequences (about 3 KB per cell for SmolLM2-135M).
    pub micro_batch_cells: usize,
    /// Sequences longer than this many tokens (long tool outputs) are left out of the update
    /// and counted in the metrics (`skipped_sequences`); one alone could exhaust memory.
    pub max_sequence_tokens: usize,
    /// Optimizer updates per batch of rollouts (1 = on-policy; more reuse the samples, with the
    /// ratio clipped).
    pub updates_per_batch: usize,
    /// Lower clip range ε_lo (ratio ≥ 1 - ε_lo).
    pub clip_low: f64,
    /// Upper clip range ε_hi (ratio ≤ 1 + ε_hi).
    pub clip_high: f64,
    /// β of the k3 KL penalty against the frozen starting model (0 = off; > 0 keeps a second
    /// copy of the weights).
    pub kl_coef: f64,
    /// ε in the advantage's denominator.
    pub advantage_eps: f64,
    /// How centred rewards become advantages: `group` (÷ the group's std, DeepSeekMath's
    /// GRPO), `batch` (÷ the step's std) or `none` (Dr. GRPO: not scaled).
    pub scale_rewards: RewardScale,
    /// Start from these weights instead of `[model] path` (e.g. the export of `trainer sft`);
    /// the tokenizer still comes from `[model] path` when the directory has none.
    pub start_from: Option<PathBuf>,
    /// Bottom decoder layers (and the input embedding) kept fixed: the backward stops above
    /// them, so a step's forward-backward costs less (0 = every layer learns). See
    /// `Model::freeze_bottom_layers`.
    pub frozen_layers: usize,
}

impl Default for GrpoSection {
    fn default() -> Self {
        GrpoSection {
            steps: 20,
            prompts_per_step: 4,
            micro_batch: 8,
            micro_batch_tokens: 3072,
            micro_batch_cells: 2_000_000,
            max_sequence_tokens: 1536,
            updates_per_batch: 1,
            clip_low: 0.2,
            clip_high: 0.2,
            kl_coef: 0.0,
            advantage_eps: 1e-6,
            scale_rewards: RewardScale::Group,
            start_from: None,
            frozen_layers: 0,
        }
    }
}

/// `[sft]`: the supervised warm start (`trainer sft`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftSection {
    /// Dataset: `toolrl-sft` (the shared SFT data, one completion per sample) or executable
    /// tasks (`tasks-train`: each reference solution replayed through the real tools, every
    /// assistant turn a target).
    pub data: String,
    /// Use only the first N samples.
    pub limit: Option<usize>,
    /// Optimizer steps.
    pub steps: u64,
    /// Sequences per optimizer step.
    pub batch_size: usize,
    /// Most sequences per forward-backward pass.
    pub micro_batch: usize,
    /// Most padded tokens per forward-backward pass (see `[grpo] micro_batch_tokens`).
    pub micro_batch_tokens: usize,
    /// Most attention cells per forward-backward pass (see `[grpo] micro_batch_cells`).
    pub micro_batch_cells: usize,
    /// Peak learning rate (the rest of `[optimizer]` applies).
    pub lr: f64,
    /// Longest sequence kept, in tokens (longer ones are skipped and counted).
    pub max_tokens: usize,
    /// Bottom decoder layers (and the input embedding) kept fixed, as `[grpo] frozen_layers`
    /// (0 = every layer learns).
    pub frozen_layers: usize,
    /// Where the result is written (an HF directory under `<out>/model`).
    pub out: PathBuf,
}

impl Default for SftSection {
    fn default() -> Self {
        SftSection {
            data: "tasks-train".into(),
            limit: None,
            steps: 30,
            batch_size: 8,
            micro_batch: 8,
            micro_batch_tokens: 6144,
            micro_batch_cells: 4_000_000,
            lr: 5e-5,
            max_tokens: 3072,
            frozen_layers: 0,
            out: PathBuf::from("../runs/sft"),
        }
    }
}

/// `[eval]`: held-out evaluation during training.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Dataset name or path (`tasks`: the held-out executable tasks).
    pub dataset: String,
    /// Evaluate every N steps (0 = only at the start and the end).
    pub every: u64,
    /// Use only the first N samples.
    pub limit: Option<usize>,
    /// Also evaluate before the first step.
    pub at_start: bool,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            dataset: "tasks".into(),
            every: 10,
            limit: Some(20),
            at_start: true,
        }
    }
}

/// `[checkpoints]`: saving.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// Save every N steps (and always at the end; 0 = only at the end).
    pub every: u64,
    /// Checkpoints kept (older ones are deleted once a newer one is complete).
    pub keep: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection { every: 5, keep: 2 }
    }
}

/// `[train]`: the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Seed of prompt order, sampling and tools; a run is reproducible from it (CPU).
    pub seed: u64,
    /// `cpu` or `cuda` (needs the `cuda` feature).
    pub device: String,
    /// Output directory of `trainer grpo` (`--out` overrides): metrics, plots, checkpoints,
    /// the final export.
    pub out: PathBuf,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            seed: 0,
            device: "cpu".into(),
            out: PathBuf::from("../runs/grpo"),
        }
    }
}

impl TrainConfig {
    /// Reads and checks the training tables of `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        Self::read_with(path, &[])
    }

    /// [`TrainConfig::read`] with `overrides`, each `TABLE.KEY=VALUE` (`reward.variant=coarse`,
    /// `train.seed=1`, `rollout.temperature=0.6`), as verl's and Hydra's `key=value` arguments:
    /// the value is TOML (a number, a boolean, a quoted string, an array) or else taken as a
    /// string; paths in it are relative to the file, as in the file. Checked as the file is:
    /// an unknown key or a wrong type is an error naming it.
    pub fn read_with(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if overrides.is_empty() {
            return Self::parse(path, &text);
        }
        // The file's own syntax, keys and types first, so their errors keep its line numbers; a
        // value out of range may be what an override fixes.
        if let Err(e @ ConfigError::Parse { .. }) = Self::parse(path, &text) {
            return Err(e);
        }
        let merged = apply_overrides(path, &text, overrides)?;
        Self::parse(path, &merged).map_err(|e| match e {
            ConfigError::Parse { path, message } => ConfigError::Parse {
                path,
                message: format!("with the --set overrides: {message}"),
            },
            other => other,
        })
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let _ = (&file.sandbox, &file.tools);
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let mut config = TrainConfig {
            path: path.to_path_buf(),
            model: file.model,
            data: file.data,
            rollout: file.rollout,
            reward: file.reward,
            optimizer: file.optimizer,
            grpo: file.grpo,
            sft: file.sft,
            eval: file.eval,
            checkpoints: file.checkpoints,
            train: file.train,
            text: text.to_string(),
        };
        config.model.path = resolve(&config.model.path);
        config.grpo.start_from = config.grpo.start_from.as_deref().map(resolve);
        config.sft.out = resolve(&config.sft.out);
        config.train.out = resolve(&config.train.out);
        for name in [
            &mut config.data.train,
            &mut config.sft.data,
            &mut config.eval.dataset,
        ] {
            if name.ends_with(".jsonl") || name.contains('/') {
                *name = resolve(Path::new(name.as_str())).display().to_string();
            }
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |table: &'static str, key: &'static str, message: String| {
            Err(ConfigError::Invalid {
                path: self.path.clone(),
                table,
                key,
                message,
            })
        };
        let r = &self.rollout;
        if r.group_size < 2 {
            return bad(
                "rollout",
                "group_size",
                format!(
                    "{} < 2: GRPO compares completions of one prompt",
                    r.group_size
                ),
            );
        }
        if !(r.temperature.is_finite() && r.temperature >= 0.0) {
            return bad("rollout", "temperature", "must be >= 0".into());
        }
        if !(r.top_p > 0.0 && r.top_p <= 1.0) {
            return bad("rollout", "top_p", "must be in (0, 1]".into());
        }
        if r.max_new_tokens == 0 || r.max_turns == 0 || r.max_episode_tokens == 0 {
            return bad(
                "rollout",
                "max_new_tokens",
                "max_new_tokens, max_turns and max_episode_tokens must be > 0".into(),
            );
        }
        for name in self.reward.terms.keys() {
            if !EPISODE_TERMS.contains(&name.as_str()) {
                return bad(
                    "reward",
                    "terms",
                    format!("unknown term {name:?}; known: {}", EPISODE_TERMS.join(", ")),
                );
            }
        }
        if let Err(e) = toolenv::reward::Rubric::new(&self.reward.rubric_config()) {
            return bad("reward", "variant", e.to_string());
        }
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return bad("optimizer", "lr", "must be > 0".into());
        }
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
            return bad("optimizer", "beta1", "betas must be in [0, 1)".into());
        }
        if !(0.0..=1.0).contains(&o.min_lr_ratio) {
            return bad("optimizer", "min_lr_ratio", "must be in [0, 1]".into());
        }
        let g = &self.grpo;
        if g.prompts_per_step == 0
            || g.micro_batch == 0
            || g.micro_batch_tokens == 0
            || g.updates_per_batch == 0
        {
            return bad(
                "grpo",
                "prompts_per_step",
                "prompts_per_step, micro_batch, micro_batch_tokens and updates_per_batch must be > 0"
                    .into(),
            );
        }
        if !(g.clip_low >= 0.0 && g.clip_low < 1.0 && g.clip_high >= 0.0) {
            return bad(
                "grpo",
                "clip_low",
                "need 0 <= clip_low < 1, clip_high >= 0".into(),
            );
        }
        if !(g.kl_coef.is_finite() && g.kl_coef >= 0.0) {
            return bad("grpo", "kl_coef", "must be >= 0".into());
        }
        let s = &self.sft;
        if s.batch_size == 0
            || s.micro_batch == 0
            || s.micro_batch_tokens == 0
            || !(s.lr.is_finite() && s.lr > 0.0)
        {
            return bad(
                "sft",
                "batch_size",
                "batch_size and micro_batch must be > 0, lr > 0".into(),
            );
        }
        if !matches!(self.train.device.as_str(), "cpu" | "cuda") {
            return bad(
                "train",
                "device",
                format!("{:?}: expected \"cpu\" or \"cuda\"", self.train.device),
            );
        }
        Ok(())
    }
}

/// The TOML of `text` with each `TABLE.KEY=VALUE` of `overrides` set (see
/// [`TrainConfig::read_with`]), headed by a comment naming the file and the overrides (the
/// file's own comments do not survive).
pub fn apply_overrides(
    path: &Path,
    text: &str,
    overrides: &[String],
) -> Result<String, ConfigError> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    for setting in overrides {
        let bad = |message: &str| ConfigError::Override {
            path: path.to_path_buf(),
            setting: setting.clone(),
            message: message.to_string(),
        };
        let (key, raw) = setting
            .split_once('=')
            .ok_or_else(|| bad("expected TABLE.KEY=VALUE"))?;
        let names: Vec<&str> = key.trim().split('.').map(str::trim).collect();
        let (last, tables) = names.split_last().expect("split yields at least one part");
        if tables.is_empty() || names.iter().any(|n| n.is_empty()) {
            return Err(bad(
                "expected TABLE.KEY=VALUE (a key inside a table, e.g. reward.variant)",
            ));
        }
        let mut table = &mut doc;
        for name in tables {
            table = table
                .entry(name.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| bad(&format!("{name} is a value, not a table")))?;
        }
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        table.insert(last.to_string(), value);
    }
    let body = toml::to_string(&doc).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(format!(
        "# {} with --set {}\n{body}",
        path.display(),
        overrides.join(" --set ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use toolenv::reward::Rubric;

    #[test]
    fn defaults_parse_and_paths_resolve() {
        let c = TrainConfig::parse(Path::new("/x/env/config.toml"), "").unwrap();
        assert_eq!(
            c.model.path,
            Path::new("/x/env/../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
        assert_eq!(c.rollout.group_size, 4);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = TrainConfig::parse(Path::new("c.toml"), "[grpo]\nclip_hihg = 0.3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("clip_hihg") && e.contains("line 2"), "{e}");
        let e = TrainConfig::parse(Path::new("c.toml"), "[rollout]\ngroup_size = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[rollout] group_size"), "{e}");
        let e = TrainConfig::parse(Path::new("c.toml"), "[reward.terms]\nanswer = 1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown term \"answer\""), "{e}");
        let e = TrainConfig::parse(Path::new("c.toml"), "[reward]\nvariant = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        let e = TrainConfig::parse(Path::new("c.toml"), "[optimizer]\nlr = \"big\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lr"), "{e}");
    }

    #[test]
    fn overrides_set_typed_values_and_name_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[reward]\nvariant = \"default\"\n[train]\nseed = 0\n",
        )
        .unwrap();
        let set = |s: &[&str]| {
            TrainConfig::read_with(&path, &s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        let c = set(&["reward.variant=coarse", "train.seed=3", "grpo.steps = 5"]).unwrap();
        assert_eq!(
            (c.reward.variant.as_str(), c.train.seed, c.grpo.steps),
            ("coarse", 3, 5)
        );
        assert!(c.text.contains("--set reward.variant=coarse"), "{}", c.text);
        assert_eq!(TrainConfig::parse(&path, &c.text).unwrap().train.seed, 3);
        for (bad, says) in [
            (&["train.sede=1"][..], "sede"),
            (&["train.seed=\"one\""][..], "seed"),
            (&["seed=1"][..], "TABLE.KEY=VALUE"),
            (&["train.seed"][..], "TABLE.KEY=VALUE"),
            (&["train.seed.x=1"][..], "not a table"),
            (&["reward.variant=fancy"][..], "fancy"),
        ] {
            let e = set(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("c.toml"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn schedule_steps_compress_the_papers_schedule_onto_the_run() {
        let paper = TrainConfig::parse(Path::new("c.toml"), "").unwrap().reward;
        assert_eq!(paper.rubric_step(7), 7);
        let short = TrainConfig::parse(Path::new("c.toml"), "[reward]\nschedule_steps = 8\n")
            .unwrap()
            .reward;
        assert_eq!(
            (0..=8).map(|s| short.rubric_step(s)).collect::<Vec<_>>(),
            [0, 18, 37, 56, 75, 93, 112, 131, 150]
        );
        // A scheduled rubric at the run's last step sees the schedule's end.
        let rubric = Rubric::new(&RewardConfig {
            variant: "schedule".into(),
            ..RewardConfig::default()
        })
        .unwrap();
        let truth = toolenv::reward::GroundTruth::parse("<response>hi</response>").unwrap();
        let end = rubric.score("nothing", &truth, short.rubric_step(8));
        assert_eq!(end.format, -1.0, "the format range has shrunk to [-1, 1]");
    }
}

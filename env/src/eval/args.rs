//! The command-line options every `eval` command shares (`toolenv eval`, `trainer eval`), so both
//! binaries parse, load and report the same way and differ only in the policy they build.

use super::{evaluate_blocking, summary_table, EvalError, EvalOptions, SampleResult};
use crate::dataset::{self, Dataset, DatasetError, Format};
use crate::policy::Policy;
use crate::registry::{LoadError, Registry};
use crate::reward::{Rubric, UnknownVariant};
use crate::rollout::{PromptStyle, Roller, RolloutConfig, ToolListing};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// Dataset, output and episode options of an evaluation.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// A dataset name (toolrl, toolrl-sft, apibank, apibank-1, apibank-2, tasks, tasks-train,
    /// bfcl, bfcl-single-turn, bfcl-multi-turn, bfcl-<category> by BFCL's category names) or a
    /// JSONL file.
    #[arg(long)]
    pub dataset: String,
    /// Force the dataset format (toolrl, apibank, tasks) instead of recognising it.
    #[arg(long)]
    pub format: Option<Format>,
    /// Write results.jsonl and summary.json here; a rerun resumes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Evaluate only the first N samples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Evaluate only the first N samples of each group: each BFCL category, task kind or
    /// API-Bank level (e.g. `--dataset bfcl --limit-per-group 10`: 170 entries, every category).
    #[arg(long)]
    pub limit_per_group: Option<usize>,
    /// Samples in flight at once (`trainer eval` samples their turns as one batch).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Prompt style of multi-turn episodes: chat or paper.
    #[arg(long, default_value = "chat")]
    pub style: PromptStyle,
    /// Most assistant turns per episode.
    #[arg(long, default_value_t = 6)]
    pub max_turns: u32,
    /// Tool documentation in the system prompt of multi-turn episodes: full or brief (first
    /// sentences; what the default training config uses).
    #[arg(long, default_value = "full")]
    pub tool_listing: ToolListing,
    /// Only these registered tools (comma-separated names) are shown and callable; default: all.
    #[arg(long, value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Seed of the episodes' tool randomness (and of local sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// ToolRL reward variant for the reward terms.
    #[arg(long, default_value = "default")]
    pub variant: String,
    /// BFCL entries: `tir` (the function docs in the TIR system prompt, calls read from the
    /// text, as ToolRL ran BFCL) or `fc` (native tool calling: OpenAI `tools` in the request,
    /// `tool_calls` from the response).
    #[arg(long, default_value = "tir")]
    pub bfcl_style: super::bfcl::BfclStyle,
}

/// Why an evaluation could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum EvalSetupError {
    /// The dataset could not be loaded.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The environment config could not be loaded.
    #[error(transparent)]
    Registry(#[from] LoadError),
    /// The reward variant is unknown.
    #[error(transparent)]
    Variant(#[from] UnknownVariant),
    /// The run itself failed.
    #[error(transparent)]
    Run(#[from] EvalError),
}

impl EvalArgs {
    /// Loads the dataset and the environment of `config`, runs every sample through `policy`
    /// (`max_new_tokens` per turn), prints the summary table and returns the results.
    pub fn run<P: Policy>(
        &self,
        config: &std::path::Path,
        policy: &P,
        max_new_tokens: u32,
    ) -> Result<(Vec<SampleResult>, Value), EvalSetupError> {
        let dataset: Dataset = dataset::load(&self.dataset, self.format)?;
        let registry = Arc::new(Registry::load_selecting(config, self.tools.as_deref())?);
        let rubric = Rubric::for_variant(&self.variant)?;
        let roller = Roller::new(
            registry,
            RolloutConfig {
                style: self.style,
                max_turns: self.max_turns,
                max_new_tokens,
                tool_listing: self.tool_listing,
                ..RolloutConfig::default()
            },
        );
        let options = EvalOptions {
            limit: self.limit,
            limit_per_group: self.limit_per_group,
            concurrency: self.concurrency,
            out_dir: self.out.clone(),
            seed: self.seed,
            max_new_tokens,
            progress: true,
            bfcl_style: self.bfcl_style,
            ..EvalOptions::default()
        };
        let (results, summary) = evaluate_blocking(policy, &roller, &dataset, &rubric, &options)?;
        print!("{}", summary_table(&summary));
        if let Some(dir) = &self.out {
            eprintln!("wrote {}", dir.join("summary.json").display());
        }
        Ok((results, summary))
    }
}

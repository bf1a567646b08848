//! `toolenv eval`: a model behind an OpenAI-compatible endpoint, evaluated interactively on a
//! dataset (the same code as `trainer eval`, which evaluates a local model).

use crate::ConfigArg;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use toolenv::dataset::{self, Format};
use toolenv::eval::{evaluate_blocking, summary_table, EvalOptions};
use toolenv::policy::{OpenAiConfig, OpenAiPolicy};
use toolenv::reward::Rubric;
use toolenv::rollout::{PromptStyle, Roller, RolloutConfig};

/// Arguments of `toolenv eval`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// A dataset name (toolrl, toolrl-sft, apibank, apibank-1, apibank-2, tasks, tasks-train) or
    /// a JSONL file.
    #[arg(long)]
    dataset: String,
    /// Force the dataset format (toolrl, apibank, tasks) instead of recognising it.
    #[arg(long)]
    format: Option<Format>,
    /// OpenAI-style base URL, e.g. http://127.0.0.1:8000/v1.
    #[arg(long)]
    endpoint: String,
    /// The model name sent to the endpoint.
    #[arg(long)]
    model: String,
    /// Environment variable holding the API key (none sent if unset).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    /// Sampling temperature (0 = greedy, as the paper evaluates).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Most tokens per assistant turn.
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Write results.jsonl and summary.json here; a rerun resumes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluate only the first N samples.
    #[arg(long)]
    limit: Option<usize>,
    /// Samples in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Prompt style of multi-turn episodes: chat or paper.
    #[arg(long, default_value = "chat")]
    style: PromptStyle,
    /// Most assistant turns per episode.
    #[arg(long, default_value_t = 6)]
    max_turns: u32,
    /// Seed of the episodes' tool randomness.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// ToolRL reward variant for the reward terms.
    #[arg(long, default_value = "default")]
    variant: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dataset = dataset::load(&args.dataset, args.format)?;
    let registry = Arc::new(toolenv::Registry::load(&args.config.config)?);
    let policy = OpenAiPolicy::new(OpenAiConfig {
        base_url: args.endpoint.clone(),
        model: args.model.clone(),
        api_key_env: args.api_key_env.clone(),
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        ..OpenAiConfig::default()
    })?;
    let options = EvalOptions {
        limit: args.limit,
        concurrency: args.concurrency,
        out_dir: args.out.clone(),
        seed: args.seed,
        max_new_tokens: args.max_tokens,
        progress: true,
        ..EvalOptions::default()
    };
    let roller = Roller::new(
        registry,
        RolloutConfig {
            style: args.style,
            max_turns: args.max_turns,
            max_new_tokens: args.max_tokens,
            ..RolloutConfig::default()
        },
    );
    let rubric = Rubric::for_variant(&args.variant)?;
    let (_, summary) = evaluate_blocking(&policy, &roller, &dataset, &rubric, &options)?;
    print!("{}", summary_table(&summary));
    if let Some(dir) = &options.out_dir {
        eprintln!("wrote {}", dir.join("summary.json").display());
    }
    Ok(ExitCode::SUCCESS)
}

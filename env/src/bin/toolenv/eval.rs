//! `toolenv eval`: a model behind an OpenAI-compatible endpoint, evaluated interactively on a
//! dataset (the same code as `trainer eval`, which evaluates a local model).

use crate::ConfigArg;
use std::process::ExitCode;
use toolenv::eval::EvalArgs;
use toolenv::policy::{OpenAiConfig, OpenAiPolicy};

/// Arguments of `toolenv eval`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    eval: EvalArgs,
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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policy = OpenAiPolicy::new(OpenAiConfig {
        base_url: args.endpoint.clone(),
        model: args.model.clone(),
        api_key_env: args.api_key_env.clone(),
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        ..OpenAiConfig::default()
    })?;
    args.eval
        .run(&args.config.config, &policy, args.max_tokens)?;
    Ok(ExitCode::SUCCESS)
}

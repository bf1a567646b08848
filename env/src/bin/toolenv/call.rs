//! `toolenv call NAME 'JSON'`: one call, in a fresh episode.

use crate::{load_registry, ConfigArg};
use anyhow::Context;
use std::process::ExitCode;

/// Arguments of `toolenv call`.
#[derive(clap::Args)]
pub struct Args {
    /// The tool to call.
    name: String,
    /// Its arguments, a JSON object.
    arguments: String,
    #[command(flatten)]
    config: ConfigArg,
    /// Episode seed (guests' randomness derives from it); default: the config's.
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let arguments: serde_json::Value = serde_json::from_str(&args.arguments)
        .with_context(|| format!("the arguments are not valid JSON: {}", args.arguments))?;
    let registry = load_registry(&args.config)?;
    let episode = match args.seed {
        Some(seed) => registry.episode_with_seed(seed),
        None => registry.episode(),
    };
    let outcome = registry.call(&episode, &args.name, &arguments)?;
    episode
        .close()
        .context("cannot remove the episode's state directory")?;
    match outcome.result {
        Ok(value) => {
            println!("{value}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", e.kind());
            Ok(ExitCode::from(1))
        }
    }
}

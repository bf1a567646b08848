//! `toolenv`: the environment's command line. Each subcommand lives in its own module; this file
//! parses arguments and owns the exit codes: 0 success, 1 a tool error (`call`), 2 anything else
//! (bad config, bad input such as an unparsable ground truth, a host fault).

mod batch;
mod call;
mod eval;
mod reward;
mod serve;
mod tools;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "toolenv",
    version,
    about = "Run wasm tools in a sandbox, score tool-use, evaluate models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config`, shared by every subcommand that needs the registry.
#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// The environment config (TOML).
    #[arg(long, default_value = "env/config.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// List the registered tools with their schemas.
    Tools(tools::Args),
    /// Call one tool: prints its JSON result (exit 0) or its error on stderr (exit 1).
    Call(call::Args),
    /// Run JSONL calls from stdin, in parallel, printing one result line per input line, in order.
    Batch(batch::Args),
    /// Evaluate a model behind an OpenAI-compatible endpoint on a dataset, interactively.
    Eval(eval::Args),
    /// Score completions (JSONL on stdin) with the ToolRL reward, one score line per input line.
    Reward(reward::RewardArgs),
    /// Serve the environment over HTTP: sessions, calls, steps, rewards, metrics.
    Serve(serve::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tools(args) => tools::run(args),
        Command::Call(args) => call::run(args),
        Command::Batch(args) => batch::run(args),
        Command::Reward(args) => reward::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", toolenv::report::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

/// Loads the registry named by `--config`.
fn load_registry(arg: &ConfigArg) -> anyhow::Result<toolenv::Registry> {
    Ok(toolenv::Registry::load(&arg.config)?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

//! `toolenv`: the environment's command line (placeholder with the `reward` subcommand only; exit
//! codes: 0 success, 2 bad input).

mod reward;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "toolenv", version, about = "Tool-use RL environment")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score completions (JSONL on stdin) with the ToolRL reward.
    Reward(reward::RewardArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Reward(args) => reward::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

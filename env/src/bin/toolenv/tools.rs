//! `toolenv tools`: what is registered, as a person or a program wants to read it.

use crate::{load_registry, ConfigArg};
use std::io::Write;
use std::process::ExitCode;

/// Arguments of `toolenv tools`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Print a JSON array of chat-completions tool objects instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let registry = load_registry(&args.config)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &registry.openai_tools())?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for tool in registry.tools() {
        let l = &tool.limits;
        writeln!(out, "{} ({})", tool.def.name, tool.kind())?;
        writeln!(out, "  {}", tool.def.description)?;
        let mut grants = Vec::new();
        if let Some(d) = &tool.data_dir {
            grants.push(format!("/data = {} (read-only)", d.display()));
        }
        if tool.stateful {
            grants.push("/state per episode".to_string());
        }
        writeln!(
            out,
            "  limits: fuel {}, {} ms, {} MiB, output {} B{}{}",
            l.fuel,
            l.timeout_ms,
            l.memory_mib,
            l.max_output_bytes,
            if grants.is_empty() { "" } else { "; " },
            grants.join(", ")
        )?;
        let schema = serde_json::to_string_pretty(&tool.def.parameters)?;
        writeln!(out, "  parameters:")?;
        for line in schema.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

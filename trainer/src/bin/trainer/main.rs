//! The `trainer` binary: command-line access to the model runtime (`generate`, `logprobs`),
//! interactive evaluation of a local model in the tool environment (`eval`) and training
//! (`sft`, `grpo`).
//! Errors are printed once here, with their causes, and map to exit code 1 (usage errors: 2,
//! from clap).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Parser, Subcommand, ValueEnum};
use trainer::{generate, load, Message, SamplingParams};

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Tool-use RL trainer: model runtime commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// A `.gguf` file or a Hugging Face model directory.
    #[arg(long)]
    model: PathBuf,
    /// Where to run the model (`cuda` needs the `cuda` feature).
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

#[derive(Subcommand)]
enum Command {
    /// Print the assistant's reply to a prompt (the model's chat template is applied).
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        /// System message (the template's default when omitted).
        #[arg(long)]
        system: Option<String>,
        /// The user message.
        #[arg(long)]
        prompt: String,
        /// Maximum number of new tokens.
        #[arg(long, default_value_t = 256)]
        max_new_tokens: usize,
        /// Sampling temperature; 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        /// Nucleus sampling threshold (1 = off).
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        /// Keep only the k most likely tokens (0 = off).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Seed of the sampler.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Evaluate the model interactively on a dataset in the tool environment (the same code as
    /// `toolenv eval`, with the model run locally).
    Eval(LocalEvalArgs),
    /// Train with GRPO on the environment's tasks, as `[model]`, `[data]`, `[rollout]`,
    /// `[reward]`, `[optimizer]`, `[grpo]`, `[eval]`, `[checkpoints]` and `[train]` of the file
    /// say. A missing `[grpo] start_from` that is the `[sft]` export is trained first; the run
    /// ends with a held-out evaluation and a before/after table.
    Grpo {
        /// The environment file with the training tables.
        #[arg(long, default_value = "env/config.toml")]
        env: PathBuf,
        /// Train up to this step (overrides `[grpo] steps`).
        #[arg(long)]
        steps: Option<u64>,
        /// Output directory (overrides `[train] out`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue from the latest checkpoint in the output directory.
        #[arg(long)]
        resume: bool,
        /// Override one key of the file, `TABLE.KEY=VALUE` (repeatable): `--set
        /// reward.variant=coarse --set train.seed=1`.
        #[arg(long = "set", value_name = "TABLE.KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Supervised warm start on `[sft] data` (loss on completion tokens only); writes a Hugging
    /// Face directory `<[sft] out>/model` that `[grpo] start_from` can name.
    Sft {
        /// The environment file with the training tables.
        #[arg(long, default_value = "env/config.toml")]
        env: PathBuf,
        /// Optimizer steps (overrides `[sft] steps`).
        #[arg(long)]
        steps: Option<u64>,
        /// Override one key of the file, `TABLE.KEY=VALUE` (repeatable), as `trainer grpo --set`.
        #[arg(long = "set", value_name = "TABLE.KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Draw runs side by side (held-out accuracy, held-out mean reward, training reward against
    /// the step) into one PNG and print their evaluations as a markdown table: an ablation's or
    /// a seed sweep's comparison.
    Plot {
        /// A run, `LABEL=DIR` (a `trainer grpo` output directory); repeat for each.
        #[arg(long = "run", value_name = "LABEL=DIR", required = true)]
        runs: Vec<String>,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print `{"tokens": [...], "logprobs": [null, ...]}` for a text file, tokenized as is.
    Logprobs {
        #[command(flatten)]
        model: ModelArgs,
        /// The text to score.
        #[arg(long)]
        text_file: PathBuf,
    },
}

#[derive(clap::Args)]
struct LocalEvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The environment config (tools and limits).
    #[arg(long, default_value = "env/config.toml")]
    env: PathBuf,
    #[command(flatten)]
    eval: toolenv::eval::EvalArgs,
    /// Sampling temperature (0 = greedy, as the paper evaluates).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Most tokens per assistant turn.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: u32,
}

fn eval(args: LocalEvalArgs) -> Result<()> {
    let dev = device(args.model.device)?;
    let loaded = load(&args.model.model, DType::F32, &dev)
        .with_context(|| format!("loading {}", args.model.model.display()))?;
    let name = args
        .model
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "local".into());
    let params = SamplingParams {
        temperature: args.temperature,
        max_new_tokens: args.max_new_tokens as usize,
        seed: args.eval.seed,
        ..SamplingParams::default()
    };
    // The turns of the samples in flight are sampled as one lockstep batch (greedy decoding
    // gives each row the answer it would get alone, up to float rounding in the batched matmuls).
    let batch = args.eval.concurrency.max(1);
    let policy = trainer::BatchedPolicy::new(std::sync::Arc::new(loaded), params, batch, name);
    let mut eval_args = args.eval.clone();
    if eval_args.tools.is_none() {
        // A training run's held-out evaluations see the tools its `[rollout] tools` selects, so
        // this evaluation of the same config does too unless `--tools` says otherwise.
        eval_args.tools = trainer::train::config::TrainConfig::read(&args.env)?
            .rollout
            .tools;
    }
    eval_args.run(&args.env, &policy, args.max_new_tokens)?;
    Ok(())
}

fn device(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => {
            if !cfg!(feature = "cuda") {
                bail!("--device cuda needs a build with `--features cuda`");
            }
            Device::new_cuda(0).context("opening CUDA device 0")
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate {
            model,
            system,
            prompt,
            max_new_tokens,
            temperature,
            top_p,
            top_k,
            seed,
        } => {
            let dev = device(model.device)?;
            let loaded = load(&model.model, DType::F32, &dev)
                .with_context(|| format!("loading {}", model.model.display()))?;
            let mut messages = Vec::new();
            if let Some(system) = system {
                messages.push(Message::new("system", system));
            }
            messages.push(Message::new("user", prompt));
            let text = loaded.tokenizer.apply_chat_template(&messages, true)?;
            let ids = loaded.tokenizer.encode(&text, false)?;
            let params = SamplingParams {
                temperature,
                top_p,
                top_k,
                max_new_tokens,
                stop_token_ids: loaded
                    .tokenizer
                    .eos()
                    .map(|(_, id)| vec![id])
                    .unwrap_or_default(),
                seed,
                ..SamplingParams::default()
            };
            let out = generate(&loaded.model, &loaded.tokenizer, &[ids], &params)?;
            for g in out {
                println!("{}", g.text);
            }
        }
        Command::Eval(args) => eval(args)?,
        Command::Grpo {
            env,
            steps,
            out,
            resume,
            overrides,
        } => {
            let config = trainer::train::TrainConfig::read_with(&env, &overrides)?;
            if config.train.device == "cuda" && !cfg!(feature = "cuda") {
                bail!("[train] device = \"cuda\" needs a build with `--features cuda`");
            }
            let options = trainer::train::RunOptions {
                steps,
                out,
                resume,
                progress: true,
            };
            let mut run = trainer::train::GrpoRun::new(config, &options)?;
            run.run(true)?;
            let evals = trainer::train::report::read_evals(run.out())?;
            if let (Some(first), Some(last)) = (evals.first(), evals.last()) {
                print!(
                    "{}",
                    trainer::train::report::before_after_table(first, last)
                );
            }
            println!("model: {}", run.out().join("model").display());
            println!("plots: {}", run.out().join("plots/training.png").display());
        }
        Command::Sft {
            env,
            steps,
            overrides,
        } => {
            let config = trainer::train::TrainConfig::read_with(&env, &overrides)?;
            if config.train.device == "cuda" && !cfg!(feature = "cuda") {
                bail!("[train] device = \"cuda\" needs a build with `--features cuda`");
            }
            let dir = trainer::train::sft::run(&config, steps, true)?;
            println!("model: {}", dir.display());
        }
        Command::Plot { runs, out } => {
            let mut named = Vec::new();
            for run in &runs {
                let Some((label, dir)) = run.split_once('=') else {
                    bail!("--run {run}: expected LABEL=DIR");
                };
                named.push((label.to_string(), PathBuf::from(dir)));
            }
            let mut evals = Vec::new();
            for (label, dir) in &named {
                evals.push((label.clone(), trainer::train::report::read_evals(dir)?));
            }
            trainer::train::plot::plot_compare(&named, &out)?;
            print!("{}", trainer::train::report::evals_markdown(&evals));
            println!("plot: {}", out.display());
        }
        Command::Logprobs { model, text_file } => {
            let dev = device(model.device)?;
            let text = std::fs::read_to_string(&text_file)
                .with_context(|| format!("reading {}", text_file.display()))?;
            let loaded = load(&model.model, DType::F32, &dev)
                .with_context(|| format!("loading {}", model.model.display()))?;
            let ids = loaded.tokenizer.encode(&text, true)?;
            let mut logprobs: Vec<Option<f32>> = vec![None];
            if ids.len() >= 2 {
                let input = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
                let lp = loaded.model.token_logprobs(
                    &input,
                    None,
                    trainer::model::DEFAULT_LOGPROB_CHUNK,
                )?;
                logprobs.extend(lp.squeeze(0)?.to_vec1::<f32>()?.into_iter().map(Some));
            }
            if ids.is_empty() {
                logprobs.clear();
            }
            let json = serde_json::json!({ "tokens": ids, "logprobs": logprobs });
            println!("{json}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    trainer::process::tune_for_tensors();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "trainer: error: {}",
                toolenv::report::error_chain(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

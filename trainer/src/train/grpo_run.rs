//! `trainer grpo`: the training loop. Each step samples `prompts_per_step` prompts (a fresh
//! seeded permutation per epoch), rolls out `group_size` episodes of each in one lockstep
//! round, scores them, turns rewards into group-normalised advantages and applies
//! `updates_per_batch` optimizer updates on the generated tokens. Metrics go to
//! `<out>/metrics.jsonl` (one line per step), evaluations to `<out>/eval.jsonl`, plots to
//! `<out>/plots/`, checkpoints to `<out>/checkpoints/` and the final model, Hugging Face style,
//! to `<out>/model`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Var};
use serde_json::{json, Value};
use toolenv::reward::Rubric;
use toolenv::rollout::{Roller, RolloutConfig};
use toolenv::Registry;

use crate::error::{Error, Result};
use crate::model::{load, LoadedModel, Model};
use crate::rng::SplitMix64;
use crate::sample::lockstep::BatchedPolicy;
use crate::sample::sampler::SamplingParams;
use crate::train::adamw::AdamW;
use crate::train::checkpoint::{self, TrainState};
use crate::train::config::TrainConfig;
use crate::train::episodes::{self, figures, EvalFigures, Prompt, Scored, Scorer};
use crate::train::grpo::{self, Objective};
use crate::train::update::{self, Seq};

/// A reward function replacing the configured one (tests use it to get a signal from a random
/// model).
pub type RewardOverride = Box<dyn Fn(&Scored) -> f64 + Send + Sync>;

/// Command-line choices that override the file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Steps to reach (overrides `[grpo] steps`).
    pub steps: Option<u64>,
    /// Output directory (overrides `[train] out`).
    pub out: Option<PathBuf>,
    /// Continue from `<out>/checkpoints/latest`.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// What one step did, as written to `metrics.jsonl`.
pub type StepMetrics = Value;

/// A GRPO run.
pub struct GrpoRun {
    config: TrainConfig,
    config_text: String,
    loaded: Arc<LoadedModel>,
    reference: Option<Model>,
    vars: Vec<Var>,
    optimizer: AdamW,
    roller: Roller,
    rubric: Rubric,
    prompts: Vec<Prompt>,
    eval_prompts: Vec<Prompt>,
    runtime: tokio::runtime::Runtime,
    out: PathBuf,
    step: u64,
    total_steps: u64,
    reward_override: Option<RewardOverride>,
    verbose: bool,
}

impl GrpoRun {
    /// Sets up a run from the file at `config_path`: trains the SFT warm start first if it is
    /// configured and missing ([`super::sft::ensure_warm_start`]), then loads the environment, the
    /// data and the model (or the latest checkpoint with `resume`).
    pub fn new(config: TrainConfig, options: &RunOptions) -> Result<Self> {
        super::sft::ensure_warm_start(&config, options.progress)?;
        let config_text = config.text.clone();
        let device = super::device(&config)?;
        let out = options.out.clone().unwrap_or(config.train.out.clone());
        let total_steps = options.steps.unwrap_or(config.grpo.steps);

        let registry = Registry::load_selecting(&config.path, config.rollout.tools.as_deref())
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", config.path.display())))?;
        let r = &config.rollout;
        let roller = Roller::new(
            Arc::new(registry),
            RolloutConfig {
                max_turns: r.max_turns,
                max_new_tokens: r.max_new_tokens,
                max_episode_tokens: r.max_episode_tokens,
                style: r.style,
                tool_listing: r.tool_listing,
                ..RolloutConfig::default()
            },
        );
        let rubric = Rubric::new(&config.reward.rubric_config())
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let train_set = toolenv::dataset::load(&config.data.train, None)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let prompts = episodes::prompts(&train_set, config.data.limit)?;
        let eval_set = toolenv::dataset::load(&config.eval.dataset, None)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let eval_prompts = episodes::prompts(&eval_set, config.eval.limit)?;

        let start = config
            .grpo
            .start_from
            .clone()
            .unwrap_or(config.model.path.clone());
        let mut loaded = load_start(&start, &config.model.path, &device)?;
        loaded
            .model
            .freeze_bottom_layers(config.grpo.frozen_layers)
            .map_err(|e| Error::InvalidInput(format!("[grpo] frozen_layers: {e}")))?;
        let named = checkpoint::named_vars(&loaded.model);
        // The frozen reference is a copy of the starting weights (not a second read of the
        // files, which a weights-only directory could not even satisfy).
        let reference = if config.grpo.kl_coef > 0.0 {
            let weights = named
                .iter()
                .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
                .collect::<Result<HashMap<_, _>>>()?;
            let c = loaded.model.config().clone();
            let layers = c.num_layers;
            let mut reference = Model::from_weights(c, weights, DType::F32, &device)?;
            // It never learns: its passes need no graph through the layers.
            reference.freeze_bottom_layers(layers)?;
            Some(reference)
        } else {
            None
        };
        let vars: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
        let mut optimizer = super::optimizer(&config, vars.clone(), config.optimizer.lr)?;
        let mut step = 0;
        if options.resume {
            if let Some(path) = checkpoint::latest(&out)? {
                let state = checkpoint::restore(&path, &loaded.model, &mut optimizer)?;
                if state.seed != config.train.seed {
                    return Err(Error::InvalidInput(format!(
                        "{} was written with seed {}, the config says {}",
                        path.display(),
                        state.seed,
                        config.train.seed
                    )));
                }
                step = state.step;
                tracing_note(&format!("resumed from {} (step {step})", path.display()));
            }
        } else if out.join("checkpoints").join("latest").exists() {
            return Err(Error::InvalidInput(format!(
                "{} already holds a run: pass --resume to continue it or choose another --out",
                out.display()
            )));
        }
        std::fs::create_dir_all(&out).map_err(|e| Error::io(out.clone(), e))?;
        let runtime = super::runtime()?;
        Ok(GrpoRun {
            config,
            config_text,
            // Shared with the sampler of each round; the optimizer updates it in place.
            loaded: Arc::new(loaded),
            reference,
            vars,
            optimizer,
            roller,
            rubric,
            prompts,
            eval_prompts,
            runtime,
            out,
            step,
            total_steps,
            reward_override: None,
            verbose: options.progress,
        })
    }

    /// Replaces the configured reward.
    pub fn set_reward_override(&mut self, f: RewardOverride) {
        self.reward_override = Some(f);
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The model being trained.
    pub fn model(&self) -> &Model {
        &self.loaded.model
    }

    /// The output directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The prompts of 1-based `step`: a seeded permutation of the data per epoch, walked in
    /// order, so a resumed run draws exactly what the uninterrupted one would.
    pub fn prompts_of(&self, step: u64) -> Vec<usize> {
        let n = self.prompts.len();
        let per = self.config.grpo.prompts_per_step;
        (0..per)
            .map(|i| {
                let k = (step - 1) as usize * per + i;
                let epoch = k / n;
                permutation(
                    n,
                    self.config.train.seed ^ ((epoch as u64 + 1) * 0x5851_F42D),
                )[k % n]
            })
            .collect()
    }

    fn sampling_seed(&self, step: u64) -> u64 {
        self.config.train.seed ^ step.wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }

    fn policy(&self, temperature: f64, seed: u64) -> BatchedPolicy {
        let r = &self.config.rollout;
        BatchedPolicy::new(
            self.loaded.clone(),
            SamplingParams {
                temperature,
                top_p: r.top_p,
                top_k: r.top_k,
                max_new_tokens: r.max_new_tokens as usize,
                seed,
                ..SamplingParams::default()
            },
            r.max_batch,
            "policy",
        )
    }

    /// Evaluates the held-out prompts greedily (one episode each).
    pub fn evaluate(&self) -> EvalFigures {
        let policy = self.policy(0.0, self.config.train.seed);
        let scorer = Scorer::held_out(self.config.reward.terms.clone());
        let prompts: Vec<&Prompt> = self.eval_prompts.iter().collect();
        let mut scored = self.runtime.block_on(episodes::run_episodes(
            &policy,
            &self.roller,
            &scorer,
            &prompts,
            1,
            self.config.train.seed,
        ));
        if let Some(f) = &self.reward_override {
            scored.iter_mut().for_each(|s| s.reward = f(s));
        }
        figures(&scored)
    }

    /// Runs one step and returns its metrics line.
    pub fn train_step(&mut self) -> Result<StepMetrics> {
        let step = self.step + 1;
        let started = Instant::now();
        let cfg = &self.config;
        let g = cfg.rollout.group_size;
        let picks = self.prompts_of(step);
        let prompts: Vec<&Prompt> = picks.iter().map(|&i| &self.prompts[i]).collect();
        let policy = self.policy(cfg.rollout.temperature, self.sampling_seed(step));
        let scorer = Scorer {
            rubric: self.rubric.clone(),
            terms: cfg.reward.terms.clone(),
            step: cfg.reward.rubric_step(step),
        };
        let rollout_started = Instant::now();
        let mut scored = self.runtime.block_on(episodes::run_episodes(
            &policy,
            &self.roller,
            &scorer,
            &prompts,
            g,
            cfg.train.seed.wrapping_add(step << 20),
        ));
        let rollout_s = rollout_started.elapsed().as_secs_f64();
        let sampling = policy.take_stats();
        if let Some(f) = &self.reward_override {
            scored.iter_mut().for_each(|s| s.reward = f(s));
        }
        if let Some(e) = scored.iter().find_map(|s| s.error.as_ref()) {
            return Err(Error::InvalidInput(format!("an episode failed: {e}")));
        }

        let prepare_started = Instant::now();
        let (unique_tokens, unique_context) = update::unique_tokens(
            scored
                .iter()
                .flat_map(|s| &s.sequences)
                .map(|t| (t.ids.as_slice(), t.mask.as_slice())),
        );
        let episode_sequences = scored.iter().map(|s| s.sequences.len()).sum::<usize>();
        // Advantages per group; sequences of zero-advantage episodes carry no policy gradient
        // and, without a KL term, are skipped (their tokens still count in N).
        let mut seqs: Vec<Seq> = Vec::new();
        let mut skipped_sequences = 0;
        let mut zero_spread = 0;
        let mut total_targets = 0usize;
        let rewards: Vec<f64> = scored.iter().map(|s| s.reward).collect();
        let advantages =
            grpo::step_advantages(&rewards, g, cfg.grpo.scale_rewards, cfg.grpo.advantage_eps);
        for (gi, (group, adv)) in scored.chunks(g).zip(&advantages).enumerate() {
            zero_spread += usize::from(adv.zero_spread);
            for (s, a) in group.iter().zip(&adv.advantages) {
                for t in &s.sequences {
                    let targets = t.mask.iter().filter(|&&m| m == 1).count();
                    if targets == 0 {
                        continue;
                    }
                    total_targets += targets;
                    if *a == 0.0 && cfg.grpo.kl_coef == 0.0 {
                        continue;
                    }
                    if t.ids.len() > cfg.grpo.max_sequence_tokens {
                        skipped_sequences += 1;
                        continue;
                    }
                    seqs.push(Seq {
                        ids: t.ids.clone(),
                        mask: t.mask.clone(),
                        old_logprobs: t.logprobs.clone(),
                        advantage: *a,
                        group: gi,
                    });
                }
            }
        }
        let lr = grpo::learning_rate(
            step,
            self.total_steps,
            cfg.optimizer.warmup_steps,
            cfg.optimizer.lr,
            cfg.optimizer.min_lr_ratio,
            cfg.optimizer.schedule,
        );
        let objective = Objective {
            clip_low: cfg.grpo.clip_low,
            clip_high: cfg.grpo.clip_high,
            kl_coef: cfg.grpo.kl_coef,
        };
        if self.verbose {
            let longest = seqs.iter().map(|s| s.ids.len()).max().unwrap_or(0);
            eprintln!(
                "trainer: step {step}: {} episodes sampled in {rollout_s:.1} s; training on {} \
                 sequences (longest {longest} tokens, {skipped_sequences} skipped)",
                scored.len(),
                seqs.len()
            );
        }
        let prepare_s = prepare_started.elapsed().as_secs_f64();
        let mut stats = update::UpdateStats::default();
        if !seqs.is_empty() {
            for _ in 0..cfg.grpo.updates_per_batch {
                let s = update::update(
                    &self.loaded.model,
                    self.reference.as_ref(),
                    &mut self.optimizer,
                    &self.vars,
                    &seqs,
                    Some(&objective),
                    update::MicroBatching {
                        max_sequences: cfg.grpo.micro_batch,
                        max_tokens: cfg.grpo.micro_batch_tokens,
                        max_cells: cfg.grpo.micro_batch_cells,
                        by_group: true,
                    },
                    cfg.optimizer.grad_clip,
                    lr,
                    total_targets,
                )?;
                let (fb, opt, passes) = (
                    stats.forward_backward_s,
                    stats.optimizer_s,
                    stats.micro_batches,
                );
                stats = update::UpdateStats {
                    forward_backward_s: fb + s.forward_backward_s,
                    optimizer_s: opt + s.optimizer_s,
                    micro_batches: passes + s.micro_batches,
                    ..s
                };
            }
        }
        if !stats.loss.is_finite() {
            return Err(Error::InvalidInput(format!(
                "step {step}: the loss is {}",
                stats.loss
            )));
        }
        self.step = step;

        let mut terms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for s in &scored {
            for (k, v) in &s.terms {
                terms.entry(k.clone()).or_default().push(*v);
            }
        }
        let (reward_mean, reward_std) = grpo::mean_std(&rewards);
        let judged: Vec<bool> = scored.iter().filter_map(|s| s.correct).collect();
        let tool_calls: usize = scored.iter().map(|s| s.tool_calls).sum();
        let tool_errors: usize = scored.iter().map(|s| s.tool_errors).sum();
        let tools_s: f64 = scored.iter().map(|s| s.tools_ms).sum::<f64>() / 1e3;
        let scoring_s: f64 = scored.iter().map(|s| s.scoring_ms).sum::<f64>() / 1e3;
        let terms_json: serde_json::Map<String, Value> = terms
            .iter()
            .map(|(k, v)| {
                let (m, s) = grpo::mean_std(v);
                (k.clone(), json!({"mean": m, "std": s}))
            })
            .collect();
        let step_s = started.elapsed().as_secs_f64();
        let metrics = json!({
            "step": step,
            "lr": lr,
            "loss": stats.loss,
            "reward": {"mean": reward_mean, "std": reward_std},
            "terms": terms_json,
            "accuracy": (!judged.is_empty()).then(|| judged.iter().filter(|&&c| c).count() as f64 / judged.len() as f64),
            "kl": stats.kl,
            "clip_fraction": stats.clip_fraction,
            "ratio_mean": stats.ratio_mean,
            "entropy": sampling.entropy_sum / sampling.generated_tokens.max(1) as f64,
            "grad_norm": stats.grad_norm,
            "episodes": scored.len(),
            "zero_spread_groups": zero_spread,
            "skipped_sequences": skipped_sequences,
            "groups": prompts.len(),
            "tokens": {
                "generated": sampling.generated_tokens,
                "prompt": sampling.prompt_tokens,
                "context": sampling.context_tokens,
                "prefilled": sampling.prefilled_tokens,
                "unique": unique_tokens,
                "unique_context": unique_context,
                "trained": stats.target_tokens,
                "forward": stats.forward_tokens,
                "forward_padded": stats.padded_tokens,
                "forward_unshared": stats.unshared_tokens,
            },
            "sequences": episode_sequences,
            "micro_batches": stats.micro_batches,
            "sampling": {
                "batches": sampling.batches,
                "turns": sampling.turns,
                "restarts": sampling.restarts,
                "decode_steps": sampling.decode_steps,
                "mean_batch_rows": sampling.row_steps as f64 / sampling.decode_steps.max(1) as f64,
                "rebuilds": sampling.rebuilds,
                "restacks": sampling.restacks,
            },
            "mean_turns": scored.iter().map(|s| s.turns).sum::<usize>() as f64 / scored.len().max(1) as f64,
            "tool_calls": tool_calls,
            "tool_error_rate": (tool_calls > 0).then(|| tool_errors as f64 / tool_calls as f64),
            // The step's wall time, part by part: rollout (sampling, then tools, scoring and
            // waiting between batches), preparing the sequences, forward-backward, optimizer,
            // and what is left (metrics). Tools and scoring are summed over episodes, which run
            // concurrently, so they are shown beside the rollout, not inside the sum.
            "time_s": {
                "step": step_s,
                "rollout": rollout_s,
                "sampling": sampling.seconds,
                // Of sampling: prefill, the decoding steps' forward passes, rows leaving and
                // joining the batch; the rest is picking tokens and bookkeeping.
                "sampling_prefill": sampling.prefill_s,
                "sampling_decode": sampling.decode_s,
                "sampling_rebuild": sampling.rebuild_s,
                "rollout_other": rollout_s - sampling.seconds,
                "prepare": prepare_s,
                "forward_backward": stats.forward_backward_s,
                "optimizer": stats.optimizer_s,
                "other": step_s - rollout_s - prepare_s - stats.forward_backward_s - stats.optimizer_s,
                "tools_summed": tools_s,
                "scoring_summed": scoring_s,
            },
            "train_tokens_per_s": if stats.forward_backward_s > 0.0 { stats.forward_tokens as f64 / stats.forward_backward_s } else { 0.0 },
        });
        Ok(metrics)
    }

    /// Writes a checkpoint of the current step.
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        checkpoint::save(
            &self.out,
            &self.loaded.model,
            &self.optimizer,
            &TrainState {
                step: self.step,
                optimizer_steps: self.optimizer.steps(),
                seed: self.config.train.seed,
                kind: "grpo".into(),
            },
            &self.config_text,
            self.config.checkpoints.keep,
        )
    }

    /// Runs to the last step with a progress bar, metrics, evaluations, plots, checkpoints and
    /// the final export. Every evaluation is in `<out>/eval.jsonl` (see [`super::report`]).
    pub fn run(&mut self, progress: bool) -> Result<()> {
        let metrics_path = self.out.join("metrics.jsonl");
        let eval_path = self.out.join("eval.jsonl");
        // A resumed run rewrites the lines of steps after its checkpoint.
        truncate_after(&metrics_path, self.step)?;
        truncate_after(&eval_path, self.step)?;
        if self.step == 0 && self.config.eval.at_start {
            let f = self.evaluate();
            append(&eval_path, &json!({"step": 0, "eval": f}))?;
        }
        let bar = progress.then(|| {
            let bar = super::progress_bar(self.total_steps);
            bar.set_position(self.step);
            bar
        });
        while self.step < self.total_steps {
            let m = self.train_step()?;
            append(&metrics_path, &m)?;
            if let Some(bar) = &bar {
                bar.set_position(self.step);
                bar.set_message(format!(
                    "reward {:.3} | loss {:+.4} | {:.1} s/step",
                    m["reward"]["mean"].as_f64().unwrap_or(0.0),
                    m["loss"].as_f64().unwrap_or(0.0),
                    m["time_s"]["step"].as_f64().unwrap_or(0.0),
                ));
            }
            let last = self.step == self.total_steps;
            let every = self.config.eval.every;
            if last || (every > 0 && self.step.is_multiple_of(every)) {
                let f = self.evaluate();
                append(&eval_path, &json!({"step": self.step, "eval": f}))?;
                if let Some(bar) = &bar {
                    bar.println(format!(
                        "step {}: held-out accuracy {} | mean reward {:.3}",
                        self.step,
                        f.accuracy.map_or("-".to_string(), |a| format!("{a:.1}%")),
                        f.mean_reward
                    ));
                }
                crate::train::plot::plot_run(&self.out)?;
            }
            let every = self.config.checkpoints.every;
            if last || (every > 0 && self.step.is_multiple_of(every)) {
                self.save_checkpoint()?;
            }
        }
        if let Some(bar) = bar {
            bar.finish();
        }
        crate::train::plot::plot_run(&self.out)?;
        checkpoint::export_hf(
            &self.out.join("model"),
            &self.loaded.model,
            &self.loaded.tokenizer,
        )?;
        Ok(())
    }
}

/// Loads the starting weights; a directory without a tokenizer takes the base model's.
fn load_start(start: &Path, base: &Path, device: &Device) -> Result<LoadedModel> {
    if start.is_dir() && !start.join("tokenizer.json").exists() {
        let base = load(base, DType::F32, device)?;
        let (config, weights) = crate::model::load_weights(start)?;
        let model = Model::from_weights(config, weights, DType::F32, device)?;
        return Ok(LoadedModel {
            model,
            tokenizer: base.tokenizer,
        });
    }
    if !start.exists() {
        return Err(Error::MissingFile {
            path: start.to_path_buf(),
            what: "the starting model (`[grpo] start_from`; only `<[sft] out>/model` is trained when missing)".into(),
        });
    }
    load(start, DType::F32, device)
}

/// A seeded Fisher-Yates permutation of `0..n`.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..n).rev() {
        let j = (rng.next_f64() * (i + 1) as f64) as usize;
        p.swap(i, j.min(i));
    }
    p
}

/// Appends one JSON line.
pub fn append(path: &Path, value: &Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{value}")
        .and_then(|_| f.flush())
        .map_err(|e| Error::io(path, e))
}

/// Drops the lines whose `step` is after `step` (a resumed run writes them again).
fn truncate_after(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, body).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn tracing_note(message: &str) {
    eprintln!("trainer: {message}");
}

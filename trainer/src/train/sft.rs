//! `trainer sft`: a supervised warm start, loss on the completion tokens only.
//!
//! Two kinds of data: ToolRL's SFT split (`toolrl-sft`: system + user prompt, the expected
//! completion as target) and executable tasks (`tasks-train`: each task's reference solution is
//! replayed through the real tools by the rollout loop, so every assistant turn is a target in
//! exactly the context, observations included, that the model sees during GRPO). An episode is
//! one sequence, laid out token for token as the sampler builds it (see [`tokenize`]); a target
//! ends with the template's end-of-turn token so the model learns to stop. Micro-batches share
//! their prompt prefix like GRPO's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::{DType, Var};
use serde_json::json;
use toolenv::chat::Message as EnvMessage;
use toolenv::dataset::Sample;
use toolenv::eval::{episode_task, solution_script};
use toolenv::policy::{Policy, PolicyError, PolicyTurn, ScriptedPolicy, TurnRequest};
use toolenv::rollout::{Roller, RolloutConfig};
use toolenv::Registry;

use crate::error::{Error, Result};
use crate::model::{load, LoadedModel, TextTokenizer};
use crate::sample::local_policy::template_messages;
use crate::train::checkpoint;
use crate::train::config::TrainConfig;
use crate::train::grpo;
use crate::train::grpo_run::{append, permutation};
use crate::train::update::{self, Seq};

/// A conversation to learn: every assistant message is a target, in the context of everything
/// before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The whole conversation, system first.
    pub messages: Vec<EnvMessage>,
}

/// Records the conversation a scripted policy plays: the last request and its reply.
struct Recorder {
    inner: ScriptedPolicy,
    seen: Mutex<Vec<EnvMessage>>,
}

impl Policy for Recorder {
    fn name(&self) -> String {
        "reference".into()
    }

    async fn next_turn(
        &self,
        request: TurnRequest<'_>,
    ) -> std::result::Result<PolicyTurn, PolicyError> {
        let turn = self.inner.next_turn(request).await?;
        let mut conversation = request.messages.to_vec();
        conversation.push(EnvMessage::assistant(turn.text.clone()));
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = conversation;
        Ok(turn)
    }
}

/// The SFT examples of `config.sft.data`.
pub fn examples(config: &TrainConfig) -> Result<Vec<Example>> {
    let dataset = toolenv::dataset::load(&config.sft.data, None)
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
    let samples: Vec<&Sample> = dataset
        .iter()
        .take(config.sft.limit.unwrap_or(usize::MAX))
        .collect();
    let mut out = Vec::new();
    let mut roller: Option<Roller> = None;
    let runtime = super::runtime()?;
    for (i, sample) in samples.into_iter().enumerate() {
        match sample {
            Sample::ToolRl(s) => out.push(Example {
                messages: vec![
                    EnvMessage::system(&s.system),
                    EnvMessage::user(&s.user),
                    EnvMessage::assistant(s.output.trim()),
                ],
            }),
            Sample::Task(task) => {
                if roller.is_none() {
                    let registry =
                        Registry::load_selecting(&config.path, config.rollout.tools.as_deref())
                            .map_err(|e| {
                                Error::InvalidInput(format!("{}: {e}", config.path.display()))
                            })?;
                    roller = Some(Roller::new(
                        Arc::new(registry),
                        RolloutConfig {
                            max_turns: config.rollout.max_turns.max(8),
                            style: config.rollout.style,
                            tool_listing: config.rollout.tool_listing,
                            ..RolloutConfig::default()
                        },
                    ));
                }
                let Some(roller) = roller.as_ref() else {
                    continue;
                };
                let recorder = Recorder {
                    inner: ScriptedPolicy::new(solution_script(task)),
                    seen: Mutex::new(Vec::new()),
                };
                let episode = episode_task(task);
                let trajectory = runtime
                    .block_on(roller.run(&recorder, &episode, i as u64, config.train.seed))
                    .map_err(|e| Error::InvalidInput(format!("replaying {}: {e}", task.id)))?;
                if trajectory.calls().any(|c| !c.succeeded()) {
                    return Err(Error::InvalidInput(format!(
                        "the reference solution of {} has a failing call",
                        task.id
                    )));
                }
                out.push(Example {
                    messages: recorder
                        .seen
                        .into_inner()
                        .unwrap_or_else(|e| e.into_inner()),
                });
            }
            Sample::ApiBank(s) => {
                return Err(Error::InvalidInput(format!(
                    "{}: sample {} is API-Bank, which has no completion to learn",
                    dataset.name, s.id
                )))
            }
            Sample::Bfcl(e) => {
                return Err(Error::InvalidInput(format!(
                    "{}: entry {} is BFCL, a benchmark to evaluate on, not to train on",
                    dataset.name, e.id
                )))
            }
        }
    }
    Ok(out)
}

/// Token ids of an example as one sequence, laid out as the policy sees an episode in GRPO: the
/// first prompt, then each assistant message with its end-of-turn token (mask 1), then what
/// the template adds before the next one (mask 0: the observation and the next header).
pub fn tokenize(tokenizer: &TextTokenizer, example: &Example) -> Result<Seq> {
    let messages = template_messages(&example.messages);
    let assistant: Vec<usize> = (0..messages.len())
        .filter(|&i| messages[i].role == "assistant")
        .collect();
    let Some(&first) = assistant.first() else {
        return Err(Error::InvalidInput(
            "an SFT example needs an assistant message to learn".into(),
        ));
    };
    let prompt = tokenizer.apply_chat_template(&messages[..first], true)?;
    let mut ids = tokenizer.encode(&prompt, false)?;
    let mut mask = vec![0u8; ids.len()];
    let eos = tokenizer.eos().map(|(_, id)| id);
    for (k, &at) in assistant.iter().enumerate() {
        let target = tokenizer.encode(&messages[at].content, false)?;
        mask.extend(std::iter::repeat_n(
            1,
            target.len() + usize::from(eos.is_some()),
        ));
        ids.extend(target);
        ids.extend(eos);
        if let Some(&next) = assistant.get(k + 1) {
            let between = tokenizer
                .turn_continuation(&messages[..=at], &messages[..next], eos.is_some())?
                .ok_or_else(|| {
                    Error::Template(
                        "the chat template does not render a conversation as its earlier turns \
                         extended"
                            .into(),
                    )
                })?;
            let context = tokenizer.encode(&between, false)?;
            mask.extend(std::iter::repeat_n(0, context.len()));
            ids.extend(context);
        }
    }
    Ok(Seq {
        old_logprobs: vec![0.0; ids.len()],
        ids,
        mask,
        advantage: 0.0,
        group: 0,
    })
}

/// Trains the warm start of a GRPO run when it is missing: if `[grpo] start_from` is this
/// config's own SFT export (`<[sft] out>/model`) and does not exist yet, runs SFT as configured
/// and returns the model directory it wrote. `None` when there is nothing to train: no warm start
/// configured, or it is already there (a finished SFT is reused; its export is atomic, so an
/// interrupted one is trained again). A missing `start_from` elsewhere is the GRPO run's error.
pub fn ensure_warm_start(config: &TrainConfig, progress: bool) -> Result<Option<PathBuf>> {
    let Some(start) = &config.grpo.start_from else {
        return Ok(None);
    };
    // Compared by components: `a/b/` and `a/./b` name the same directory.
    let own_export = start
        .components()
        .eq(config.sft.out.join("model").components());
    if start.exists() || !own_export {
        return Ok(None);
    }
    eprintln!(
        "trainer grpo: the warm start {} is missing: training it first ([sft])",
        start.display()
    );
    run(config, None, progress).map(Some)
}

/// Runs SFT as configured; writes `<out>/metrics.jsonl` and the model to `<out>/model`.
pub fn run(config: &TrainConfig, steps: Option<u64>, progress: bool) -> Result<PathBuf> {
    let device = super::device(config)?;
    let s = &config.sft;
    let out = s.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| Error::io(out.clone(), e))?;
    let mut loaded: LoadedModel = load(&config.model.path, DType::F32, &device)?;
    loaded
        .model
        .freeze_bottom_layers(s.frozen_layers)
        .map_err(|e| Error::InvalidInput(format!("[sft] frozen_layers: {e}")))?;
    let examples = examples(config)?;
    let mut seqs = Vec::new();
    let mut skipped = 0;
    for e in &examples {
        let seq = tokenize(&loaded.tokenizer, e)?;
        if seq.ids.len() > s.max_tokens {
            skipped += 1;
            continue;
        }
        seqs.push(seq);
    }
    if seqs.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no SFT sequence fits in {} tokens ({skipped} skipped)",
            s.max_tokens
        )));
    }
    let named = checkpoint::named_vars(&loaded.model);
    let vars: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
    let o = &config.optimizer;
    let mut optimizer = super::optimizer(config, vars.clone(), s.lr)?;
    let total = steps.unwrap_or(s.steps);
    let metrics_path = out.join("metrics.jsonl");
    let _ = std::fs::remove_file(&metrics_path);
    eprintln!(
        "trainer sft: {} sequences from {} ({} too long, skipped), {} steps of {}",
        seqs.len(),
        s.data,
        skipped,
        total,
        s.batch_size
    );
    let bar = progress.then(|| super::progress_bar(total));
    let n = seqs.len();
    for step in 1..=total {
        let started = Instant::now();
        // The same prompt layout groups well: sort the batch so shared prefixes are adjacent.
        let batch: Vec<Seq> = (0..s.batch_size)
            .map(|i| {
                let k = (step - 1) as usize * s.batch_size + i;
                let order = permutation(n, config.train.seed ^ ((k / n) as u64 + 1));
                seqs[order[k % n]].clone()
            })
            .collect();
        let targets: usize = batch.iter().map(Seq::targets).sum();
        let lr = grpo::learning_rate(
            step,
            total,
            o.warmup_steps,
            s.lr,
            o.min_lr_ratio,
            o.schedule,
        );
        let stats = update::update(
            &loaded.model,
            None,
            &mut optimizer,
            &vars,
            &batch,
            None,
            update::MicroBatching {
                max_sequences: s.micro_batch,
                max_tokens: s.micro_batch_tokens,
                max_cells: s.micro_batch_cells,
                by_group: false,
            },
            o.grad_clip,
            lr,
            targets,
        )?;
        if !stats.loss.is_finite() {
            return Err(Error::InvalidInput(format!(
                "sft step {step}: the loss is {}",
                stats.loss
            )));
        }
        let m = json!({
            "step": step,
            "lr": lr,
            "loss": stats.loss,
            "grad_norm": stats.grad_norm,
            "tokens": {"trained": stats.target_tokens, "forward": stats.forward_tokens, "forward_padded": stats.padded_tokens, "forward_unshared": stats.unshared_tokens},
            "micro_batches": stats.micro_batches,
            "time_s": {"forward_backward": stats.forward_backward_s, "optimizer": stats.optimizer_s, "step": started.elapsed().as_secs_f64()},
        });
        append(&metrics_path, &m)?;
        if let Some(bar) = &bar {
            bar.set_position(step);
            bar.set_message(format!(
                "loss {:.4} | {:.1} s/step",
                stats.loss,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    let model_dir = out.join("model");
    checkpoint::export_hf(&model_dir, &loaded.model, &loaded.tokenizer)?;
    Ok(model_dir)
}

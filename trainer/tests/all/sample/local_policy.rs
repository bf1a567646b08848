//! The local model as a rollout policy: a real SmolLM2 episode in the real sandbox, with the
//! token record a trainer needs (exact sampled ids, their log-probabilities, masks).

use std::sync::Arc;

use candle_core::{DType, Device};
use toolenv::rollout::{EpisodeTask, Roller, RolloutConfig};
use trainer::{LocalPolicy, SamplingParams};

use crate::common::{gguf_path, repo_root, smollm2};

#[test]
fn local_policy_plays_an_episode_with_exact_tokens() {
    let loaded = trainer::load(&gguf_path(), DType::F32, &Device::Cpu).expect("SmolLM2 loads");
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 24,
        ..SamplingParams::default()
    };
    let policy = LocalPolicy::new(loaded, params, "smollm2");
    let registry = toolenv::Registry::load(&repo_root().join("env/config.toml")).unwrap();
    let roller = Roller::new(
        Arc::new(registry),
        RolloutConfig {
            max_turns: 2,
            max_new_tokens: 24,
            ..RolloutConfig::default()
        },
    );
    let task = EpisodeTask {
        id: "mul".into(),
        question: "What is 17*23? Use the calculator.".into(),
        expected_answer: Some("391".into()),
        reference_turns: vec![],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let run = || runtime.block_on(roller.run(&policy, &task, 0, 0)).unwrap();
    let t = run();
    assert!(!t.turns.is_empty());
    let tokenizer = &smollm2().tokenizer;
    for turn in &t.turns {
        let tokens = turn.tokens.as_ref().expect("a local policy reports tokens");
        assert!(tokens.restart, "each turn re-renders its prompt");
        assert!(!tokens.generated.is_empty() && tokens.generated.len() <= 24);
        assert_eq!(tokens.logprobs.len(), tokens.generated.len());
        assert!(tokens
            .logprobs
            .iter()
            .all(|lp| lp.is_finite() && *lp <= 0.0));
        let prompt = tokenizer.decode(&tokens.context, false).unwrap();
        assert!(
            prompt
                .starts_with("<|im_start|>system\nYou are a helpful multi-turn dialogue assistant"),
            "{prompt}"
        );
        assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
        let said = tokenizer.decode(&tokens.generated, true).unwrap();
        assert_eq!(
            said.trim(),
            turn.text,
            "the text is exactly what the sampled tokens say"
        );
    }
    let sequences = t.token_sequences();
    assert_eq!(sequences.len(), t.turns.len());
    for (seq, turn) in sequences.iter().zip(&t.turns) {
        let tokens = turn.tokens.as_ref().unwrap();
        let generated: usize = seq.mask.iter().map(|&m| m as usize).sum();
        assert_eq!(
            generated,
            tokens.generated.len(),
            "loss only on generated tokens"
        );
        assert_eq!(seq.ids.len(), tokens.context.len() + tokens.generated.len());
    }
    let again = run();
    let texts = |t: &toolenv::rollout::Trajectory| {
        t.turns.iter().map(|x| x.text.clone()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&t), texts(&again), "greedy episodes reproduce");
}

/// `trainer eval`'s set-up: the evaluation loop starts episodes as others end, and the batched
/// policy must count them in and out (a miscount hangs or errors). Greedy answers equal those of
/// the one-at-a-time policy.
#[test]
fn batched_policy_runs_an_evaluation_with_changing_membership() {
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 16,
        ..SamplingParams::default()
    };
    let registry = toolenv::Registry::load(&repo_root().join("env/config.toml")).unwrap();
    let roller = Roller::new(
        Arc::new(registry),
        RolloutConfig {
            max_turns: 2,
            max_new_tokens: 16,
            tool_listing: toolenv::rollout::ToolListing::Brief,
            ..RolloutConfig::default()
        },
    );
    let mut dataset = toolenv::dataset::load("tasks", None).unwrap();
    dataset.samples.truncate(3);
    let rubric = toolenv::reward::Rubric::for_variant("default").unwrap();
    let options = toolenv::eval::EvalOptions {
        concurrency: 2,
        max_new_tokens: 16,
        ..toolenv::eval::EvalOptions::default()
    };
    let batched = trainer::BatchedPolicy::new(
        Arc::new(trainer::load(&gguf_path(), DType::F32, &Device::Cpu).unwrap()),
        params.clone(),
        2,
        "batched",
    );
    let got = toolenv::eval::evaluate_blocking(&batched, &roller, &dataset, &rubric, &options)
        .unwrap()
        .0;
    let single = LocalPolicy::new(
        trainer::load(&gguf_path(), DType::F32, &Device::Cpu).unwrap(),
        params.clone(),
        "single",
    );
    let want = toolenv::eval::evaluate_blocking(&single, &roller, &dataset, &rubric, &options)
        .unwrap()
        .0;
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.error.is_none() && r.turns >= 1),
        "{got:?}"
    );
    let outputs = |rs: &[toolenv::eval::SampleResult]| {
        rs.iter()
            .map(|r| (r.id.clone(), r.output.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(outputs(&got), outputs(&want));
}

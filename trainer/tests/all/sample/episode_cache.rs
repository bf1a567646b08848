//! The batched policy keeps each episode's keys and values between turns: a later turn feeds only
//! what is new (the last sampled token, the end of the turn, the observation, the next header),
//! reports exactly that as its context, and samples what a prefill of the whole history would.

use std::sync::Arc;

use candle_core::{DType, Device};
use futures::future::join_all;
use toolenv::chat::Message;
use toolenv::policy::{Policy, PolicyTurn, TurnRequest};
use trainer::{generate, BatchedPolicy, SamplingParams};

use crate::common::{gguf_path, smollm2};

const SYSTEM: &str = "You can call tools. Put each call in <tool_call> tags, one JSON per line.";

fn greedy() -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_new_tokens: 12,
        ..SamplingParams::default()
    }
}

fn policy() -> BatchedPolicy {
    let loaded = trainer::load(&gguf_path(), DType::F32, &Device::Cpu).expect("SmolLM2 loads");
    BatchedPolicy::new(Arc::new(loaded), greedy(), 4, "cached")
}

/// One lockstep turn of every conversation (episode `i` is conversation `i`).
fn turn(
    runtime: &tokio::runtime::Runtime,
    policy: &BatchedPolicy,
    conversations: &[Vec<Message>],
) -> Vec<PolicyTurn> {
    runtime.block_on(join_all(conversations.iter().enumerate().map(
        |(i, messages)| async move {
            policy
                .next_turn(TurnRequest {
                    messages,
                    max_new_tokens: 12,
                    episode: i as u64,
                    tools: None,
                })
                .await
                .expect("the turn samples")
        },
    )))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_later_turn_feeds_only_what_is_new_and_samples_what_a_full_prefill_would() {
    let policy = policy();
    let runtime = runtime();
    let _round = policy.round(&[0, 1]);
    let mut conversations = vec![
        vec![
            Message::system(SYSTEM),
            Message::user("What is 17*23? Use the calculator."),
        ],
        vec![
            Message::system(SYSTEM),
            Message::user("Convert 3 miles to kilometres, please, with the unit converter."),
        ],
    ];
    let first = turn(&runtime, &policy, &conversations);
    let observations = [
        r#"<obs> [{"name": "calculator", "results": {"value": 391}}] </obs>"#,
        r#"<obs> [{"name": "unit_convert", "results": {"value": 4.828032, "unit": "km"}}] </obs>"#,
    ];
    for ((c, t), obs) in conversations.iter_mut().zip(&first).zip(observations) {
        c.push(Message::assistant(t.text.clone()));
        c.push(Message::user(obs));
    }
    let before = policy.take_stats();
    let second = turn(&runtime, &policy, &conversations);
    let after = policy.take_stats();

    let tokenizer = &smollm2().tokenizer;
    for ((t1, t2), obs) in first.iter().zip(&second).zip(observations) {
        let (a, b) = (t1.tokens.as_ref().unwrap(), t2.tokens.as_ref().unwrap());
        assert!(a.restart, "a first turn is a whole prompt");
        assert!(!b.restart, "the second turn goes on from the first");
        let context = tokenizer.decode(&b.context, false).unwrap();
        assert!(context.contains(obs), "{context}");
        assert!(context.ends_with("<|im_start|>assistant\n"), "{context}");
        assert!(
            !context.contains(SYSTEM),
            "the system prompt is not fed again"
        );
        // The whole history as the model saw it, prefilled from scratch, samples the same.
        let history = [a.context.clone(), a.generated.clone(), b.context.clone()].concat();
        let full = &generate(
            &smollm2().model,
            tokenizer,
            std::slice::from_ref(&history),
            &greedy(),
        )
        .unwrap()[0];
        assert_eq!(full.tokens, b.generated);
        for (x, y) in full.logprobs.iter().zip(&b.logprobs) {
            assert!(
                (x - y).abs() < 1e-3,
                "{x} from scratch vs {y} from the cache"
            );
        }
        // A re-render would have fed the whole conversation again, the first prompt included.
        let rendered = t2.usage.unwrap().prompt_tokens as usize;
        assert!(
            b.context.len() + a.context.len() <= rendered,
            "{} + {} of {rendered}",
            b.context.len(),
            a.context.len()
        );
    }
    assert_eq!(after.restarts, 0);
    let contexts: u64 = second
        .iter()
        .map(|t| t.tokens.as_ref().unwrap().context.len() as u64)
        .sum();
    assert_eq!(after.context_tokens, contexts);
    // Each episode feeds its last sampled token and then its context.
    assert_eq!(after.prefilled_tokens, contexts + 2);
    assert!(before.prefilled_tokens < before.prompt_tokens, "{before:?}");
}

#[test]
fn a_conversation_that_does_not_extend_the_last_one_starts_over() {
    let policy = policy();
    let runtime = runtime();
    let _round = policy.round(&[0]);
    let question = "What is 2+2?";
    let first = turn(
        &runtime,
        &policy,
        &[vec![Message::system(SYSTEM), Message::user(question)]],
    );
    // The paper style re-renders the history into one user message.
    let rerendered = vec![
        Message::system(SYSTEM),
        Message::user(format!("{question}\n{}\n<obs> 4 </obs>", first[0].text)),
    ];
    policy.take_stats();
    let second = turn(&runtime, &policy, std::slice::from_ref(&rerendered));
    let tokens = second[0].tokens.as_ref().unwrap();
    assert!(tokens.restart);
    assert_eq!(
        tokens.context.len() as u64,
        second[0].usage.unwrap().prompt_tokens
    );
    assert_eq!(policy.take_stats().restarts, 1);
}

#[test]
fn episodes_that_sampled_alike_prefill_their_next_turn_once() {
    let policy = policy();
    let runtime = runtime();
    let _round = policy.round(&[0, 1, 2]);
    let start = vec![
        Message::system(SYSTEM),
        Message::user("What is 17*23? Use the calculator."),
    ];
    let mut conversations = vec![start.clone(), start.clone(), start];
    let first = turn(&runtime, &policy, &conversations);
    assert!(
        first.iter().all(|t| t.text == first[0].text),
        "greedy copies agree"
    );
    // Episodes 0 and 1 see the same observation, episode 2 another.
    let same = r#"<obs> [{"name": "calculator", "results": {"value": 391}}] </obs>"#;
    let other = r#"<obs> [{"name": "calculator", "results": {"value": 392}}] </obs>"#;
    for (c, obs) in conversations.iter_mut().zip([same, same, other]) {
        c.push(Message::assistant(first[0].text.clone()));
        c.push(Message::user(obs));
    }
    policy.take_stats();
    let second = turn(&runtime, &policy, &conversations);
    let stats = policy.take_stats();
    let context = |t: &PolicyTurn| t.tokens.as_ref().unwrap().context.len() as u64;
    assert_eq!(
        second[0].tokens, second[1].tokens,
        "the shared prefill samples the same"
    );
    // Episode 1 reuses episode 0's prefill; each fed row adds its last sampled token.
    assert_eq!(
        stats.prefilled_tokens,
        context(&second[0]) + 1 + context(&second[2]) + 1
    );
    assert_eq!(
        stats.context_tokens,
        (0..3).map(|i| context(&second[i])).sum::<u64>()
    );
}

//! Multi-turn episodes end to end: a scripted policy, the real wasm tools, observations fed back,
//! the trajectory recorded and golden-tested (set `BLESS=1` to rewrite the golden file).

use crate::common::repo;
use serde_json::json;
use std::sync::Arc;
use toolenv::chat::Role;
use toolenv::policy::{Policy, PolicyError, PolicyTurn, ScriptedPolicy, TurnRequest, TurnTokens};
use toolenv::rollout::{EpisodeTask, PromptStyle, Roller, RolloutConfig, StopReason, Trajectory};
use toolenv::Registry;

fn roller(style: PromptStyle) -> Roller {
    let registry =
        Registry::load(&repo().join("env/config.toml")).unwrap_or_else(|e| panic!("{e}"));
    Roller::new(
        Arc::new(registry),
        RolloutConfig {
            style,
            ..RolloutConfig::default()
        },
    )
}

fn task() -> EpisodeTask {
    EpisodeTask {
        id: "golden-1".into(),
        question: "Store 6*7 as x, then tell me x in feet if it is metres.".into(),
        expected_answer: Some("137.795 ft".into()),
        reference_turns: vec![],
    }
}

const TURNS: [&str; 3] = [
    "<think> compute and store </think>\n<tool_call>\n{\"name\": \"calculator\", \"parameters\": {\"expression\": \"6*7\"}}\n{\"name\": \"kv_store\", \"parameters\": {\"op\": \"set\", \"key\": \"x\", \"value\": 42}}\n{\"name\": \"kv_store\", \"parameters\": {\"op\": \"get\", \"key\": \"x\"}}\nnot json at all\n{\"name\": \"nope\", \"parameters\": {}}\n</tool_call>",
    "<think> convert </think>\n<tool_call>\n{\"name\": \"unit_convert\", \"parameters\": {\"value\": 42, \"from\": \"m\", \"to\": \"ft\"}}\n</tool_call>",
    "<think> done </think>\n<response> 137.795 ft </response>",
];

/// Timings vary run to run, and fuel with the compiler that built the tools; everything else is
/// deterministic.
fn without_timings(mut t: Trajectory) -> serde_json::Value {
    t.policy_ms = 0.0;
    t.tools_ms = 0.0;
    t.total_ms = 0.0;
    for turn in &mut t.turns {
        turn.policy_ms = 0.0;
        turn.tools_ms = 0.0;
        for c in &mut turn.calls {
            assert_eq!(
                c.fuel > 0,
                c.result.is_some(),
                "only calls that ran use fuel"
            );
            c.elapsed_us = 0;
            c.fuel = 0;
        }
    }
    serde_json::to_value(&t).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_episode_runs_real_tools_and_matches_the_golden_file() {
    let roller = roller(PromptStyle::Chat);
    let policy = ScriptedPolicy::new(TURNS.iter().map(|s| s.to_string()).collect());
    let t = roller.run(&policy, &task(), 0, 7).await.unwrap();

    assert_eq!(t.stop, StopReason::Response);
    assert_eq!(t.turns.len(), 3);
    let first = &t.turns[0];
    assert_eq!(first.calls.len(), 5);
    assert_eq!(first.calls[0].result, Some(json!({"value": 42})));
    // The stateful calls of a turn run in the order written: the get sees the set.
    assert_eq!(
        first.calls[2].result,
        Some(json!({"key": "x", "value": 42}))
    );
    assert_eq!(first.calls[3].error.as_ref().unwrap().kind, "parse");
    assert_eq!(first.calls[4].error.as_ref().unwrap().kind, "unknown_tool");
    let obs = first.observation.as_deref().unwrap();
    assert!(
        obs.starts_with("<obs> [{\"name\": \"calculator\", \"results\": {\"value\": 42}}"),
        "{obs}"
    );
    assert!(obs.contains("unknown tool `nope`"), "{obs}");
    assert!(t.turns[1].calls[0].result.as_ref().unwrap()["text"]
        .as_str()
        .unwrap()
        .contains("ft"));
    assert_eq!(t.final_response.as_deref(), Some("137.795 ft"));
    assert_eq!(
        t.calls().count(),
        5,
        "four calls and the unknown tool; the parse error is not a call"
    );

    let got = without_timings(t);
    let path = repo().join("tests/all/golden/trajectory.json");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("golden file (run with BLESS=1 to create it)"),
    )
    .unwrap();
    assert_eq!(
        got, want,
        "trajectory changed; if intended, rerun with BLESS=1 and review the diff"
    );
}

/// Records what it was shown, and answers with tokens like a local policy.
struct Recorder {
    seen: std::sync::Mutex<Vec<Vec<toolenv::chat::Message>>>,
}

impl Policy for Recorder {
    fn name(&self) -> String {
        "recorder".into()
    }
    async fn next_turn(&self, request: TurnRequest<'_>) -> Result<PolicyTurn, PolicyError> {
        let mut seen = self.seen.lock().unwrap();
        seen.push(request.messages.to_vec());
        let turn = seen.len();
        let text = if turn == 1 { TURNS[1] } else { TURNS[2] };
        Ok(PolicyTurn {
            text: text.to_string(),
            tool_calls: Vec::new(),
            tokens: Some(TurnTokens {
                context: vec![100 + turn as u32; 3],
                generated: vec![turn as u32; 2],
                logprobs: vec![-0.5; 2],
                restart: false,
            }),
            ..PolicyTurn::default()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_styles_and_token_masks() {
    for style in [PromptStyle::Chat, PromptStyle::Paper] {
        let roller = roller(style);
        let policy = Recorder {
            seen: Default::default(),
        };
        let t = roller.run(&policy, &task(), 3, 0).await.unwrap();
        let seen = policy.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0][0].role, Role::System);
        assert!(seen[0][0].content.contains("Name: kv_store"));
        let second = &seen[1];
        match style {
            PromptStyle::Chat => {
                assert_eq!(second.len(), 4);
                assert_eq!(second[2].role, Role::Assistant);
                assert!(second[3]
                    .content
                    .starts_with("<obs> [{\"name\": \"unit_convert\""));
            }
            PromptStyle::Paper => {
                assert_eq!(second.len(), 2);
                let history = &second[1].content;
                assert!(
                    history.starts_with("**Dialogue Records History**\n<user> Store 6*7"),
                    "{history}"
                );
                assert!(
                    history.contains("</tool_call>\n<obs> [{\"name\": \"unit_convert\""),
                    "{history}"
                );
            }
        }
        let seqs = t.token_sequences();
        let expect_seqs = if style == PromptStyle::Chat { 1 } else { 2 };
        assert_eq!(seqs.len(), expect_seqs, "{style:?}");
        let all_mask: Vec<u8> = seqs.iter().flat_map(|s| s.mask.clone()).collect();
        assert_eq!(all_mask, [0, 0, 0, 1, 1, 0, 0, 0, 1, 1]);
        let ids: Vec<u32> = seqs.iter().flat_map(|s| s.ids.clone()).collect();
        assert_eq!(ids, [101, 101, 101, 1, 1, 102, 102, 102, 2, 2]);
        assert!(seqs
            .iter()
            .flat_map(|s| s.mask.iter().zip(&s.logprobs))
            .all(|(m, lp)| (*m == 1) == (*lp != 0.0)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_end_episodes() {
    let looping = ScriptedPolicy::new(vec![TURNS[1].to_string(); 10]);
    let t = roller(PromptStyle::Chat)
        .run(&looping, &task(), 0, 0)
        .await
        .unwrap();
    assert_eq!(t.stop, StopReason::MaxTurns);
    assert_eq!(t.turns.len(), 6);

    let mut tight = RolloutConfig {
        max_episode_tokens: 40,
        ..RolloutConfig::default()
    };
    tight.max_turns = 10;
    let registry = Registry::load(&repo().join("env/config.toml")).unwrap();
    let t = Roller::new(Arc::new(registry), tight)
        .run(&looping, &task(), 0, 0)
        .await
        .unwrap();
    assert_eq!(t.stop, StopReason::TokenBudget);
    assert!(t.turns.len() < 4, "{}", t.turns.len());

    let silent = ScriptedPolicy::new(vec!["<think> hmm </think>".to_string()]);
    let t = roller(PromptStyle::Chat)
        .run(&silent, &task(), 0, 0)
        .await
        .unwrap();
    assert_eq!(t.stop, StopReason::NoAction);

    let short = ScriptedPolicy::new(vec![TURNS[1].to_string()]);
    let e = roller(PromptStyle::Chat)
        .run(&short, &task(), 0, 0)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no turn 1"), "{e}");
}

/// Tool calls run on the blocking pool; file access inside a call must not need a second
/// blocking thread (it once did, and a pool of one thread deadlocked on the first kv_store call).
#[test]
fn file_tools_work_with_a_single_blocking_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let roller = roller(PromptStyle::Chat);
    let policy = ScriptedPolicy::new(TURNS.iter().map(|s| s.to_string()).collect());
    let t = runtime
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(20),
                roller.run(&policy, &task(), 0, 7),
            )
            .await
        })
        .expect("the episode deadlocked")
        .unwrap();
    assert_eq!(
        t.turns[0].calls[2].result,
        Some(json!({"key": "x", "value": 42}))
    );
}

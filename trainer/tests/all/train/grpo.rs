//! GRPO: the math against `tests/reference/grpo_reference.py`, the shared-prefix forward's
//! gradients against the unshared computation, masked tokens' zero gradient, and a real
//! two-step run (tiny random model, real tools, real tokenizer) with checkpoint resume.

use std::path::{Path, PathBuf};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use trainer::train::grpo::{self, Objective, Schedule};
use trainer::train::update::{self, Seq};
use trainer::{Architecture, Model, ModelConfig};

use crate::common::{read_json, repo_root, smollm2};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn math_matches_the_reference_script() {
    let r = read_json("grpo_reference.json");
    for case in r["advantages"].as_array().unwrap() {
        let rewards: Vec<f64> = serde_json::from_value(case["rewards"].clone()).unwrap();
        let want: Vec<f64> = serde_json::from_value(case["advantages"].clone()).unwrap();
        let got = grpo::group_advantages(&rewards, case["eps"].as_f64().unwrap());
        assert_eq!(got.advantages.len(), want.len());
        for (g, w) in got.advantages.iter().zip(&want) {
            assert!(close(*g, *w, 1e-12), "{rewards:?}: {g} vs {w}");
        }
        assert_eq!(got.zero_spread, want.iter().all(|&a| a == 0.0));
    }
    for case in r["step_advantages"].as_array().unwrap() {
        let rewards: Vec<f64> = serde_json::from_value(case["rewards"].clone()).unwrap();
        let want: Vec<Vec<f64>> = serde_json::from_value(case["advantages"].clone()).unwrap();
        let scale: grpo::RewardScale = serde_json::from_value(case["scale"].clone()).unwrap();
        let got = grpo::step_advantages(
            &rewards,
            case["group_size"].as_u64().unwrap() as usize,
            scale,
            case["eps"].as_f64().unwrap(),
        );
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.advantages.len(), w.len());
            for (a, b) in g.advantages.iter().zip(w) {
                assert!(close(*a, *b, 1e-12), "{scale:?}: {a} vs {b}");
            }
            assert_eq!(g.zero_spread, w.iter().all(|&a| a == 0.0));
        }
    }
    let adv: Vec<f64> = serde_json::from_value(r["completion_advantages"].clone()).unwrap();
    let tokens = r["tokens"].as_array().unwrap();
    for case in r["loss"].as_array().unwrap() {
        let o = Objective {
            clip_low: case["clip_low"].as_f64().unwrap(),
            clip_high: case["clip_high"].as_f64().unwrap(),
            kl_coef: case["kl_coef"].as_f64().unwrap(),
        };
        let terms: Vec<_> = tokens
            .iter()
            .map(|t| {
                grpo::token_term(
                    &o,
                    t["new"].as_f64().unwrap(),
                    t["old"].as_f64().unwrap(),
                    t["ref"].as_f64(),
                    adv[t["completion"].as_u64().unwrap() as usize],
                )
            })
            .collect();
        let loss = grpo::batch_loss(&terms, o.kl_coef);
        assert!(close(loss, case["loss"].as_f64().unwrap(), 1e-12), "{case}");
        let kl = terms.iter().map(|t| t.kl).sum::<f64>() / terms.len() as f64;
        assert!(close(kl, case["kl_mean"].as_f64().unwrap(), 1e-12));
        let clipped: Vec<bool> = serde_json::from_value(case["clipped"].clone()).unwrap();
        assert_eq!(terms.iter().map(|t| t.clipped).collect::<Vec<_>>(), clipped);
    }
    for case in r["lr"].as_array().unwrap() {
        let f = |s| {
            grpo::learning_rate(
                case["step"].as_u64().unwrap(),
                case["total"].as_u64().unwrap(),
                case["warmup"].as_u64().unwrap(),
                case["peak"].as_f64().unwrap(),
                case["min_ratio"].as_f64().unwrap(),
                s,
            )
        };
        assert!(close(
            f(Schedule::Cosine),
            case["cosine"].as_f64().unwrap(),
            1e-12
        ));
        assert!(close(
            f(Schedule::Constant),
            case["constant"].as_f64().unwrap(),
            1e-12
        ));
    }
    for case in r["clip"].as_array().unwrap() {
        let got = grpo::clip_scale(
            case["norm"].as_f64().unwrap(),
            case["max"].as_f64().unwrap(),
        );
        assert!(close(got, case["scale"].as_f64().unwrap(), 1e-15));
    }
}

fn tiny_model(seed: u64) -> Model {
    Model::random(
        ModelConfig::tiny(Architecture::Llama),
        DType::F64,
        &Device::Cpu,
        seed,
    )
    .unwrap()
}

/// Three sequences sharing a 5-token prefix, with different lengths and masks.
fn sequences() -> Vec<Seq> {
    let make = |ids: Vec<u32>, first_target: usize, advantage: f64| Seq {
        mask: (0..ids.len())
            .map(|i| u8::from(i >= first_target))
            .collect(),
        old_logprobs: vec![-1.5; ids.len()],
        ids,
        advantage,
        group: 0,
    };
    vec![
        make(vec![1, 5, 9, 2, 7, 3, 3, 11, 30], 6, 1.0),
        make(vec![1, 5, 9, 2, 7, 20, 4], 5, -0.5),
        make(vec![1, 5, 9, 2, 7, 8, 12, 13, 14, 15, 6], 7, 0.25),
    ]
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Every weight's gradient in `shared` equals the one in `unshared` to 1e-9 (relative to its
/// largest entry).
fn assert_same_gradients(model: &Model, shared: &GradStore, unshared: &GradStore) {
    let data = model.varmap().data().lock().unwrap();
    for (name, var) in data.iter() {
        let a = shared.get(var.as_tensor()).expect("shared gradient");
        let b = unshared.get(var.as_tensor()).expect("unshared gradient");
        let diff = max_abs(&(a - b).unwrap());
        assert!(diff <= 1e-9 * (1.0 + max_abs(b)), "{name}: {diff}");
    }
}

#[test]
fn shared_prefix_gradients_equal_the_unshared_computation() {
    let model = tiny_model(3);
    let seqs = sequences();
    let batch: Vec<&Seq> = seqs.iter().collect();
    assert_eq!(update::shared_prefix(&batch), 5);
    let weights: Vec<Vec<f64>> = seqs
        .iter()
        .map(|s| (0..s.ids.len()).map(|i| 0.1 * (i as f64 + 1.0)).collect())
        .collect();

    // Shared: one prefix, three suffixes.
    let out = update::batch_logprobs(&model, &batch).unwrap();
    let (_, w) = out.logprobs.dims2().unwrap();
    let mut shared_loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
    let mut shared_values = Vec::new();
    for (i, s) in seqs.iter().enumerate() {
        for j in 0..s.ids.len() - out.prefix {
            let lp = out.logprobs.get(i).unwrap().get(j).unwrap();
            shared_values.push(lp.to_scalar::<f64>().unwrap());
            shared_loss = (shared_loss + (lp * weights[i][out.prefix + j]).unwrap()).unwrap();
        }
    }
    assert!(w >= 6);
    let shared = shared_loss.backward().unwrap();

    // Unshared: each whole sequence on its own.
    let mut loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
    let mut values = Vec::new();
    for (i, s) in seqs.iter().enumerate() {
        let ids = Tensor::new(s.ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let lp = model
            .token_logprobs(&ids, None, 4)
            .unwrap()
            .squeeze(0)
            .unwrap();
        // token_logprobs[k] is log p(ids[k+1]); position p of the sequence is entry p-1.
        for (pos, w) in weights[i].iter().enumerate().skip(out.prefix) {
            let v = lp.get(pos - 1).unwrap();
            values.push(v.to_scalar::<f64>().unwrap());
            loss = (loss + (v * *w).unwrap()).unwrap();
        }
    }
    let unshared = loss.backward().unwrap();
    for (a, b) in shared_values.iter().zip(&values) {
        assert!((a - b).abs() < 1e-10, "{a} vs {b}");
    }
    assert_same_gradients(&model, &shared, &unshared);
}

/// The gradient of `Σ weight(i, pos) · log p(token pos of sequence i)` over the positions after
/// the `p`-token prefix, computed as an update does: the prefix run once, its activations cut
/// into leaves, two micro-batches (sequences 0 and 1, then 2), the leaves' gradients summed and
/// pulled back through the prefix.
fn micro_batched_gradient(
    model: &Model,
    seqs: &[Seq],
    p: usize,
    weight: impl Fn(usize, usize) -> f64,
) -> GradStore {
    let prefix = model.prefix_forward(&seqs[0].ids[..p]).unwrap();
    let (leaves, vars) = prefix.leaves().unwrap();
    let mut leaf_grads: Vec<Option<Tensor>> = vec![None; vars.len()];
    let mut total: Option<GradStore> = None;
    for rows in [vec![0usize, 1], vec![2]] {
        let suffixes: Vec<Vec<u32>> = rows.iter().map(|&i| seqs[i].ids[p..].to_vec()).collect();
        let lp = model.suffix_logprobs(&leaves, &suffixes, 4).unwrap();
        let mut loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
        for (r, &i) in rows.iter().enumerate() {
            for j in 0..seqs[i].ids.len() - p {
                let v = lp.get(r).unwrap().get(j).unwrap();
                loss = (loss + (v * weight(i, p + j)).unwrap()).unwrap();
            }
        }
        update::micro_batch_backward(&loss, &vars, &mut leaf_grads, &mut total).unwrap();
    }
    update::pull_back(&prefix, &leaf_grads, &mut total).unwrap();
    total.expect("the loss reached some weight")
}

/// The same gradient with every sequence run whole, on its own.
fn whole_sequence_gradient(
    model: &Model,
    seqs: &[Seq],
    p: usize,
    weight: impl Fn(usize, usize) -> f64,
) -> GradStore {
    let mut loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
    for (i, s) in seqs.iter().enumerate() {
        let ids = Tensor::new(s.ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let lp = model
            .token_logprobs(&ids, None, 4)
            .unwrap()
            .squeeze(0)
            .unwrap();
        for pos in p..s.ids.len() {
            let v = lp.get(pos - 1).unwrap();
            loss = (loss + (v * weight(i, pos)).unwrap()).unwrap();
        }
    }
    loss.backward().unwrap()
}

fn position_weight(i: usize, pos: usize) -> f64 {
    0.1 * (pos as f64 + 1.0) - 0.05 * i as f64
}

/// The prefix run once per update and its activations cut into leaves for each micro-batch: the
/// leaves' gradients summed and pulled back through the prefix give the weights exactly the
/// gradient of running every sequence whole.
#[test]
fn a_prefix_shared_across_micro_batches_gives_the_unshared_gradient() {
    let model = tiny_model(3);
    let seqs = sequences();
    let shared = micro_batched_gradient(&model, &seqs, 5, position_weight);
    let unshared = whole_sequence_gradient(&model, &seqs, 5, position_weight);
    assert_same_gradients(&model, &shared, &unshared);
}

/// A group whose episodes also share their first sampled tokens: what a micro-batch's rows share
/// beyond the update's prefix (target tokens included) runs once, and its log-probabilities,
/// given to every row, carry exactly the gradient of running each sequence whole.
#[test]
fn a_segment_shared_within_a_micro_batch_gives_the_unshared_gradient() {
    let make = |ids: Vec<u32>, first_target: usize| Seq {
        mask: (0..ids.len())
            .map(|i| u8::from(i >= first_target))
            .collect(),
        old_logprobs: vec![-1.5; ids.len()],
        ids,
        advantage: 1.0,
        group: 0,
    };
    let seqs = vec![
        make(vec![1, 5, 9, 2, 7, 3, 3, 11, 30], 4),
        make(vec![1, 5, 9, 2, 7, 3, 3, 12, 13, 14], 4),
        make(vec![1, 5, 9, 2, 7, 3, 4, 8], 4),
    ];
    let all: Vec<&Seq> = seqs.iter().collect();
    let p = update::shared_prefix(&all);
    assert_eq!(p, 4, "the update's prefix ends before the first target");
    // Rows 0 and 1 share three more tokens, all targets; row 2 alone shares nothing more.
    let pair = [&seqs[0], &seqs[1]];
    assert_eq!(update::segment_end(&pair, p), 7);
    assert_eq!(update::segment_end(&[&seqs[2]], p), p);
    assert_eq!(update::segment_end(&all, p), 6);
    // The same tokens sampled by one episode and given to another are not shared.
    let given = make(vec![1, 5, 9, 2, 7, 3, 3, 11, 30], 6);
    assert_eq!(update::segment_end(&[&seqs[0], &given], p), p);
    // Every row keeps a token of its own.
    let prefix_of_0 = make(seqs[0].ids[..8].to_vec(), 4);
    assert_eq!(update::segment_end(&[&seqs[0], &prefix_of_0], p), 7);

    let model = tiny_model(3);
    let weight = |i: usize, pos: usize| match seqs[i].mask[pos] {
        1 => position_weight(i, pos),
        _ => 0.0,
    };
    let prefix = model.prefix_forward(&seqs[0].ids[..p]).unwrap();
    let (leaves, vars) = prefix.leaves().unwrap();
    let mut leaf_grads: Vec<Option<Tensor>> = vec![None; vars.len()];
    let mut total: Option<GradStore> = None;
    for rows in [vec![0usize, 1], vec![2]] {
        let batch: Vec<&Seq> = rows.iter().map(|&i| &seqs[i]).collect();
        let end = update::segment_end(&batch, p);
        let lp = update::target_logprobs(&model, &leaves, p, &batch, end).unwrap();
        let positions: Vec<(usize, usize)> = rows
            .iter()
            .flat_map(|&i| (p..seqs[i].ids.len()).map(move |pos| (i, pos)))
            .filter(|&(i, pos)| seqs[i].mask[pos] == 1)
            .collect();
        assert_eq!(lp.dims(), [positions.len()]);
        let mut loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
        for (k, &(i, pos)) in positions.iter().enumerate() {
            let v = lp.get(k).unwrap();
            loss = (loss + (v * weight(i, pos)).unwrap()).unwrap();
        }
        update::micro_batch_backward(&loss, &vars, &mut leaf_grads, &mut total).unwrap();
    }
    update::pull_back(&prefix, &leaf_grads, &mut total).unwrap();
    let shared = total.expect("the loss reached some weight");
    let unshared = whole_sequence_gradient(&model, &seqs, p, weight);
    assert_same_gradients(&model, &shared, &unshared);
}

/// GRPO's micro-batches hold one group each (so a group's shared beginning can run once), shortest
/// first within the budget; SFT's run sequences of any group together, shortest first.
#[test]
fn micro_batches_keep_groups_apart_only_when_asked() {
    // Two tokens of prompt, then tokens of the sequence's own: nothing shared beyond the prefix.
    let seq = |len: usize, group: usize| Seq {
        ids: [vec![1, 1], vec![100 + len as u32; len - 2]].concat(),
        mask: vec![1; len],
        old_logprobs: vec![0.0; len],
        advantage: 0.0,
        group,
    };
    let seqs: Vec<Seq> = [(30, 1), (10, 0), (20, 1), (12, 0), (25, 0), (11, 1)]
        .iter()
        .map(|&(len, group)| seq(len, group))
        .collect();
    let shape = |batches: Vec<Vec<&Seq>>| -> Vec<Vec<(usize, usize)>> {
        batches
            .iter()
            .map(|b| b.iter().map(|s| (s.ids.len(), s.group)).collect())
            .collect()
    };
    let batching = |by_group| update::MicroBatching {
        max_sequences: 3,
        max_tokens: 1000,
        max_cells: 100_000,
        by_group,
    };
    assert_eq!(
        shape(update::micro_batches(&seqs, batching(true), 2)),
        [
            vec![(10, 0), (12, 0), (25, 0)],
            vec![(11, 1), (20, 1), (30, 1)]
        ]
    );
    assert_eq!(
        shape(update::micro_batches(&seqs, batching(false), 2)),
        [
            vec![(10, 0), (11, 1), (12, 0)],
            vec![(20, 1), (25, 0), (30, 1)]
        ]
    );
    // The token budget still splits a group: 3 rows of 28 after the prefix are 84 tokens.
    let tight = update::MicroBatching {
        max_tokens: 60,
        ..batching(true)
    };
    assert_eq!(
        shape(update::micro_batches(&seqs, tight, 2)),
        [
            vec![(10, 0), (12, 0)],
            vec![(25, 0)],
            vec![(11, 1), (20, 1)],
            vec![(30, 1)]
        ]
    );
    // A segment the rows share runs once, so it counts once: 2 + 5 + 5 tokens fit where two
    // rows of 10 after the prefix would not.
    let twins = |tail: u32| Seq {
        ids: [vec![1, 1], vec![7; 5], vec![tail; 5]].concat(),
        ..seq(12, 0)
    };
    let pair = [twins(8), twins(9)];
    let budget = update::MicroBatching {
        max_tokens: 15,
        ..batching(true)
    };
    let refs: Vec<&Seq> = pair.iter().collect();
    assert_eq!(update::pass_cost(&refs, 2, 7), (15, 15 * 12));
    assert_eq!(update::micro_batches(&pair, budget, 2).len(), 1);
    assert_eq!(
        update::micro_batches(
            &pair,
            update::MicroBatching {
                by_group: false,
                ..budget
            },
            2
        )
        .len(),
        2
    );
}

/// With the bottom layers frozen, the layers above get exactly the gradient of full training
/// and the frozen ones none, through the shared prefix and micro-batches as an update runs.
#[test]
fn frozen_bottom_layers_get_no_gradient_and_the_rest_the_full_one() {
    let full = tiny_model(3);
    let mut frozen = tiny_model(3);
    let layers = full.config().num_layers;
    assert!(
        layers >= 2,
        "the tiny model has layers to freeze and to train"
    );
    frozen.freeze_bottom_layers(1).unwrap();
    assert!(tiny_model(3).freeze_bottom_layers(layers + 1).is_err());
    let seqs = sequences();
    let want = whole_sequence_gradient(&full, &seqs, 5, position_weight);
    let got = micro_batched_gradient(&frozen, &seqs, 5, position_weight);

    let full_vars = full.varmap().data().lock().unwrap();
    let tied = full.config().tie_word_embeddings;
    let mut checked = 0;
    for (name, var) in frozen.varmap().data().lock().unwrap().iter() {
        let g = got.get(var.as_tensor());
        if name.starts_with("model.layers.0.") {
            assert!(g.is_none(), "{name} is frozen but got a gradient");
        } else if name == "model.embed_tokens.weight" && tied {
            // Tied to the output projection: it learns through the output side only.
            assert!(g.is_some(), "{name}: the output side still learns");
        } else if name != "model.embed_tokens.weight" {
            let a = g.unwrap_or_else(|| panic!("{name} learns but got no gradient"));
            let b = want
                .get(full_vars[name].as_tensor())
                .expect("full gradient");
            let diff = max_abs(&(a - b).unwrap());
            assert!(diff <= 1e-9 * (1.0 + max_abs(b)), "{name}: {diff}");
            checked += 1;
        }
    }
    assert!(
        checked > 9,
        "every weight of the layers above was compared ({checked})"
    );
}

/// Training computes log-probabilities only where a token is learnt: the same values, and the
/// same gradients of the weights through either loss, as computing them at every position and
/// picking the targets.
#[test]
fn log_probabilities_at_the_targets_equal_those_picked_from_every_position() {
    let model = tiny_model(3);
    let seqs = sequences();
    let batch: Vec<&Seq> = seqs.iter().collect();
    let p = update::shared_prefix(&batch);
    let suffixes: Vec<Vec<u32>> = seqs.iter().map(|s| s.ids[p..].to_vec()).collect();
    let w = suffixes.iter().map(Vec::len).max().unwrap();
    let at = update::target_indices(&batch, p, w);
    let total: usize = seqs.iter().map(Seq::targets).sum();
    assert_eq!(at.len(), total);
    assert!(total < seqs.len() * w, "some positions are not targets");

    let prefix = model.prefix_forward(&seqs[0].ids[..p]).unwrap();
    let index = Tensor::new(at.as_slice(), &Device::Cpu).unwrap();
    let picked = model
        .suffix_logprobs(&prefix, &suffixes, 4)
        .unwrap()
        .flatten_all()
        .unwrap()
        .index_select(&index, 0)
        .unwrap();
    let direct = model
        .suffix_logprobs_at(&prefix, &suffixes, &at, 4)
        .unwrap();
    let (a, b): (Vec<f64>, Vec<f64>) = (picked.to_vec1().unwrap(), direct.to_vec1().unwrap());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-12, "{x} vs {y}");
    }

    let o = Objective {
        clip_low: 0.2,
        clip_high: 0.2,
        kl_coef: 0.1,
    };
    let reference = (direct.detach() - 0.2).unwrap();
    let loss = |lp: &Tensor| {
        let (l, terms) = update::grpo_loss(&o, &batch, p, lp, Some(&reference), total).unwrap();
        assert_eq!(terms.len(), total);
        l.backward().unwrap()
    };
    assert_same_gradients(&model, &loss(&picked), &loss(&direct));
    let (sft, nll) = update::sft_loss(&direct, total).unwrap();
    assert!((nll + b.iter().sum::<f64>()).abs() < 1e-9);
    assert_same_gradients(
        &model,
        &sft.backward().unwrap(),
        &update::sft_loss(&picked, total)
            .unwrap()
            .0
            .backward()
            .unwrap(),
    );
    // A loss given log-probabilities that are not one per target token is an error.
    let wrong = direct.narrow(0, 0, total - 1).unwrap();
    assert!(update::grpo_loss(&o, &batch, p, &wrong, None, total).is_err());
}

/// A tiny random model with SmolLM2's tokenizer, exported as a Hugging Face directory.
fn tiny_hf_dir(dir: &Path) -> PathBuf {
    let tokenizer = &smollm2().tokenizer;
    let config = ModelConfig {
        vocab_size: 49152,
        hidden_size: 32,
        intermediate_size: 48,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        max_position_embeddings: 8192,
        tie_word_embeddings: true,
        ..ModelConfig::tiny(Architecture::Llama)
    };
    let model = Model::random(config, DType::F32, &Device::Cpu, 11).unwrap();
    let out = dir.join("tiny");
    trainer::train::checkpoint::export_hf(&out, &model, tokenizer).unwrap();
    out
}

fn run_config(dir: &Path, model: &Path, steps: u64) -> trainer::train::TrainConfig {
    let env = repo_root().join("env/config.toml");
    let text = std::fs::read_to_string(&env).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    for t in [
        "model",
        "data",
        "rollout",
        "optimizer",
        "grpo",
        "eval",
        "checkpoints",
        "train",
    ] {
        table.remove(t);
    }
    let extra = format!(
        r#"
[model]
path = "{model}"
[data]
train = "tasks-train"
limit = 8
[rollout]
group_size = 2
max_new_tokens = 6
max_turns = 2
max_episode_tokens = 12
[optimizer]
lr = 1e-2
warmup_steps = 1
schedule = "cosine"
[grpo]
steps = {steps}
prompts_per_step = 2
micro_batch = 3
kl_coef = 0.05
[eval]
dataset = "tasks"
limit = 2
every = 0
at_start = false
[checkpoints]
every = 2
keep = 1
[train]
seed = 5
out = "{out}"
"#,
        model = model.display(),
        out = dir.join("run").display()
    );
    // The file moves out of env/: make the tools' paths absolute.
    let env_dir = repo_root().join("env");
    if let Some(tools) = table.get_mut("tools").and_then(|t| t.as_array_mut()) {
        for tool in tools.iter_mut().filter_map(|t| t.as_table_mut()) {
            for key in ["module", "schema", "data_dir"] {
                if let Some(v) = tool.get(key).and_then(|v| v.as_str()) {
                    let abs = env_dir.join(v).display().to_string();
                    tool.insert(key.to_string(), toml::Value::String(abs));
                }
            }
        }
    }
    let body = toml::to_string(&table).unwrap() + &extra;
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    trainer::train::TrainConfig::read(&path).unwrap()
}

fn weights(model: &Model) -> Vec<f32> {
    trainer::train::checkpoint::named_vars(model)
        .iter()
        .flat_map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn reward_of_length() -> trainer::train::grpo_run::RewardOverride {
    // A random model earns no real reward; this one varies within a group, so every step
    // has a gradient.
    Box::new(|s| {
        s.sequences
            .iter()
            .map(|q| {
                q.ids
                    .iter()
                    .rev()
                    .take(3)
                    .map(|&t| (t % 7) as f64)
                    .sum::<f64>()
            })
            .sum()
    })
}

fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            // Timings differ from run to run; everything else must not.
            v.as_object_mut().unwrap().remove("time_s");
            v.as_object_mut().unwrap().remove("train_tokens_per_s");
            v
        })
        .collect()
}

#[test]
fn two_steps_change_the_weights_and_resume_reproduces_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tiny_hf_dir(tmp.path());
    let opts = trainer::train::RunOptions::default();

    // Two steps by hand: finite loss, a gradient, most weights moved.
    let straight = tmp.path().join("straight");
    std::fs::create_dir_all(&straight).unwrap();
    let mut run =
        trainer::train::GrpoRun::new(run_config(&straight, &model_dir, 3), &opts).unwrap();
    run.set_reward_override(reward_of_length());
    let before = weights(run.model());
    for _ in 0..2 {
        let m = run.train_step().unwrap();
        assert!(m["loss"].as_f64().unwrap().is_finite());
        assert!(m["grad_norm"].as_f64().unwrap() > 0.0);
        assert!(m["tokens"]["trained"].as_u64().unwrap() > 0);
        // The shared prefix (system prompt) is computed once per micro-batch.
        assert!(m["tokens"]["forward"].as_u64() < m["tokens"]["forward_unshared"].as_u64());
    }
    let after = weights(run.model());
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(
        changed > before.len() / 2,
        "{changed} of {} changed",
        before.len()
    );
    assert!(after.iter().all(|w| w.is_finite()));
    drop(run);

    // Uninterrupted: three steps through `run`.
    let whole = tmp.path().join("whole");
    std::fs::create_dir_all(&whole).unwrap();
    let mut run = trainer::train::GrpoRun::new(run_config(&whole, &model_dir, 3), &opts).unwrap();
    run.set_reward_override(reward_of_length());
    run.run(false).unwrap();
    drop(run);

    // Interrupted after the checkpoint of step 2, then resumed to the end.
    let parts = tmp.path().join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let mut run = trainer::train::GrpoRun::new(run_config(&parts, &model_dir, 3), &opts).unwrap();
    run.set_reward_override(reward_of_length());
    for _ in 0..2 {
        let m = run.train_step().unwrap();
        trainer::train::grpo_run::append(&parts.join("run/metrics.jsonl"), &m).unwrap();
    }
    run.save_checkpoint().unwrap();
    drop(run);
    // A second run into the same directory without --resume is refused.
    let e = trainer::train::GrpoRun::new(run_config(&parts, &model_dir, 3), &opts)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("--resume"), "{e}");
    let again = trainer::train::RunOptions {
        resume: true,
        ..Default::default()
    };
    let mut run = trainer::train::GrpoRun::new(run_config(&parts, &model_dir, 3), &again).unwrap();
    run.set_reward_override(reward_of_length());
    assert_eq!(run.step(), 2);
    run.run(false).unwrap();

    let (a, b) = (metrics(&whole.join("run")), metrics(&parts.join("run")));
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
    assert!(whole.join("run/plots/training.png").is_file());
    let wa = trainer::load(&whole.join("run/model"), DType::F32, &Device::Cpu).unwrap();
    let wb = trainer::load(&parts.join("run/model"), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(weights(&wa.model), weights(&wb.model));
    assert_ne!(weights(&wa.model), before);
}

#[test]
fn a_missing_warm_start_is_trained_first_then_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tiny_hf_dir(tmp.path());
    let sft_out = tmp.path().join("sft");
    let config = |dir: &Path| {
        let mut c = run_config(dir, &model_dir, 1);
        c.grpo.start_from = Some(sft_out.join("model"));
        c.sft.out = sft_out.clone();
        c.sft.steps = 1;
        c.sft.batch_size = 2;
        c.sft.micro_batch = 2;
        c.sft.limit = Some(2);
        c
    };
    let opts = trainer::train::RunOptions::default();
    let first = tmp.path().join("first");
    std::fs::create_dir_all(&first).unwrap();
    let run = trainer::train::GrpoRun::new(config(&first), &opts).unwrap();
    // SFT ran (one step) and exported the warm start, and the run starts from that export.
    let sft_metrics = std::fs::read_to_string(sft_out.join("metrics.jsonl")).unwrap();
    assert_eq!(sft_metrics.lines().count(), 1);
    let warm = trainer::load(&sft_out.join("model"), DType::F32, &Device::Cpu).unwrap();
    let base = trainer::load(&model_dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(weights(run.model()), weights(&warm.model));
    assert_ne!(weights(&warm.model), weights(&base.model));
    drop(run);

    // The next run finds it and trains nothing: SFT's output is left as it was.
    let written = std::fs::metadata(sft_out.join("metrics.jsonl"))
        .unwrap()
        .modified()
        .unwrap();
    let second = tmp.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    let run = trainer::train::GrpoRun::new(config(&second), &opts).unwrap();
    assert_eq!(weights(run.model()), weights(&warm.model));
    let again = std::fs::metadata(sft_out.join("metrics.jsonl"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(written, again);
    assert!(
        trainer::train::sft::ensure_warm_start(&config(&second), false)
            .unwrap()
            .is_none()
    );

    // A missing start elsewhere is not the SFT export: it is an error naming it, not trained.
    let mut elsewhere = config(&second);
    elsewhere.grpo.start_from = Some(tmp.path().join("nowhere/model"));
    let e = trainer::train::GrpoRun::new(elsewhere, &opts)
        .err()
        .expect("missing start refused")
        .to_string();
    assert!(e.contains("nowhere/model"), "{e}");
}

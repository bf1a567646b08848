//! The batched sampler on SmolLM2: padding-invariance, seeds, stop conditions.

use trainer::{generate, FinishReason, Message, SamplingParams};

use crate::common::smollm2;

fn prompt(text: &str) -> Vec<u32> {
    let tok = &smollm2().tokenizer;
    let chat = tok
        .apply_chat_template(
            &[
                Message::new("system", "Be brief."),
                Message::new("user", text),
            ],
            true,
        )
        .unwrap();
    tok.encode(&chat, false).unwrap()
}

#[test]
fn a_kept_prefix_cache_changes_nothing() {
    use trainer::sample::sampler::{generate_rows, generate_rows_cached, Row};
    let loaded = smollm2();
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 6,
        ..SamplingParams::default()
    };
    let rows = |texts: &[&str]| -> Vec<Row> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Row {
                prompt: prompt(t),
                seed: 40 + i as u64,
                max_new_tokens: 6,
            })
            .collect()
    };
    let batches = [
        rows(&["Name a colour.", "Hi"]),
        rows(&["What is 2+2?", "Name a fruit.", "Hello there"]),
        rows(&["One more"]),
    ];
    let mut kept = None;
    for batch in &batches {
        let plain = generate_rows(&loaded.model, &loaded.tokenizer, batch, &params).unwrap();
        let cached =
            generate_rows_cached(&loaded.model, &loaded.tokenizer, batch, &params, &mut kept)
                .unwrap();
        assert!(kept.is_some());
        for (a, b) in plain.iter().zip(&cached) {
            assert_eq!(a.tokens, b.tokens);
            for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                assert!((x - y).abs() < 1e-3, "{x} vs {y}");
            }
        }
    }
}

#[test]
fn batched_greedy_equals_one_at_a_time() {
    let prompts = vec![
        prompt("Name a colour."),
        prompt("What is the capital of Italy? Answer in one word."),
        prompt("Hi"),
    ];
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 8,
        ..SamplingParams::default()
    };
    assert_batch_equals_alone(&prompts, &params);
}

/// Sampling `prompts` as one batch gives each row the tokens (and, to 1e-3, log-probabilities)
/// it gets alone.
fn assert_batch_equals_alone(prompts: &[Vec<u32>], params: &SamplingParams) {
    let loaded = smollm2();
    let batched = generate(&loaded.model, &loaded.tokenizer, prompts, params).unwrap();
    for (p, b) in prompts.iter().zip(&batched) {
        let alone = generate(
            &loaded.model,
            &loaded.tokenizer,
            std::slice::from_ref(p),
            params,
        )
        .unwrap();
        assert_eq!(alone[0].tokens, b.tokens);
        for (x, y) in alone[0].logprobs.iter().zip(&b.logprobs) {
            assert!((x - y).abs() < 1e-3, "logprob {x} alone vs {y} batched");
        }
    }
}

/// Both prefill paths, rows padded to one width (equal lengths) and rows prefilled one by one
/// then stacked (a long and a short prompt), give each row what it gets alone.
#[test]
fn padded_and_row_by_row_prefill_equal_one_at_a_time() {
    let long = "Here is a list of things to remember for the trip: passport, tickets, charger, \
                a warm coat, two books, the map of the old town, sunscreen, and the address of \
                the hotel near the station. Which item is for the cold?";
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 8,
        ..SamplingParams::default()
    };
    let equal = [prompt("Name a colour."), prompt("Name a fruit.")];
    assert_eq!(equal[0].len(), equal[1].len());
    let ragged = [prompt("Hi"), prompt(long)];
    assert!(ragged[1].len() > 2 * ragged[0].len());
    assert_batch_equals_alone(&equal, &params);
    assert_batch_equals_alone(&ragged, &params);
}

#[test]
fn seed_reproduces_sampling_and_logprobs_are_valid() {
    let loaded = smollm2();
    let prompts = vec![prompt("Tell me a story."); 2];
    let params = SamplingParams {
        temperature: 1.0,
        top_p: 0.95,
        top_k: 50,
        max_new_tokens: 10,
        seed: 7,
        ..SamplingParams::default()
    };
    let a = generate(&loaded.model, &loaded.tokenizer, &prompts, &params).unwrap();
    let b = generate(&loaded.model, &loaded.tokenizer, &prompts, &params).unwrap();
    assert_eq!(a, b);
    for g in &a {
        assert_eq!(g.tokens.len(), g.logprobs.len());
        assert!(g.logprobs.iter().all(|lp| lp.is_finite() && *lp <= 0.0));
    }
}

#[test]
fn stops_on_eos_and_on_stop_strings() {
    let loaded = smollm2();
    let eos = loaded.tokenizer.eos().unwrap().1;
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 40,
        stop_token_ids: vec![eos],
        ..SamplingParams::default()
    };
    let out = generate(
        &loaded.model,
        &loaded.tokenizer,
        &[prompt("Say hello.")],
        &params,
    )
    .unwrap();
    assert_eq!(out[0].finish, FinishReason::StopToken(eos), "{:?}", out[0]);
    assert_eq!(*out[0].tokens.last().unwrap(), eos);
    assert!(!out[0].text.contains("<|im_end|>"));

    // Stop on the second word of the greedy reply: the text is cut before it.
    let full = &out[0].text;
    let word = full.split_whitespace().nth(1).unwrap().to_string();
    let params = SamplingParams {
        stop_strings: vec![word.clone()],
        ..params
    };
    let out = generate(
        &loaded.model,
        &loaded.tokenizer,
        &[prompt("Say hello.")],
        &params,
    )
    .unwrap();
    assert_eq!(out[0].finish, FinishReason::StopString(word.clone()));
    assert!(!out[0].text.contains(&word));
    assert!(full.starts_with(&out[0].text));
}

#[test]
fn max_new_tokens_bounds_the_output() {
    let loaded = smollm2();
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 3,
        ..SamplingParams::default()
    };
    let out = generate(
        &loaded.model,
        &loaded.tokenizer,
        &[prompt("Count to ten.")],
        &params,
    )
    .unwrap();
    assert_eq!(out[0].tokens.len(), 3);
    assert_eq!(out[0].finish, FinishReason::Length);
}

/// Rows that finish early leave the decoding batch. The rows still decoding sample exactly what
/// they sample when no row leaves (the same bits: each row's arithmetic is row by row), the
/// leavers' tokens are the start of what they sample with a higher limit, and every row's kept
/// cache holds its prompt and all its tokens but the last.
#[test]
fn rows_that_finish_leave_the_batch_without_changing_the_others() {
    use trainer::sample::sampler::{generate_continuations, Continuation};
    let loaded = smollm2();
    let params = SamplingParams {
        temperature: 0.8,
        max_new_tokens: 10,
        ..SamplingParams::default()
    };
    let texts = ["Name a colour.", "Tell me a story.", "What is 2+2?", "Hi"];
    let batch = |limits: &[usize]| {
        let rows = texts
            .iter()
            .zip(limits)
            .enumerate()
            .map(|(i, (t, &limit))| Continuation {
                cache: None,
                fed: Vec::new(),
                new: prompt(t),
                seed: 7 + i as u64,
                max_new_tokens: limit,
            })
            .collect();
        generate_continuations(
            &loaded.model,
            &loaded.tokenizer,
            rows,
            &params,
            &mut None,
            true,
            limits.len(),
        )
        .unwrap()
    };
    let whole = batch(&[10, 10, 10, 10]);
    let early = batch(&[2, 3, 10, 10]);
    for (i, (a, b)) in whole.generations.iter().zip(&early.generations).enumerate() {
        let n = b.tokens.len();
        assert!(n > 0 && n <= a.tokens.len(), "row {i}");
        assert_eq!(a.tokens[..n], b.tokens[..], "row {i}");
        assert_eq!(a.logprobs[..n], b.logprobs[..], "row {i}");
        if i >= 2 {
            assert_eq!(a.tokens.len(), n, "row {i} kept its limit");
        }
        assert_eq!(
            early.caches[i].len(),
            prompt(texts[i]).len() + n - 1,
            "row {i}"
        );
    }
    assert_eq!(early.generations[0].tokens.len(), 2);
    assert_eq!(early.generations[1].tokens.len(), 3);
}

/// Decoding at most `max_batch` rows at once, rows that finish making room for the next chunk's,
/// samples what decoding each chunk by itself samples: the same tokens and log-probabilities to
/// the bit, and kept caches from which a next turn samples the same again.
#[test]
fn rows_joining_a_running_batch_sample_what_each_chunk_samples_alone() {
    use trainer::sample::sampler::{generate_continuations, Continuation, Continued};
    let loaded = smollm2();
    let params = SamplingParams {
        temperature: 0.8,
        max_new_tokens: 12,
        ..SamplingParams::default()
    };
    let texts = [
        "Name a colour.",
        "Tell me a story.",
        "What is 2+2?",
        "Hi",
        "Name a colour.",
        "Count to five.",
        "Why is the sky blue?",
    ];
    let limits = [3, 12, 2, 12, 5, 12, 7];
    let fresh: Vec<Continuation> = texts
        .iter()
        .zip(limits)
        .enumerate()
        .map(|(i, (t, limit))| Continuation {
            cache: None,
            fed: Vec::new(),
            new: prompt(t),
            seed: 11 + i as u64,
            max_new_tokens: limit,
        })
        .collect();
    let run = |rows: Vec<Continuation>, max_batch: usize| -> Continued {
        // The chunks one call at a time (max_batch = the chunk), or all in one call.
        let mut prefix = None;
        let mut all = Continued {
            generations: Vec::new(),
            caches: Vec::new(),
            prefilled: 0,
            cost: Default::default(),
        };
        let calls: Vec<Vec<Continuation>> = if max_batch == 0 {
            rows.chunks(3).map(<[Continuation]>::to_vec).collect()
        } else {
            vec![rows]
        };
        for rows in calls {
            let n = if max_batch == 0 {
                rows.len()
            } else {
                max_batch
            };
            let done = generate_continuations(
                &loaded.model,
                &loaded.tokenizer,
                rows,
                &params,
                &mut prefix,
                true,
                n,
            )
            .unwrap();
            all.generations.extend(done.generations);
            all.caches.extend(done.caches);
            all.prefilled += done.prefilled;
            all.cost.steps += done.cost.steps;
            all.cost.row_steps += done.cost.row_steps;
            all.cost.rebuilds += done.cost.rebuilds;
            all.cost.restacks += done.cost.restacks;
        }
        all
    };
    let next_turn = |first: &Continued| -> Vec<Continuation> {
        first
            .generations
            .iter()
            .zip(&first.caches)
            .zip(texts)
            .enumerate()
            .map(|(i, ((g, c), t))| {
                let mut fed = prompt(t);
                fed.extend(&g.tokens[..g.tokens.len() - 1]);
                let mut new = vec![*g.tokens.last().unwrap()];
                new.extend(prompt("And then?"));
                Continuation {
                    cache: Some(c.clone()),
                    fed,
                    new,
                    seed: 100 + i as u64,
                    max_new_tokens: 12 - i % 3 * 4,
                }
            })
            .collect()
    };
    let alone = run(fresh.clone(), 0);
    let joined = run(fresh, 3);
    for turn in 0..2 {
        let (alone, joined) = if turn == 0 {
            (alone.generations.clone(), joined.generations.clone())
        } else {
            (
                run(next_turn(&alone), 0).generations,
                run(next_turn(&joined), 3).generations,
            )
        };
        assert_eq!(alone.len(), texts.len());
        for (i, (a, j)) in alone.iter().zip(&joined).enumerate() {
            assert_eq!(a.tokens, j.tokens, "turn {turn}, row {i}");
            assert_eq!(a.logprobs, j.logprobs, "turn {turn}, row {i}");
        }
    }
    assert_eq!(alone.prefilled, joined.prefilled);
    // Every token but a row's first comes from a decoding step the row was in; rows joining a
    // running batch take fewer steps than the chunks one after the other.
    let tokens: usize = joined.generations.iter().map(|g| g.tokens.len() - 1).sum();
    assert!(joined.cost.row_steps >= tokens, "{:?}", joined.cost);
    assert!(
        joined.cost.steps < alone.cost.steps,
        "{:?} against {:?}",
        joined.cost,
        alone.cost
    );
    // Rows joined where rows had finished, the rows staying not copied.
    assert!(
        joined.cost.restacks < joined.cost.rebuilds,
        "{:?}",
        joined.cost
    );
    for (i, (a, j)) in alone.caches.iter().zip(&joined.caches).enumerate() {
        assert_eq!(a.len(), j.len(), "row {i}");
    }
}

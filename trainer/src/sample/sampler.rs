//! Batched text generation with a KV cache.
//!
//! Prompts are left-padded to a common length so every sequence's next token comes from the same
//! (last) position; padded keys are masked and position ids count only real tokens, so a padded
//! sequence generates exactly what it would alone. Sampling happens on the CPU from each row's
//! logits with a small seeded generator, so a seed reproduces a run bit for bit.

use std::collections::VecDeque;
use std::time::Instant;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::model::tokenizer::TextTokenizer;
use crate::model::{KvCache, Model, RestackRow};
use crate::rng::SplitMix64;

/// How to pick tokens and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p` (1 = off).
    pub top_p: f64,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Maximum number of tokens generated per sequence.
    pub max_new_tokens: usize,
    /// Generation of a sequence stops once its text contains one of these; the text is cut
    /// before it (the tokens that produced it are kept).
    pub stop_strings: Vec<String>,
    /// Token ids that end a sequence (usually the tokenizer's EOS); the id is kept in `tokens`.
    pub stop_token_ids: Vec<u32>,
    /// Seed of the sampling generator.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop_strings: Vec::new(),
            stop_token_ids: Vec::new(),
            seed: 0,
        }
    }
}

/// Why a sequence stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token id was generated.
    StopToken(u32),
    /// The text contained this stop string.
    StopString(String),
    /// `max_new_tokens` reached.
    Length,
}

/// One generated continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Decoded text of the new tokens (special tokens skipped, cut at a stop string).
    pub text: String,
    /// Every generated token id, including a final stop token.
    pub tokens: Vec<u32>,
    /// `log p(token)` of each generated token under the model's unmodified distribution (before
    /// temperature, top-k and top-p), the quantity a policy-gradient ratio needs.
    pub logprobs: Vec<f32>,
    /// Mean entropy (nats) of the unmodified next-token distribution over the generated tokens.
    pub mean_entropy: f64,
    /// Why generation ended.
    pub finish: FinishReason,
}

/// One prompt of a batch, with its own seed and token budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Prompt token ids (e.g. a rendered chat template).
    pub prompt: Vec<u32>,
    /// Seed of this row's sampling generator: a row samples the same tokens whatever else is in
    /// the batch (up to floating-point differences of batch shapes).
    pub seed: u64,
    /// Most tokens this row may generate (capped by `params.max_new_tokens`).
    pub max_new_tokens: usize,
}

/// Generates one continuation per prompt (token ids, e.g. a rendered chat template), all in one
/// batch. Row `i` samples with its own generator seeded from `params.seed` and `i`.
pub fn generate(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
) -> Result<Vec<Generation>> {
    let rows: Vec<Row> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Row {
            prompt: p.clone(),
            seed: row_seed(params.seed, i as u64),
            max_new_tokens: params.max_new_tokens,
        })
        .collect();
    generate_rows(model, tokenizer, &rows, params)
}

/// The seed of row `i` of a batch sampled with `seed` (row 0 keeps `seed`).
pub fn row_seed(seed: u64, i: u64) -> u64 {
    seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Generates one continuation per row, all in one batch.
///
/// The longest prefix shared by every prompt (typically the system prompt) is run once at batch
/// size 1 and its keys and values are shared by all rows (see [`generate_continuations`]).
/// Padded keys are masked and positions count only real tokens, so every row generates what it
/// would alone.
pub fn generate_rows(
    model: &Model,
    tokenizer: &TextTokenizer,
    rows: &[Row],
    params: &SamplingParams,
) -> Result<Vec<Generation>> {
    generate_rows_cached(model, tokenizer, rows, params, &mut None)
}

/// The keys and values of a token prefix at batch size 1, kept between batches.
#[derive(Clone)]
pub struct PrefixCache {
    tokens: Vec<u32>,
    cache: KvCache,
}

/// [`generate_rows`] that also reuses, and then keeps in `prefix`, the keys and values of the
/// shared prefix, so consecutive batches with the same system prompt compute it once. Valid
/// only while the model's weights stay unchanged: the caller owns that (one cache per batch of
/// rollouts).
pub fn generate_rows_cached(
    model: &Model,
    tokenizer: &TextTokenizer,
    rows: &[Row],
    params: &SamplingParams,
    prefix: &mut Option<PrefixCache>,
) -> Result<Vec<Generation>> {
    let rows: Vec<Continuation> = rows
        .iter()
        .map(|r| Continuation {
            cache: None,
            fed: Vec::new(),
            new: r.prompt.clone(),
            seed: r.seed,
            max_new_tokens: r.max_new_tokens,
        })
        .collect();
    let all = rows.len();
    Ok(generate_continuations(model, tokenizer, rows, params, prefix, false, all)?.generations)
}

/// A row that goes on from keys and values it already has: the next turn of an episode.
#[derive(Clone)]
pub struct Continuation {
    /// Batch-1 keys and values of every token the row has fed so far (positions `0..len`), or
    /// `None` for a fresh prompt.
    pub cache: Option<KvCache>,
    /// The tokens `cache` holds, in order (empty for a fresh prompt). Rows that have fed the
    /// same tokens and feed the same `new` ones (episodes that have sampled alike so far) are
    /// prefilled once, as a prefix cache would.
    pub fed: Vec<u32>,
    /// The tokens to feed before generating: a fresh prompt, or what is new since the cache
    /// (the last token sampled, the observation, the next turn's header). Never empty.
    pub new: Vec<u32>,
    /// Seed of this row's sampling generator.
    pub seed: u64,
    /// Most tokens this row may generate (capped by `params.max_new_tokens`).
    pub max_new_tokens: usize,
}

/// What a batch of [`Continuation`]s produced.
pub struct Continued {
    /// One generation per row, in order.
    pub generations: Vec<Generation>,
    /// With `keep_caches`, each row's keys and values after the batch: its cache, its `new`
    /// tokens and every generated token but the last, which was sampled and never fed (so the
    /// next turn feeds it first). Empty otherwise.
    pub caches: Vec<KvCache>,
    /// Tokens run through the model before decoding (shared prefixes and identical prompts
    /// counted once): what prefill cost.
    pub prefilled: usize,
    /// Where the call's time went.
    pub cost: DecodeCost,
}

/// Where a [`generate_continuations`] call's time went, beside its token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeCost {
    /// Decoding steps (forward passes of one token per row of the batch).
    pub steps: usize,
    /// Rows summed over the decoding steps (finished rows still in the batch included):
    /// `row_steps / steps` is how full the batch ran.
    pub row_steps: usize,
    /// Seconds prefilling.
    pub prefill_s: f64,
    /// Seconds in the decoding steps' forward passes.
    pub decode_s: f64,
    /// Seconds rebuilding the batch as rows leave and join, finished rows' caches cut out.
    pub rebuild_s: f64,
    /// Times the batch was rebuilt (rows leaving, joining, or both).
    pub rebuilds: usize,
    /// Rebuilds that copied every row into new buffers; the others wrote only the rows joining
    /// (and moved the last rows into freed slots) in place.
    pub restacks: usize,
}

/// Generates one continuation per row, decoding at most `max_batch` rows at a time.
///
/// Rows are prefilled a chunk of `max_batch` at a time, in order, each chunk when its rows are
/// first needed. Rows with a cache feed only their `new` tokens after it. A chunk's fresh rows
/// share the longest prefix common to all of them (typically the system prompt), run once at
/// batch size 1 and kept in `prefix` for later chunks and calls; fresh rows with the same prompt
/// (the copies of a GRPO group) are prefilled once. Each row is prefilled alone, so unequal
/// lengths cost the sum of their lengths, not `b × longest`, and rows are stacked right-aligned
/// with their padding masked: positions count only real tokens.
///
/// Decoding keeps the batch full, as continuous batching does in vLLM and SGLang: once a
/// quarter of its rows have finished they leave it, and the next waiting rows take the free
/// slots, written into the batch's buffers in place (`KvCache::place_row`: the rows that stay
/// are not copied; a batch with no rows left to join moves its last rows into the freed slots
/// and shrinks). A restack into new buffers is left for a round's first batch and a joining row
/// longer than the batch. Rows of a GRPO round end at very different lengths (a few run to the
/// token limit, most end far sooner), and a batch that decoded its chunk to the end ran its last steps with most
/// slots empty while the next chunk waited: each step streams every weight once, however few
/// rows it serves. Each row's arithmetic is the same whatever the batch holds (the decoding
/// kernels compute row by row, and a row reads another's keys and values only where their bits
/// are equal), and chunks are prefilled as they would be alone, so every row's tokens are the
/// bits it samples with any `max_batch`.
pub fn generate_continuations(
    model: &Model,
    tokenizer: &TextTokenizer,
    mut rows: Vec<Continuation>,
    params: &SamplingParams,
    prefix: &mut Option<PrefixCache>,
    keep_caches: bool,
    max_batch: usize,
) -> Result<Continued> {
    validate(params)?;
    if rows.is_empty() {
        return Ok(Continued {
            generations: Vec::new(),
            caches: Vec::new(),
            prefilled: 0,
            cost: DecodeCost::default(),
        });
    }
    if rows.iter().any(|r| r.new.is_empty()) {
        return Err(Error::InvalidInput("empty prompt".into()));
    }
    if let Some((i, r)) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.fed.len() != r.cache.as_ref().map_or(0, KvCache::len))
    {
        return Err(Error::InvalidInput(format!(
            "row {i}: its cache holds {} tokens but {} fed tokens are given",
            r.cache.as_ref().map_or(0, KvCache::len),
            r.fed.len()
        )));
    }
    let vocab = model.config().vocab_size as u32;
    if let Some(bad) = rows.iter().flat_map(|r| &r.new).find(|&&id| id >= vocab) {
        return Err(Error::InvalidInput(format!(
            "token id {bad} outside the vocabulary ({vocab})"
        )));
    }
    let b = rows.len();
    let max_batch = max_batch.max(1);
    let device = model.device();
    let limits: Vec<usize> = rows
        .iter()
        .map(|r| r.max_new_tokens.min(params.max_new_tokens))
        .collect();
    let pad = params.stop_token_ids.first().copied().unwrap_or(0);
    let mut turns = Turns {
        tokenizer,
        params,
        limits: &limits,
        rngs: rows.iter().map(|r| SplitMix64(r.seed)).collect(),
        out: vec![None; b],
        tokens: vec![Vec::new(); b],
        logprobs: vec![Vec::new(); b],
        entropy: vec![0.0; b],
    };
    for (i, limit) in limits.iter().enumerate() {
        if *limit == 0 {
            turns.out[i] = Some(make_generation(
                tokenizer,
                &[],
                &[],
                0.0,
                FinishReason::Length,
            )?);
        }
    }
    let mut prefilled = 0;
    let mut cost = DecodeCost::default();
    // Rows prefilled and waiting for a slot, in order: (row, its cache, its last logits).
    let mut waiting: VecDeque<(usize, KvCache, Tensor)> = VecDeque::new();
    let mut unprefilled = 0..b;
    // The batch: the rows in its slots (indices into `rows`), its cache, each slot's real
    // cached positions and next position, and each slot's logits after the last step.
    let mut live: Vec<usize> = Vec::new();
    let mut cache = KvCache::new(model.config().num_layers);
    let mut key_valid: Vec<Vec<bool>> = Vec::new();
    let mut next_pos: Vec<u32> = Vec::new();
    let mut logits: Option<Tensor> = None;
    let mut left: Vec<Option<KvCache>> = vec![None; b];
    // How many first positions the last restack laid out at their own columns in every row:
    // rows written in place later put up to as many of theirs there.
    let mut front = 0;
    let kept_positions = |valid: &[bool]| -> Vec<u32> {
        (0..valid.len() as u32)
            .filter(|&j| valid[j as usize])
            .collect()
    };
    loop {
        let mut step_ids = Vec::with_capacity(live.len());
        if let Some(logits) = &logits {
            let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
            for (slot, &i) in live.iter().enumerate() {
                // A finished row still in the batch runs on a masked pad token.
                step_ids.push(match turns.out[i] {
                    Some(_) => pad,
                    None => turns.take(i, &rows[slot])?,
                });
            }
        }
        // Finished rows leave once they are a quarter of the batch, so a finished row stops
        // costing a row of every later step; waiting rows join then.
        let done = live.iter().filter(|&&i| turns.out[i].is_some()).count();
        if live.is_empty() || (done > 0 && done * 4 >= live.len()) {
            let rebuild = Instant::now();
            let mut prefill_s = 0.0;
            let mut stay: Vec<usize> = Vec::with_capacity(live.len());
            for (slot, &i) in live.iter().enumerate() {
                if turns.out[i].is_none() {
                    stay.push(slot);
                } else if keep_caches {
                    left[i] = Some(cache.select_row(slot, &kept_positions(&key_valid[slot]))?);
                }
            }
            // Waiting rows take the free slots, each after its first token (a row that finishes
            // with it never joins).
            let mut joining: Vec<(usize, KvCache, u32)> = Vec::new();
            while stay.len() + joining.len() < max_batch {
                if waiting.is_empty() {
                    let chunk = unprefilled.start..(unprefilled.start + max_batch).min(b);
                    if chunk.is_empty() {
                        break;
                    }
                    unprefilled.start = chunk.end;
                    let t = Instant::now();
                    let (caches, last, n) = prefill(model, &mut rows[chunk.clone()], prefix)?;
                    prefill_s += t.elapsed().as_secs_f64();
                    prefilled += n;
                    waiting.extend(chunk.zip(caches).zip(last).map(|((i, c), l)| (i, c, l)));
                }
                let Some((i, row_cache, last)) = waiting.pop_front() else {
                    break;
                };
                if turns.out[i].is_none() {
                    let row_logits: Vec<f32> =
                        last.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                    let id = turns.take(i, &row_logits)?;
                    if turns.out[i].is_none() {
                        joining.push((i, row_cache, id));
                        continue;
                    }
                }
                if keep_caches {
                    left[i] = Some(row_cache);
                }
            }
            cost.prefill_s += prefill_s;
            if stay.is_empty() && joining.is_empty() {
                cost.rebuild_s += rebuild.elapsed().as_secs_f64() - prefill_s;
                break;
            }
            cost.rebuilds += 1;
            let end = cache.len();
            // The finished rows' slots, ascending.
            let mut free: Vec<usize> = (0..live.len()).filter(|s| !stay.contains(s)).collect();
            let in_place = !live.is_empty()
                && joining.len() <= free.len()
                && cache.writable()
                && joining
                    .iter()
                    .all(|(_, c, _)| c.on_cpu_f32() && c.len() <= end);
            if in_place {
                // Joining rows take the first free slots, written where they are; the rows that
                // stay are not copied.
                let joined = joining.len();
                for ((i, row_cache, id), &slot) in joining.into_iter().zip(&free) {
                    let n = row_cache.len();
                    let keep: Vec<u32> = (0..n as u32).collect();
                    let first = n.min(front);
                    cache.place_row(slot, &row_cache, 0, &keep, first)?;
                    key_valid[slot] = laid_out(n, first, end);
                    next_pos[slot] = n as u32;
                    step_ids[slot] = id;
                    live[slot] = i;
                }
                // Slots still free: the batch shrinks, its last rows moving into those below.
                let holes = free.split_off(joined);
                let slots = live.len() - holes.len();
                let movers = (slots..live.len()).filter(|s| !holes.contains(s));
                for (hole, from) in holes.iter().copied().filter(|&h| h < slots).zip(movers) {
                    cache.move_row(from, hole)?;
                    key_valid.swap(hole, from);
                    next_pos.swap(hole, from);
                    step_ids.swap(hole, from);
                    live.swap(hole, from);
                }
                if slots < live.len() {
                    cache.keep_slots(slots)?;
                    key_valid.truncate(slots);
                    next_pos.truncate(slots);
                    step_ids.truncate(slots);
                    live.truncate(slots);
                }
            } else if joining.is_empty() {
                cost.restacks += 1;
                cache = cache.select_rows(&stay)?;
                key_valid = stay
                    .iter()
                    .map(|&slot| std::mem::take(&mut key_valid[slot]))
                    .collect();
                next_pos = stay.iter().map(|&slot| next_pos[slot]).collect();
                step_ids = stay.iter().map(|&slot| step_ids[slot]).collect();
                live = stay.iter().map(|&slot| live[slot]).collect();
            } else {
                // The new batch: the rows staying, then the rows joining, each with its real
                // positions only.
                let keeps: Vec<Vec<u32>> = stay
                    .iter()
                    .map(|&slot| kept_positions(&key_valid[slot]))
                    .chain(
                        joining
                            .iter()
                            .map(|(_, c, _)| (0..c.len() as u32).collect()),
                    )
                    .collect();
                let held: Vec<Vec<u32>> = stay
                    .iter()
                    .map(|&slot| live[slot])
                    .chain(joining.iter().map(|(i, _, _)| *i))
                    .map(|i| {
                        let generated = &turns.tokens[i];
                        let fed = &generated[..generated.len() - 1];
                        [&rows[i].fed[..], &rows[i].new[..], fed].concat()
                    })
                    .collect();
                let lens: Vec<usize> = keeps.iter().map(Vec::len).collect();
                let shortest = lens.iter().copied().min().unwrap_or(0);
                let common = common_prefix(held.iter().map(Vec::as_slice)).min(shortest);
                drop(held);
                let width = lens.iter().copied().max().unwrap_or(0) - common;
                let sources: Vec<RestackRow<'_>> = stay
                    .iter()
                    .zip(&keeps)
                    .map(|(&slot, keep)| RestackRow {
                        cache: &cache,
                        row: slot,
                        keep,
                    })
                    .chain(
                        joining
                            .iter()
                            .zip(&keeps[stay.len()..])
                            .map(|((_, c, _), keep)| RestackRow {
                                cache: c,
                                row: 0,
                                keep,
                            }),
                    )
                    .collect();
                let restacked = KvCache::restack(&sources, common, width)?;
                drop(sources);
                cache = restacked;
                front = common;
                cost.restacks += 1;
                key_valid = lens
                    .iter()
                    .map(|&n| laid_out(n, common, common + width))
                    .collect();
                next_pos = lens.iter().map(|&n| n as u32).collect();
                step_ids = stay
                    .iter()
                    .map(|&slot| step_ids[slot])
                    .chain(joining.iter().map(|(_, _, id)| *id))
                    .collect();
                live = stay
                    .iter()
                    .map(|&slot| live[slot])
                    .chain(joining.iter().map(|(i, _, _)| *i))
                    .collect();
            }
            cost.rebuild_s += rebuild.elapsed().as_secs_f64() - prefill_s;
        }
        let positions: Vec<Vec<u32>> = next_pos.iter().map(|&p| vec![p]).collect();
        for (slot, &i) in live.iter().enumerate() {
            key_valid[slot].push(turns.out[i].is_none());
            next_pos[slot] += 1;
        }
        let input = Tensor::from_vec(step_ids, (live.len(), 1), device)?;
        let t = Instant::now();
        logits = Some(model.forward_step(&input, &positions, &key_valid, &mut cache)?);
        cost.decode_s += t.elapsed().as_secs_f64();
        cost.steps += 1;
        cost.row_steps += live.len();
    }
    let caches = if keep_caches {
        left.into_iter()
            .map(|c| c.ok_or_else(|| Error::InvalidInput("a row kept no cache".into())))
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let generations = turns
        .out
        .into_iter()
        .map(|g| g.ok_or_else(|| Error::InvalidInput("a row never finished".into())))
        .collect::<Result<Vec<_>>>()?;
    Ok(Continued {
        generations,
        caches,
        prefilled,
        cost,
    })
}

/// Which of a batch row's `end` columns hold its `n` positions, as restacking and writing in
/// place lay them out: the first `front` at their own columns, the rest right-aligned to `end`,
/// padding between.
fn laid_out(n: usize, front: usize, end: usize) -> Vec<bool> {
    let mut valid = vec![true; front];
    valid.extend(std::iter::repeat_n(false, end - n));
    valid.extend(std::iter::repeat_n(true, n - front));
    valid
}

/// What the rows of a call to [`generate_continuations`] have generated so far.
struct Turns<'a> {
    tokenizer: &'a TextTokenizer,
    params: &'a SamplingParams,
    limits: &'a [usize],
    rngs: Vec<SplitMix64>,
    out: Vec<Option<Generation>>,
    tokens: Vec<Vec<u32>>,
    logprobs: Vec<Vec<f32>>,
    entropy: Vec<f64>,
}

impl Turns<'_> {
    /// Row `i` picks its next token from `logits` (and finishes, if that ends it); returns it.
    fn take(&mut self, i: usize, logits: &[f32]) -> Result<u32> {
        let picked = pick(logits, self.params, &mut self.rngs[i]);
        self.tokens[i].push(picked.id);
        self.logprobs[i].push(picked.logprob);
        self.entropy[i] += picked.entropy;
        let finish = finished(self.tokenizer, &self.tokens[i], self.params, self.limits[i])?;
        if let Some(finish) = finish {
            let mean_entropy = self.entropy[i] / self.tokens[i].len() as f64;
            self.out[i] = Some(make_generation(
                self.tokenizer,
                &self.tokens[i],
                &self.logprobs[i],
                mean_entropy,
                finish,
            )?);
        }
        Ok(picked.id)
    }
}

/// Prefills a chunk of rows: each row's keys and values after what it already has (fresh rows
/// after the prefix they share, computed once and kept in `prefix`), rows with the same tokens
/// fed and to feed once. Returns each row's batch-1 cache, its last logits (`[1, vocab]`) and
/// the tokens run through the model.
fn prefill(
    model: &Model,
    rows: &mut [Continuation],
    prefix: &mut Option<PrefixCache>,
) -> Result<(Vec<KvCache>, Vec<Tensor>, usize)> {
    let device = model.device();
    let mut prefilled = 0;
    // The prefix every fresh row starts with. Each keeps at least one token of its own: its last
    // prompt token is what produces its first logits.
    let fresh: Vec<&[u32]> = rows
        .iter()
        .filter(|r| r.cache.is_none())
        .map(|r| r.new.as_slice())
        .collect();
    let mut base = KvCache::new(model.config().num_layers);
    let mut shared = 0;
    if let Some(first) = fresh.first() {
        let lcp = common_prefix(fresh.iter().copied())
            .min(fresh.iter().map(|p| p.len() - 1).min().unwrap_or(0));
        if let Some(p) = prefix.as_ref() {
            if p.tokens.len() <= lcp && first.starts_with(&p.tokens) {
                base = p.cache.clone();
                shared = p.tokens.len();
            }
        }
        // One fresh row alone has no prefix to share beyond what is kept.
        if fresh.len() > 1 && shared < lcp {
            let ids = Tensor::new(&first[shared..lcp], device)?.unsqueeze(0)?;
            let positions = vec![(shared as u32..lcp as u32).collect::<Vec<_>>()];
            model.forward_step(&ids, &positions, &[vec![true; lcp]], &mut base)?;
            prefilled += lcp - shared;
            shared = lcp;
            *prefix = Some(PrefixCache {
                tokens: first[..lcp].to_vec(),
                cache: base.clone(),
            });
        }
    }
    let mut caches: Vec<KvCache> = Vec::with_capacity(rows.len());
    let mut last: Vec<Tensor> = Vec::with_capacity(rows.len());
    let mut done: Vec<usize> = Vec::new();
    // A row's own cache is taken, not cloned, so that it keeps its spare capacity and the
    // append below writes in place.
    let cached: Vec<bool> = rows.iter().map(|r| r.cache.is_some()).collect();
    for i in 0..rows.len() {
        let r = &rows[i];
        let same = |d: &&usize| {
            let o = &rows[**d];
            cached[**d] == cached[i] && o.fed == r.fed && o.new == r.new
        };
        if let Some(&j) = done.iter().find(same) {
            caches.push(caches[j].clone());
            last.push(last[j].clone());
            continue;
        }
        done.push(i);
        let r = &mut rows[i];
        let (mut cache, from) = match r.cache.take() {
            Some(c) => (c, 0),
            None => (base.clone(), shared),
        };
        let past = cache.len();
        let feed = &r.new[from..];
        let input = Tensor::new(feed, device)?.unsqueeze(0)?;
        let positions = vec![(past as u32..(past + feed.len()) as u32).collect::<Vec<_>>()];
        let valid = vec![vec![true; past + feed.len()]];
        last.push(model.forward_step(&input, &positions, &valid, &mut cache)?);
        prefilled += feed.len();
        caches.push(cache);
    }
    Ok((caches, last, prefilled))
}

/// Length of the longest prefix shared by every sequence.
pub fn common_prefix<'a>(mut seqs: impl Iterator<Item = &'a [u32]>) -> usize {
    let Some(first) = seqs.next() else {
        return 0;
    };
    seqs.fold(first.len(), |n, s| {
        first[..n].iter().zip(s).take_while(|(a, b)| a == b).count()
    })
}

fn validate(params: &SamplingParams) -> Result<()> {
    if !params.temperature.is_finite() || params.temperature < 0.0 {
        return Err(Error::InvalidInput(format!(
            "temperature {} must be >= 0",
            params.temperature
        )));
    }
    if !(params.top_p > 0.0 && params.top_p <= 1.0) {
        return Err(Error::InvalidInput(format!(
            "top_p {} must be in (0, 1]",
            params.top_p
        )));
    }
    Ok(())
}

struct Picked {
    id: u32,
    logprob: f32,
    entropy: f64,
}

/// Chooses a token from one row of logits; returns it with its log-probability and the entropy
/// of the unmodified distribution (before temperature, top-k and top-p).
fn pick(logits: &[f32], params: &SamplingParams, rng: &mut SplitMix64) -> Picked {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut z, mut zl) = (0.0f64, 0.0f64);
    for &l in logits {
        let d = (l - max) as f64;
        let e = d.exp();
        z += e;
        zl += e * d;
    }
    let lse = max as f64 + z.ln();
    // H = -sum p log p = log z - sum(e d) / z, with d = l - max.
    let entropy = z.ln() - zl / z;
    let id = if params.temperature == 0.0 {
        argmax(logits)
    } else {
        sample(logits, params, rng)
    };
    Picked {
        id: id as u32,
        logprob: (logits[id] as f64 - lse) as f32,
        entropy,
    }
}

fn argmax(logits: &[f32]) -> usize {
    // First maximum on ties, like torch.argmax.
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

fn sample(logits: &[f32], params: &SamplingParams, rng: &mut SplitMix64) -> usize {
    let t = params.temperature;
    if params.top_k == 0 && params.top_p >= 1.0 {
        // The whole distribution: no order is needed, and sorting 49k logits per token was a
        // visible share of sampling.
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let weights: Vec<f64> = logits
            .iter()
            .map(|&l| ((l as f64 - max) / t).exp())
            .collect();
        let mut u = rng.next_f64() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        return weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if params.top_k > 0 {
        order.truncate(params.top_k.max(1));
    }
    let max = logits[order[0]] as f64;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / t).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if params.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (n, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= params.top_p {
                keep = n + 1;
                break;
            }
        }
        probs.truncate(keep);
        order.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut u = rng.next_f64() * total;
    for (n, p) in probs.iter().enumerate() {
        if u < *p {
            return order[n];
        }
        u -= p;
    }
    order[probs.len() - 1]
}

fn finished(
    tokenizer: &TextTokenizer,
    tokens: &[u32],
    params: &SamplingParams,
    limit: usize,
) -> Result<Option<FinishReason>> {
    if let Some(&last) = tokens.last() {
        if params.stop_token_ids.contains(&last) {
            return Ok(Some(FinishReason::StopToken(last)));
        }
    }
    if !params.stop_strings.is_empty() {
        let text = tokenizer.decode(tokens, false)?;
        if let Some(s) = params
            .stop_strings
            .iter()
            .find(|s| text.contains(s.as_str()))
        {
            return Ok(Some(FinishReason::StopString(s.clone())));
        }
    }
    if tokens.len() >= limit {
        return Ok(Some(FinishReason::Length));
    }
    Ok(None)
}

fn make_generation(
    tokenizer: &TextTokenizer,
    tokens: &[u32],
    logprobs: &[f32],
    mean_entropy: f64,
    finish: FinishReason,
) -> Result<Generation> {
    let mut text = tokenizer.decode(tokens, true)?;
    if let FinishReason::StopString(s) = &finish {
        if let Some(at) = text.find(s.as_str()) {
            text.truncate(at);
        }
    }
    Ok(Generation {
        text,
        tokens: tokens.to_vec(),
        logprobs: logprobs.to_vec(),
        mean_entropy,
        finish,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_of_sequences() {
        let a = [1u32, 2, 3, 4];
        let b = [1u32, 2, 5];
        let c = [1u32, 2, 3];
        assert_eq!(common_prefix([&a[..], &b[..], &c[..]].into_iter()), 2);
        assert_eq!(common_prefix([&a[..]].into_iter()), 4);
        assert_eq!(common_prefix(std::iter::empty()), 0);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits = [0.1f32, 3.0, 2.9, -1.0];
        let params = SamplingParams {
            top_k: 1,
            ..Default::default()
        };
        let mut rng = SplitMix64(5);
        for _ in 0..20 {
            assert_eq!(sample(&logits, &params, &mut rng), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let logits = [10.0f32, 9.0, -5.0, -6.0];
        let params = SamplingParams {
            top_p: 0.9,
            ..Default::default()
        };
        let mut rng = SplitMix64(9);
        for _ in 0..200 {
            assert!(sample(&logits, &params, &mut rng) < 2);
        }
    }

    #[test]
    fn logprob_is_of_the_raw_distribution() {
        let logits = [0.0f32, 0.0];
        let params = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        let picked = pick(&logits, &params, &mut SplitMix64(1));
        assert!((picked.logprob - 0.5f32.ln()).abs() < 1e-6);
        assert!((picked.entropy - 2f64.ln()).abs() < 1e-9);
    }
}

//! Batched text generation with a KV cache.
//!
//! Prompts are left-padded to a common length so every sequence's next token comes from the same
//! (last) position; padded keys are masked and position ids count only real tokens, so a padded
//! sequence generates exactly what it would alone. Sampling happens on the CPU from each row's
//! logits with a small seeded generator, so a seed reproduces a run bit for bit.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::model::{positions_of, KvCache, Model};
use crate::rng::SplitMix64;
use crate::tokenizer::TextTokenizer;

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
    /// Why generation ended.
    pub finish: FinishReason,
}

/// Generates one continuation per prompt (token ids, e.g. a rendered chat template), all in one
/// batch.
pub fn generate(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
) -> Result<Vec<Generation>> {
    validate(params)?;
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if prompts.iter().any(|p| p.is_empty()) {
        return Err(Error::InvalidInput("empty prompt".into()));
    }
    let vocab = model.config().vocab_size as u32;
    if let Some(bad) = prompts.iter().flatten().find(|&&id| id >= vocab) {
        return Err(Error::InvalidInput(format!(
            "token id {bad} outside the vocabulary ({vocab})"
        )));
    }
    let b = prompts.len();
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let pad = params.stop_token_ids.first().copied().unwrap_or(0);
    let mut ids = Vec::with_capacity(b * width);
    let mut key_valid: Vec<Vec<bool>> = Vec::with_capacity(b);
    for p in prompts {
        let missing = width - p.len();
        ids.extend(std::iter::repeat_n(pad, missing));
        ids.extend_from_slice(p);
        let mut valid = vec![false; missing];
        valid.extend(std::iter::repeat_n(true, p.len()));
        key_valid.push(valid);
    }
    let positions: Vec<Vec<u32>> = key_valid.iter().map(|v| positions_of(v, 0)).collect();
    let mut next_pos: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
    let device = model.device();
    let mut cache = KvCache::new(model.config().num_layers);
    let input = Tensor::from_vec(ids, (b, width), device)?;
    let mut logits = model.forward_step(&input, &positions, &key_valid, &mut cache)?;

    let mut rng = SplitMix64(params.seed);
    let mut out: Vec<Option<Generation>> = vec![None; b];
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut logprobs: Vec<Vec<f32>> = vec![Vec::new(); b];
    for _step in 0..params.max_new_tokens {
        let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
        let mut step_ids = Vec::with_capacity(b);
        for (i, row) in rows.iter().enumerate() {
            if out[i].is_some() {
                // Finished rows keep running (the batch stays rectangular) on a masked pad token.
                step_ids.push(pad);
                continue;
            }
            let (id, lp) = pick(row, params, &mut rng);
            tokens[i].push(id);
            logprobs[i].push(lp);
            step_ids.push(id);
            if let Some(finish) = finished(tokenizer, &tokens[i], params)? {
                out[i] = Some(make_generation(
                    tokenizer,
                    &tokens[i],
                    &logprobs[i],
                    finish,
                )?);
            }
        }
        if out.iter().all(Option::is_some) {
            break;
        }
        let positions: Vec<Vec<u32>> = next_pos.iter().map(|&p| vec![p]).collect();
        for (i, valid) in key_valid.iter_mut().enumerate() {
            valid.push(out[i].is_none());
            next_pos[i] += 1;
        }
        let input = Tensor::from_vec(step_ids, (b, 1), device)?;
        logits = model.forward_step(&input, &positions, &key_valid, &mut cache)?;
    }
    (0..b)
        .map(|i| match out[i].take() {
            Some(g) => Ok(g),
            None => make_generation(tokenizer, &tokens[i], &logprobs[i], FinishReason::Length),
        })
        .collect()
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

/// Chooses a token from one row of logits; returns it with its log-probability under the
/// unmodified distribution.
fn pick(logits: &[f32], params: &SamplingParams, rng: &mut SplitMix64) -> (u32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max
        + logits
            .iter()
            .map(|&l| ((l - max) as f64).exp())
            .sum::<f64>()
            .ln() as f32;
    let id = if params.temperature == 0.0 {
        argmax(logits)
    } else {
        sample(logits, params, rng)
    };
    (id as u32, logits[id] - lse)
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
    if tokens.len() >= params.max_new_tokens {
        return Ok(Some(FinishReason::Length));
    }
    Ok(None)
}

fn make_generation(
    tokenizer: &TextTokenizer,
    tokens: &[u32],
    logprobs: &[f32],
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
        finish,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (_, lp) = pick(&logits, &params, &mut SplitMix64(1));
        assert!((lp - 0.5f32.ln()).abs() < 1e-6);
    }
}

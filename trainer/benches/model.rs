//! Throughput of the model runtime at SmolLM2-135M shapes with random weights (no download
//! needed): forward and forward+backward of token log-probabilities at batch x seq tokens, one
//! AdamW step, the forward+backward of a GRPO group with and without the shared-prefix forward,
//! peak RSS, and KV-cached decoding (at batch 1 and 8 unless `BENCH_DECODE_BATCHES` says) of
//! rows with prompts of their own, and at batch > 1 also of rows that share their prompt (as a
//! rollout's episodes share the system prompt), whose keys and values decoding reads once.
//!
//! `cargo bench -p trainer --bench model` (release profile). Environment: `BENCH_BATCH` (8),
//! `BENCH_SEQ` (256), `BENCH_DECODE_TOKENS` (64), `BENCH_REPEATS` (2), `BENCH_PREFIX` (512),
//! `BENCH_COMPLETION` (64), `BENCH_GROUP` (4), `BENCH_DECODE_PROMPT` (16),
//! `BENCH_DECODE_BATCHES` (`1,8`), `BENCH_ONLY` (a comma list of `train`, `group`, `decode`: the
//! parts to run; all by default), `BENCH_DEVICE` (`cpu`; `cuda` needs the `cuda`
//! feature), `BENCH_DTYPE` (`f32`, `bf16` or `f16`). Compare with
//! `bash trainer/benches/torch_bench.sh` (same shapes and thread count).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use trainer::{KvCache, Model, ModelConfig};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process in MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Whether `BENCH_ONLY` (unset: everything) asks for this part.
fn wanted(part: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|p| p.trim() == part))
}

/// Best wall time of `repeats` runs of `f`; GPU work is waited for before the clock stops.
fn best_of<F: FnMut() -> candle_core::Result<()>>(
    device: &Device,
    repeats: usize,
    mut f: F,
) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f().expect("benchmark step");
        device.synchronize().expect("device synchronize");
        best = best.min(start.elapsed().as_secs_f64());
    }
    best
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the trainer binary does (see trainer::process); BENCH_NO_TUNING=1 leaves the defaults,
    // to see what the settings are worth.
    if std::env::var_os("BENCH_NO_TUNING").is_none() {
        trainer::process::tune_for_tensors();
    }
    let batch = env_usize("BENCH_BATCH", 8);
    let seq = env_usize("BENCH_SEQ", 256);
    let decode_tokens = env_usize("BENCH_DECODE_TOKENS", 64);
    let repeats = env_usize("BENCH_REPEATS", 2);
    let device = match std::env::var("BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0)?,
        Ok("cpu") | Err(_) => Device::Cpu,
        Ok(other) => return Err(format!("BENCH_DEVICE={other}: cpu or cuda").into()),
    };
    let dtype = match std::env::var("BENCH_DTYPE").as_deref() {
        Ok("f32") | Err(_) => DType::F32,
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        Ok(other) => return Err(format!("BENCH_DTYPE={other}: f32, bf16 or f16").into()),
    };
    let config = ModelConfig::smollm2_135m();
    let model = Model::random(config.clone(), dtype, &device, 0)?;
    let ids: Vec<u32> = (0..batch * seq)
        .map(|i| ((i * 7919) % config.vocab_size) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, seq), &device)?;
    let tokens = (batch * seq) as f64;
    println!(
        "SmolLM2-135M shapes, random {dtype:?} weights on {device:?}, batch {batch} x seq {seq}, {} rayon threads",
        candle_core::utils::get_num_threads()
    );
    // The machine's matmul rate in this dtype, for scale.
    let n = 2048;
    let a = Tensor::ones((n, n), dtype, &device)?;
    let b = Tensor::ones((n, n), dtype, &device)?;
    let mm = best_of(&device, 3, || a.matmul(&b).map(|_| ()));
    println!(
        "matmul {n}x{n}     {:>9.1} GFLOP/s",
        2.0 * (n as f64).powi(3) / mm / 1e9
    );

    let chunk = trainer::model::DEFAULT_LOGPROB_CHUNK;
    if wanted("train") {
        let fwd = best_of(&device, repeats, || {
            model
                .token_logprobs(&ids, None, chunk)
                .map(|_| ())
                .map_err(to_candle)
        });
        println!(
            "forward            {:>9.1} tok/s  ({fwd:.2} s)",
            tokens / fwd
        );

        let mut grads = None;
        let fwd_bwd = best_of(&device, repeats, || {
            grads = None;
            let loss = model
                .token_logprobs(&ids, None, chunk)
                .map_err(to_candle)?
                .mean_all()?;
            grads = Some(loss.backward()?);
            Ok(())
        });
        println!(
            "forward+backward   {:>9.1} tok/s  ({fwd_bwd:.2} s)",
            tokens / fwd_bwd
        );

        let grads = grads.expect("backward ran");

        let mut fused =
            trainer::AdamW::new(model.varmap().all_vars(), trainer::AdamWConfig::default())?;
        // The first step also faults in the zeroed moment buffers; later steps are the steady state.
        let first = best_of(&device, 1, || fused.step(&grads).map_err(to_candle));
        let steady = best_of(&device, 2, || fused.step(&grads).map_err(to_candle));
        println!("AdamW step (fused) {first:>9.3} s first, {steady:.3} s steady");
        drop(fused);
        let mut opt = AdamW::new(model.varmap().all_vars(), ParamsAdamW::default())?;
        let adamw = best_of(&device, repeats, || opt.step(&grads));
        println!("AdamW step (candle-nn) {adamw:>9.3} s");
        drop(opt);
        drop(grads);
        println!("peak RSS so far    {:>9.0} MiB", peak_rss_mib());
    }

    if wanted("group") {
        // A GRPO group: G completions of one prompt. Unshared, every sequence runs prompt +
        // completion; shared (`prefix_logprobs`), the prompt runs once and its keys/values feed every
        // completion in the same graph (gradients equal; tested in tests/all/grpo.rs).
        let (prompt_len, completion_len, group) = (
            env_usize("BENCH_PREFIX", 512),
            env_usize("BENCH_COMPLETION", 64),
            env_usize("BENCH_GROUP", 4),
        );
        let prompt: Vec<u32> = (0..prompt_len)
            .map(|i| ((i * 7919 + 11) % config.vocab_size) as u32)
            .collect();
        let completions: Vec<Vec<u32>> = (0..group)
            .map(|g| {
                (0..completion_len)
                    .map(|i| ((i * 104_729 + g * 31 + 5) % config.vocab_size) as u32)
                    .collect()
            })
            .collect();
        let full: Vec<u32> = completions
            .iter()
            .flat_map(|c| prompt.iter().chain(c).copied())
            .collect();
        let full = Tensor::from_vec(full, (group, prompt_len + completion_len), &device)?;
        let unshared = best_of(&device, repeats, || {
            let lp = model
                .token_logprobs(&full, None, chunk)
                .map_err(to_candle)?;
            let loss = lp.narrow(1, prompt_len - 1, completion_len)?.mean_all()?;
            drop(loss.backward()?);
            Ok(())
        });
        let shared = best_of(&device, repeats, || {
            let lp = model
                .prefix_logprobs(&prompt, &completions, chunk)
                .map_err(to_candle)?;
            drop(lp.mean_all()?.backward()?);
            Ok(())
        });
        println!(
            "GRPO group fwd+bwd (G={group}, prompt {prompt_len}, completion {completion_len}): \
             unshared {unshared:.2} s, shared prefix {shared:.2} s ({:.2}x)",
            unshared / shared
        );
    }

    // A rollout's later turns decode after ~700 cached positions, where reading the cache
    // weighs as much as the weights: BENCH_DECODE_PROMPT=700 shows it.
    let prompt_len = env_usize("BENCH_DECODE_PROMPT", 16);
    let decode_batches = if wanted("decode") {
        decode_batches()?
    } else {
        Vec::new()
    };
    for b in decode_batches {
        for shared in [false, true] {
            if shared && b == 1 {
                continue;
            }
            let mut decode_s = f64::INFINITY;
            let secs = best_of(&device, repeats, || {
                let s = decode(&model, b, prompt_len, decode_tokens, shared).map_err(to_candle)?;
                decode_s = decode_s.min(s);
                Ok(())
            });
            let whose = if shared { "one shared" } else { "its own" };
            println!(
                "decode batch {b}     {:>9.1} tok/s  ({decode_tokens} tokens after {whose} {prompt_len}-token prompt, {secs:.2} s; {:.1} ms per decoding step after the prefill)",
                (b * decode_tokens) as f64 / secs,
                decode_s * 1e3 / decode_tokens as f64
            );
        }
    }
    println!("peak RSS           {:>9.0} MiB", peak_rss_mib());
    Ok(())
}

/// Greedy KV-cached decoding of `steps` tokens after a fixed prompt (prefill included, as in
/// transformers' `generate`); returns the seconds of the decoding steps alone. With `shared`,
/// every row has the same prompt, prefilled once and stacked as the sampler stacks a shared
/// prefix.
fn decode(
    model: &Model,
    batch: usize,
    prompt_len: usize,
    steps: usize,
    shared: bool,
) -> trainer::Result<f64> {
    let device = model.device();
    let mut cache = KvCache::new(model.config().num_layers);
    let rows = if shared { 1 } else { batch };
    let ids: Vec<u32> = (0..rows * prompt_len)
        .map(|i| (i % 1000) as u32 + 100)
        .collect();
    let ids = Tensor::from_vec(ids, (rows, prompt_len), device)?;
    let positions: Vec<Vec<u32>> = vec![(0..prompt_len as u32).collect(); rows];
    let mut valid = vec![vec![true; prompt_len]; rows];
    let mut logits = model.forward_step(&ids, &positions, &valid, &mut cache)?;
    if shared {
        cache = KvCache::stack_left_padded(&vec![cache; batch], prompt_len, 0)?;
        logits = logits.repeat((batch, 1))?;
        valid = vec![vec![true; prompt_len]; batch];
    }
    let started = Instant::now();
    for step in 0..steps {
        let next = logits
            .argmax(candle_core::D::Minus1)?
            .to_dtype(DType::U32)?
            .unsqueeze(1)?;
        let pos = vec![vec![(prompt_len + step) as u32]; batch];
        valid.iter_mut().for_each(|v| v.push(true));
        logits = model.forward_step(&next, &pos, &valid, &mut cache)?;
    }
    logits.to_vec2::<f32>()?;
    Ok(started.elapsed().as_secs_f64())
}

fn to_candle(e: trainer::Error) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// `BENCH_DECODE_BATCHES`: a comma list of decoding batch sizes (default `1,8`); an entry that
/// is not a positive integer is an error naming it.
fn decode_batches() -> Result<Vec<usize>, String> {
    let Ok(list) = std::env::var("BENCH_DECODE_BATCHES") else {
        return Ok(vec![1, 8]);
    };
    list.split(',')
        .map(|b| match b.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "BENCH_DECODE_BATCHES={list}: {b:?} is not a positive integer"
            )),
        })
        .collect()
}

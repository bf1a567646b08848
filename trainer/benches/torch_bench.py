"""PyTorch counterpart of benches/model.rs: same SmolLM2-135M shapes, random weights, same thread
count. Run through torch_bench.sh, which makes the virtual environment."""

import os
import resource
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

BATCH = int(os.environ.get("BENCH_BATCH", 8))
SEQ = int(os.environ.get("BENCH_SEQ", 256))
DECODE = int(os.environ.get("BENCH_DECODE_TOKENS", 64))
REPEATS = int(os.environ.get("BENCH_REPEATS", 2))
THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count()))
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
DTYPE = DTYPES[os.environ.get("BENCH_DTYPE", "f32")]
torch.set_num_threads(THREADS)
torch.manual_seed(0)

config = LlamaConfig(
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
    num_attention_heads=9, num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0,
    max_position_embeddings=8192, tie_word_embeddings=True,
)
model = LlamaForCausalLM(config).to(device=DEVICE, dtype=DTYPE)
ids = (torch.arange(BATCH * SEQ) * 7919 % config.vocab_size).reshape(BATCH, SEQ).to(DEVICE)
tokens = BATCH * SEQ


def token_logprobs(ids):
    logits = model(ids).logits[:, :-1]
    return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def best_of(fn):
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


print(f"SmolLM2-135M shapes, random {DTYPE} weights on {DEVICE}, batch {BATCH} x seq {SEQ}, {THREADS} threads, torch {torch.__version__}")
# The machine's matmul rate in this dtype, for scale.
mm_a = torch.ones(2048, 2048, device=DEVICE, dtype=DTYPE)
mm_best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    mm_a @ mm_a
    sync()
    mm_best = min(mm_best, time.perf_counter() - start)
print(f"matmul 2048x2048   {2 * 2048**3 / mm_best / 1e9:9.1f} GFLOP/s")
model.train()
fwd = best_of(lambda: token_logprobs(ids))
print(f"forward            {tokens / fwd:9.1f} tok/s  ({fwd:.2f} s)")


def fwd_bwd():
    model.zero_grad(set_to_none=True)
    token_logprobs(ids).mean().backward()


fb = best_of(fwd_bwd)
print(f"forward+backward   {tokens / fb:9.1f} tok/s  ({fb:.2f} s)")
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
start = time.perf_counter()
opt.step()
sync()
first = time.perf_counter() - start
steady = min(best_of(opt.step), best_of(opt.step))
print(f"AdamW step (torch) {first:9.3f} s first, {steady:.3f} s steady")
print(f"peak RSS so far    {peak_rss_mib():9.0f} MiB")

model.eval()
for b in (1, 8):
    prompt = (torch.arange(b * 16) % 1000 + 100).reshape(b, 16).to(DEVICE)
    with torch.no_grad():
        start = time.perf_counter()
        model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=DECODE,
                       min_new_tokens=DECODE, do_sample=False, pad_token_id=0)
        sync()
        secs = time.perf_counter() - start
    print(f"decode batch {b}     {b * DECODE / secs:9.1f} tok/s  ({DECODE} tokens after a 16-token prompt, {secs:.2f} s, incl. prefill)")
print(f"peak RSS           {peak_rss_mib():9.0f} MiB")
if DEVICE == "cuda":
    print(f"peak GPU memory    {torch.cuda.max_memory_allocated() / 2**20:9.0f} MiB")

"""Produce the reference numbers the trainer's correctness tests are pinned to.

Independent implementation: Hugging Face `transformers` (with `gguf`, CPU torch) loads the same
GGUF file, dequantized to f32, and its own tokenizer conversion and chat template. Run from the
repository root after `bash trainer/scripts/fetch-model.sh`:

    python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers gguf numpy accelerate
    .venv-ref/bin/python trainer/tests/reference/make_reference.py

Writes trainer/tests/reference/smollm2.json and the tiny Qwen2 checkpoint + tiny_qwen2.json.
"""

import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

torch.set_num_threads(2)
torch.manual_seed(0)

TOKENIZER_STRINGS = [
    "Hello, world!",
    "  leading spaces and\ttabs\n\nnewlines  ",
    "The year 2024 had 366 days; 3.14159 != 22/7.",
    "naïve café, 日本語のテキスト, emoji 🤖🔧 and Ελληνικά",
    "<|im_start|>user\nWhat is 12*34?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>special<repo_name>tokens",
    '{"name": "calculator", "arguments": {"expression": "2+2"}}',
    "don't won't y'all's",
    "",
]

CHAT = [
    {"role": "system", "content": "You are a calculator."},
    {"role": "user", "content": "What is 2+3?"},
]
CHAT_NO_SYSTEM = [{"role": "user", "content": "Hi!"}]
LOGPROB_TEXT = "The capital of France is Paris. 1, 2, 3, 4"
GREEDY_TOKENS = 24
NUM_PROBE_IDS = 128


def rounded(xs, digits=6):
    return [round(float(x), digits) for x in xs]


def smollm2():
    models = os.path.join(ROOT, "models")
    if not os.path.exists(os.path.join(models, GGUF)):
        sys.exit("run trainer/scripts/fetch-model.sh first")
    tok = AutoTokenizer.from_pretrained(models, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=GGUF, dtype=torch.float32)
    model.eval()

    out = {"transformers": __import__("transformers").__version__, "torch": torch.__version__}
    out["tokenizer"] = [
        {"text": s, "ids": tok(s, add_special_tokens=True)["input_ids"]} for s in TOKENIZER_STRINGS
    ]
    out["decode"] = [
        {"ids": case["ids"], "text": tok.decode(case["ids"])} for case in out["tokenizer"]
    ]
    out["chat"] = {
        "messages": CHAT,
        "text": tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True),
    }
    out["chat_no_system"] = {
        "messages": CHAT_NO_SYSTEM,
        "text": tok.apply_chat_template(CHAT_NO_SYSTEM, tokenize=False, add_generation_prompt=False),
    }

    # Logits at every position of the chat prompt, probed at fixed ids plus each position's top 8.
    prompt_ids = tok(out["chat"]["text"], add_special_tokens=False)["input_ids"]
    gen = torch.Generator().manual_seed(1234)
    probe = torch.randperm(model.config.vocab_size, generator=gen)[:NUM_PROBE_IDS].tolist()
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids])).logits[0]
    positions = []
    for p in range(len(prompt_ids)):
        ids = sorted(set(probe) | set(torch.topk(logits[p], 8).indices.tolist()))
        positions.append({"ids": ids, "logits": rounded(logits[p, ids])})
    out["logits"] = {"prompt_ids": prompt_ids, "positions": positions}

    # Greedy continuation of the same prompt.
    with torch.no_grad():
        gen_out = model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=tok.pad_token_id,
        )
    new_ids = gen_out[0, len(prompt_ids):].tolist()
    out["greedy"] = {"prompt_ids": prompt_ids, "new_ids": new_ids, "text": tok.decode(new_ids)}

    # log p(token i | tokens < i) of a plain text, tokenized as the tokenizer does by default.
    ids = tok(LOGPROB_TEXT)["input_ids"]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    out["logprobs"] = {
        "text": LOGPROB_TEXT,
        "tokens": ids,
        "logprobs": [None] + rounded([lp[i - 1, ids[i]] for i in range(1, len(ids))]),
    }
    return out


def tiny_qwen2():
    """A tiny random Qwen2 (biases, untied head) saved as sharded safetensors."""
    cfg = Qwen2Config(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
    )
    torch.manual_seed(7)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    path = os.path.join(HERE, "tiny-qwen2")
    model.save_pretrained(path, max_shard_size="20KB", safe_serialization=True)
    ids = [[3, 14, 15, 9, 26, 5, 35, 8, 9, 7]]
    with torch.no_grad():
        logits = model(torch.tensor(ids)).logits[0]
    return {"ids": ids[0], "logits": [rounded(row) for row in logits]}


if __name__ == "__main__":
    with open(os.path.join(HERE, "tiny_qwen2.json"), "w") as f:
        json.dump(tiny_qwen2(), f)
    ref = smollm2()
    with open(os.path.join(HERE, "smollm2.json"), "w") as f:
        json.dump(ref, f, ensure_ascii=False)
    print(json.dumps({k: ref[k] for k in ("tokenizer", "chat", "greedy")}, ensure_ascii=False, indent=1)[:6000])

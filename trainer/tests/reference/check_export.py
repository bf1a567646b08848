"""Check that a model directory exported by `trainer sft` / `trainer grpo` loads in Hugging Face
`transformers` and computes what the trainer computes.

Independent of the trainer: `transformers` reads `config.json`, `model.safetensors`,
`tokenizer.json` and `tokenizer_config.json` (chat template) itself. Checked:
1. the tokenizer gives the same ids as `trainer logprobs` on a text (BOS handling included);
2. the per-token log-probabilities agree (max abs diff <= 1e-3);
3. the chat template renders a conversation and greedy generation from it matches
   `trainer generate --temperature 0` token for token (compared as text).

Needs CPU torch and transformers (e.g. the venv `trainer/benches/torch_bench.sh` makes). From the
repository root:

    .venv-bench/bin/python trainer/tests/reference/check_export.py runs/grpo/model \
        [--trainer target/release/trainer]

Prints a JSON report; exits 1 if a check fails.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

TEXT = (
    "<|im_start|>user\nWhat is 17*23? Use the calculator.<|im_end|>\n<|im_start|>assistant\n"
    "<think> I will call the tools. </think>\n<tool_call>\n"
    '{"name": "calculator", "parameters": {"expression": "17*23"}}\n</tool_call>'
)
SYSTEM = "You are a helpful assistant."
PROMPT = "What is the capital of France?"
GREEDY_TOKENS = 24


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--trainer", default="target/release/trainer")
    args = parser.parse_args()
    torch.set_num_threads(2)

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    report = {"model": args.model, "architecture": model.config.architectures}

    # 1-2: tokens and log-probabilities of a text, tokenized as is.
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(TEXT)
        text_file = f.name
    ours = json.loads(
        subprocess.run(
            [args.trainer, "logprobs", "--model", args.model, "--text-file", text_file],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    os.unlink(text_file)
    ids = tok(TEXT, add_special_tokens=True)["input_ids"]
    report["tokens_equal"] = ids == ours["tokens"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    theirs = [None] + [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
    diffs = [
        abs(a - b) for a, b in zip(theirs[1:], ours["logprobs"][1:]) if a is not None
    ]
    report["tokens"] = len(ids)
    report["logprob_max_abs_diff"] = max(diffs) if diffs else None

    # 3: the chat template and a greedy reply.
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    prompt_ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "input_ids"):
        prompt_ids = prompt_ids["input_ids"]
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt_ids]),
            max_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            pad_token_id=tok.eos_token_id,
        )
    hf_reply = tok.decode(out[0][len(prompt_ids):], skip_special_tokens=True).strip()
    our_reply = subprocess.run(
        [
            args.trainer, "generate", "--model", args.model, "--system", SYSTEM,
            "--prompt", PROMPT, "--max-new-tokens", str(GREEDY_TOKENS), "--temperature", "0",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    report["greedy_transformers"] = hf_reply
    report["greedy_trainer"] = our_reply
    report["greedy_equal"] = hf_reply == our_reply

    ok = (
        report["tokens_equal"]
        and report["logprob_max_abs_diff"] is not None
        and report["logprob_max_abs_diff"] <= 1e-3
        and report["greedy_equal"]
    )
    report["ok"] = ok
    print(json.dumps(report, indent=2, ensure_ascii=False))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

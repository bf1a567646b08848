"""TRL's GRPOTrainer with toolenv: the registry's tools as an ``environment_factory`` (each call
runs in the WebAssembly sandbox) and ToolRL's reward as the reward function, on a few of the
repository's executable tasks. ``scripts/trl-e2e.sh`` runs it on CPU for a few steps with
SmolLM2-135M-Instruct exported by ``trainer``; with any tool-calling chat model it runs as is::

    python env/python/examples/trl_grpo.py --model runs/trl-e2e/sft/model --steps 3

It prints (and writes to ``<out>/summary.json``) the steps run, the wall time, the tool calls the
sandbox ran and the reward TRL logged at each step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def ground_truth(task: dict) -> str:
    """ToolRL's reference turn for a task: its first solution turn's calls."""
    calls = "\n".join(json.dumps({"name": c["name"], "parameters": c["parameters"]}) for c in task["solution"][0])
    return f"<think></think>\n<tool_call>\n{calls}\n</tool_call>"


def warm_start(model, tokenizer, environment, tasks, steps: int, lr: float = 1e-4, batch: int = 1) -> float:
    """A few supervised steps on the calling turn of ``tasks`` in the chat template TRL renders
    (tool listing included; loss on the assistant turn only), so that a model that has never
    seen this template's <tool_call> blocks makes calls GRPO can reward. Returns the last loss."""
    import random

    import torch

    methods = [getattr(environment, t) for t in environment.tool_names]
    examples = []
    for task in tasks:
        calls = [{"type": "function", "function": {
            "name": c["name"], "arguments": environment.python_arguments(c["name"], c["parameters"])}}
            for c in task["solution"][0]]
        user = [{"role": "user", "content": task["question"]}]
        prompt = tokenizer.apply_chat_template(user, tools=methods, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": "", "tool_calls": calls}],
                                             tools=methods, tokenize=False)
        if not full.startswith(prompt):
            raise RuntimeError("the chat template does not extend the prompt with the assistant turn")
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        examples.append((ids, [-100] * len(p_ids) + ids[len(p_ids):]))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = random.Random(0)
    model.train()
    loss = float("nan")
    for step in range(steps):
        chunk = rng.sample(examples, min(batch, len(examples)))
        width = max(len(ids) for ids, _ in chunk)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk])
        out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        loss = out.loss.item()
        print(f"warm start step {step + 1}/{steps}: loss {loss:.4f} ({width} tokens wide)", flush=True)
    return loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a Hugging Face model directory (or hub id)")
    ap.add_argument("--config", default=str(REPO / "env/config.toml"))
    ap.add_argument("--tasks", default=str(REPO / "env/data/tasks/train.jsonl"))
    ap.add_argument("--tools", default="calculator")
    ap.add_argument("--prompts", type=int, default=8, help="tasks used (those whose tools are all offered)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--max-completion-length", type=int, default=64)
    ap.add_argument("--warm-start-steps", type=int, default=0,
                    help="supervised steps on other tasks' calling turns first (0: none)")
    ap.add_argument("--out", default=str(REPO / "runs/trl-e2e/grpo"))
    args = ap.parse_args()

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen2_5_chat_template

    from toolenv.adapters.trl import environment_factory, reward_function

    tools = args.tools.split(",")
    usable = [t for t in map(json.loads, open(args.tasks)) if set(t["tools"]) <= set(tools)]
    rows = [{"prompt": [{"role": "user", "content": t["question"]}], "ground_truth": ground_truth(t),
             "task_id": t["id"]} for t in usable[:args.prompts]]
    if not rows:
        raise SystemExit(f"no task in {args.tasks} uses only {tools}")

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.chat_template is None or "tools" not in tokenizer.chat_template:
        # SmolLM2 speaks ChatML without tools: Qwen2.5's ChatML template adds them (the same
        # <|im_start|>/<|im_end|> tokens), and TRL knows how to parse its <tool_call> blocks.
        tokenizer.chat_template = qwen2_5_chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.model)

    Environment = environment_factory(args.config, tools=tools)
    warm = {}
    if args.warm_start_steps:
        # Tasks after the GRPO prompts, so the prompts trained on stay unseen.
        t0 = time.time()
        last = warm_start(model, tokenizer, Environment(), usable[args.prompts:], args.warm_start_steps)
        warm = {"warm_start_steps": args.warm_start_steps, "warm_start_last_loss": round(last, 4),
                "warm_start_wall_s": round(time.time() - t0, 1)}
    config = GRPOConfig(
        output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=args.generations,
        num_generations=args.generations, max_completion_length=args.max_completion_length,
        max_tool_calling_iterations=2, learning_rate=1e-6, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, seed=0, temperature=1.0, gradient_checkpointing=False,
    )
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[reward_function()],
                          args=config, train_dataset=Dataset.from_list(rows),
                          environment_factory=Environment)
    start = time.time()
    trainer.train()
    wall = time.time() - start

    logs = [h for h in trainer.state.log_history if "reward" in h]
    summary = {
        **warm,
        "steps": trainer.state.global_step,
        "train_wall_s": round(wall, 1),
        "tool_calls_run_in_sandbox": Environment.total_calls,
        "tool_calls_with_error": Environment.total_errors,
        "logged": [{k: h.get(k) for k in ("step", "reward", "rewards/toolrl_default/mean", "tools/call_frequency",
                                          "tools/failure_frequency", "loss")} for h in logs],
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""ToolRL's reward as a TRL reward function (``GRPOTrainer(reward_funcs=[...])``).

TRL calls ``f(prompts, completions, **columns)`` with one completion per row, the dataset's other
columns as keyword lists, and expects ``list[float | None]`` (``None``: the function does not apply
to that row). Completions are strings, or, for conversational datasets, lists of messages whose
assistant contents are the completion. The ground truth comes from a dataset column
(``ground_truth`` by default) holding ToolRL's reference text; the training step, for the
step-scheduled variants, from TRL's ``trainer_state`` when it passes one.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

from .. import reward

__all__ = ["completion_text", "reward_function"]


def completion_text(completion: Any) -> str:
    """The text of one TRL completion: a string, or the assistant messages' contents joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        parts = []
        for m in completion:
            if not isinstance(m, dict) or "content" not in m:
                raise TypeError(f"a conversational completion is a list of messages with `content`, got {m!r}")
            if m.get("role", "assistant") == "assistant":
                parts.append(m["content"] if isinstance(m["content"], str) else str(m["content"]))
        return "\n".join(parts)
    raise TypeError(f"a completion is a str or a list of messages, got {type(completion).__name__}")


def reward_function(variant: str = "default", column: str = "ground_truth",
                    term: str = "total") -> Callable[..., List[Optional[float]]]:
    """A TRL reward function scoring each completion with ToolRL's ``variant`` against the
    dataset column ``column``; it returns the ``term`` (``total``, ``format``, ``correctness`` or
    ``length``). Rows whose ground truth is ``None`` get ``None``."""
    if term not in ("total", "format", "correctness", "length"):
        raise ValueError(f"term must be total, format, correctness or length, got {term!r}")
    reward("", "", 0, variant)  # an unknown variant fails here, not in the middle of training

    def toolrl_reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> List[Optional[float]]:
        if column not in columns:
            raise KeyError(f"the dataset has no `{column}` column (it has: {', '.join(sorted(columns))})")
        truths = columns[column]
        if len(truths) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(truths)} `{column}` values")
        state = columns.get("trainer_state")
        step = int(getattr(state, "global_step", 0) or 0)
        out: List[Optional[float]] = []
        for completion, truth in zip(completions, truths):
            if truth is None:
                out.append(None)
            else:
                out.append(getattr(reward(completion_text(completion), truth, step, variant), term))
        return out

    # TRL logs each reward function under its __name__.
    toolrl_reward.__name__ = f"toolrl_{variant}" + ("" if term == "total" else f"_{term}")
    return toolrl_reward

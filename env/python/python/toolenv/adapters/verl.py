"""ToolRL's reward as verl's ``compute_score`` (``custom_reward_function.path`` pointing at this
file, ``name: compute_score``).

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info=None)`` per
sample and accepts a float or a dict with a ``score`` key (the other keys are logged). The
variant and the training step come from ``extra_info`` (``{"variant": ..., "step": ...}``) when
the dataset puts them there.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .. import reward

__all__ = ["compute_score"]


def compute_score(data_source: Any, solution_str: str, ground_truth: str,
                  extra_info: Optional[Dict[str, Any]] = None) -> Dict[str, float]:
    info = extra_info or {}
    s = reward(solution_str, ground_truth, int(info.get("step", 0)), info.get("variant", "default"))
    return {"score": s.total, "format": s.format, "correctness": s.correctness, "length": s.length}

"""toolenv for Python: the WebAssembly tool sandbox, the rollout step and ToolRL's reward.

In-process (``Env``, built on the Rust crate through PyO3) or over HTTP against ``toolenv serve``
(``Client``), with the same API and the same answers::

    from toolenv import Env
    env = Env("env/config.toml")
    with env.session(seed=7) as s:
        r = s.call("calculator", {"expression": "6*7"})   # CallResult(ok={'value': 42}, ...)
        step = s.step("<think>..</think>\\n<tool_call>\\n{...}\\n</tool_call>")

What the model did wrong (an unknown tool, arguments that break the schema, a tool that traps or
runs out of fuel) is a ``CallResult`` with ``error`` set, never an exception; what the caller did
wrong (a missing config, a non-JSON string where JSON is needed, a wrong type) raises.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

from . import _native

__all__ = [
    "CallResult",
    "Client",
    "Env",
    "ParsedTurn",
    "Scores",
    "Session",
    "StepResult",
    "ToolError",
    "parse_turn",
    "reward",
    "reward_batch",
]

Arguments = Union[Mapping[str, Any], str]


# Built in Rust: a call's result is made without a round trip through JSON text.
ToolError = _native.ToolError
CallResult = _native.CallResult


def _call_result(d: Mapping[str, Any]) -> Any:
    """A ``CallResult`` from its wire form (``{"ok"} or {"error": {"kind", "message"}}``, with
    ``fuel`` and ``us``)."""
    e = d.get("error")
    return CallResult(d.get("ok"), ToolError(e["kind"], e["message"]) if e else None,
                      int(d.get("fuel", 0)), int(d.get("us", 0)))


@dataclass(frozen=True)
class StepResult:
    """One assistant turn run through the rollout loop's step: the ``observation`` text to append
    (``None`` when the turn made no call), one entry per call line, and whether the episode is
    ``done``."""

    turn: int
    observation: Optional[str]
    calls: list = field(default_factory=list)
    results: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    done: bool = False
    stop: Optional[str] = None

    @staticmethod
    def from_wire(d: Mapping[str, Any]) -> "StepResult":
        errors = [ToolError(e["kind"], e["message"]) if e else None for e in d["errors"]]
        return StepResult(
            turn=d["turn"],
            observation=d["observation"],
            calls=list(d["calls"]),
            results=list(d["results"]),
            errors=errors,
            done=bool(d["done"]),
            stop=d.get("stop"),
        )


@dataclass(frozen=True)
class Scores:
    """ToolRL's reward terms: ``total`` = format + correctness + length (weights 1)."""

    total: float
    format: float
    correctness: float
    length: float


@dataclass(frozen=True)
class ParsedTurn:
    """The TIR codec's reading of an assistant turn."""

    think: Optional[str]
    has_tool_call_block: bool
    calls: list
    response: Optional[str]
    issues: list


def _arguments_json(arguments: Arguments) -> str:
    if isinstance(arguments, str):
        json.loads(arguments)  # raises json.JSONDecodeError (a ValueError) naming the position
        return arguments
    if not isinstance(arguments, Mapping):
        raise TypeError(f"arguments must be a dict or a JSON string, got {type(arguments).__name__}")
    return json.dumps(arguments)


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")


class Session:
    """One episode in-process: calls share the state of stateful tools. A context manager; the
    state is removed on ``close()`` or exit."""

    def __init__(self, native: Any):
        self._native = native

    @property
    def id(self) -> str:
        return self._native.id

    @property
    def seed(self) -> int:
        return self._native.seed

    def call(self, name: str, arguments: Arguments) -> CallResult:
        """Runs the tool in this session's episode; what the model got wrong is in ``error``."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if not isinstance(arguments, (str, dict)) and isinstance(arguments, Mapping):
            arguments = dict(arguments)
        return self._native.call(name, arguments)

    def step(self, text: str) -> StepResult:
        _check_str("text", text)
        return StepResult.from_wire(json.loads(self._native.step_json(text)))

    async def acall(self, name: str, arguments: Arguments) -> CallResult:
        return await asyncio.to_thread(self.call, name, arguments)

    async def astep(self, text: str) -> StepResult:
        return await asyncio.to_thread(self.step, text)

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Env:
    """The tools a config registers (``env/config.toml``), optionally a selection of them."""

    def __init__(self, config_path: str, tools: Optional[Sequence[str]] = None,
                 max_turns: Optional[int] = None, max_calls_per_turn: Optional[int] = None):
        _check_str("config_path", str(config_path) if hasattr(config_path, "__fspath__") else config_path)
        self._native = _native.Env(str(config_path), list(tools) if tools is not None else None,
                                   max_turns, max_calls_per_turn)

    def tools(self) -> list:
        """The OpenAI ``tools`` array."""
        return json.loads(self._native.tools_json())

    def session(self, id: Optional[str] = None, seed: Optional[int] = None) -> Session:
        return Session(self._native.session(id, seed))

    def __enter__(self) -> "Env":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def reward(text: str, ground_truth: str, step: int = 0, variant: str = "default") -> Scores:
    """ToolRL's reward of one completion, equal to ``toolenv reward`` on the same line."""
    _check_str("text", text)
    _check_str("ground_truth", ground_truth)
    return Scores(**json.loads(_native.reward_json(text, ground_truth, step, variant)))


def reward_batch(items: Sequence[Mapping[str, Any]]) -> list:
    """``reward`` over ``[{"text", "ground_truth", "step"?, "variant"?}, ...]``."""
    return [reward(i["text"], i["ground_truth"], int(i.get("step", 0)), i.get("variant", "default"))
            for i in items]


def parse_turn(text: str) -> ParsedTurn:
    """The TIR codec's calls (``{"line", "name", "arguments"}``) and errors (``{"line",
    "error"}``) of one assistant turn, with its think text, response and structural issues."""
    _check_str("text", text)
    d = json.loads(_native.parse_turn_json(text))
    return ParsedTurn(d["think"], d["tool_call_block"], d["calls"], d["response"], d["issues"])


from .client import Client  # noqa: E402  (the HTTP client uses the types above)

"""toolenv for TRL's ``GRPOTrainer``: ToolRL's reward as a reward function, and the registry's
tools as an ``environment_factory``.

Reward (``GRPOTrainer(reward_funcs=[reward_function()])``): TRL calls ``f(prompts, completions,
**columns)`` with one completion per row, the dataset's other columns as keyword lists, and
expects ``list[float | None]`` (``None``: the function does not apply to that row). Completions
are strings, or, for conversational datasets, lists of messages: the first assistant message's
content and its parsed ``tool_calls`` (written back as a ``<tool_call>`` block) are the turn
scored, since ToolRL's reference is one turn. The
ground truth comes from a dataset column (``ground_truth`` by default) holding ToolRL's reference
text; the training step, for the step-scheduled variants, from TRL's ``trainer_state``.

Environment (``GRPOTrainer(environment_factory=environment_factory("env/config.toml"))``): TRL
builds one instance per rollout (pooled and reused), calls ``reset(**row)`` before each, and
exposes every public method except ``reset`` as a tool, reading its schema the way
``transformers.utils.get_json_schema`` does: the signature's type hints and a Google-style
docstring (description, ``Args:``, ``Returns:``). ``environment_factory`` generates that class
from the registry: one method per tool, its parameters and docstring from the tool's JSON
Schema. ``reset`` opens a fresh session (stateful tools start empty; the row's ``seed`` column,
if any, seeds it) and returns ``None`` (nothing is added to the prompt). A call runs in the
sandbox and returns the JSON result as text, or ``{"error": "..."}`` for whatever the model got
wrong (unknown arguments, a schema violation, a trap): never an exception, so the arguments are
checked by the registry's full schema, not by Python's signature binding.
"""

from __future__ import annotations

import inspect
import json
import keyword
import re
import threading
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Sequence, Union

from .. import Env, reward

__all__ = ["completion_text", "environment_factory", "reward_function"]


def _tool_call_block(tool_calls: Sequence[Any]) -> str:
    lines = []
    for call in tool_calls:
        function = call.get("function", call) if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or "name" not in function:
            raise TypeError(f"a tool call is {{'function': {{'name', 'arguments'}}}}, got {call!r}")
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass  # scored as written: ToolRL's correctness sees the model's text
        lines.append(json.dumps({"name": function["name"], "parameters": arguments}))
    return "<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


def completion_text(completion: Any, turns: str = "all") -> str:
    """The text of one TRL completion: a string, or the assistant messages' contents (each with
    its ``tool_calls`` as a ``<tool_call>`` block), all of them joined by newlines
    (``turns="all"``) or the first one (``turns="first"``)."""
    if turns not in ("all", "first"):
        raise ValueError(f"turns must be all or first, got {turns!r}")
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        parts = []
        for m in completion:
            if not isinstance(m, dict) or "content" not in m:
                raise TypeError(f"a conversational completion is a list of messages with `content`, got {m!r}")
            if m.get("role", "assistant") == "assistant":
                content = m["content"] if isinstance(m["content"], str) else str(m["content"] or "")
                if m.get("tool_calls"):
                    content = (content.rstrip() + "\n" if content.strip() else "") + _tool_call_block(m["tool_calls"])
                parts.append(content)
        return "\n".join(parts[:1] if turns == "first" else parts)
    raise TypeError(f"a completion is a str or a list of messages, got {type(completion).__name__}")


def reward_function(variant: str = "default", column: str = "ground_truth",
                    term: str = "total", turns: str = "first") -> Callable[..., List[Optional[float]]]:
    """A TRL reward function scoring each completion with ToolRL's ``variant`` against the
    dataset column ``column``; it returns the ``term`` (``total``, ``format``, ``correctness`` or
    ``length``). Rows whose ground truth is ``None`` get ``None``. ToolRL's reference is one
    turn, so a conversational completion (a call, its result, an answer) is scored on its first
    assistant turn; ``turns="all"`` scores every assistant turn joined."""
    if term not in ("total", "format", "correctness", "length"):
        raise ValueError(f"term must be total, format, correctness or length, got {term!r}")
    if turns not in ("all", "first"):
        raise ValueError(f"turns must be all or first, got {turns!r}")
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
                out.append(getattr(reward(completion_text(completion, turns), truth, step, variant), term))
        return out

    # TRL logs each reward function under its __name__.
    toolrl_reward.__name__ = f"toolrl_{variant}" + ("" if term == "total" else f"_{term}")
    return toolrl_reward


# --- environment_factory -------------------------------------------------------------------

_SCALARS = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}
# Words that end a section of a Google docstring wherever transformers' parser meets them.
_SECTION = re.compile(r"\b(Args|Returns|Raises):")
_RESERVED = {"reset", "get_reward"}


def _type_hint(schema: Any) -> Any:
    """The Python type hint transformers turns back into (the gist of) ``schema``."""
    if not isinstance(schema, Mapping):
        return Any
    values = schema["enum"] if isinstance(schema.get("enum"), list) else (
        [schema["const"]] if "const" in schema else None)
    if values and all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
        return Literal[tuple(values)]
    t = schema.get("type")
    if isinstance(t, list):
        hints = tuple(_type_hint({**schema, "type": x}) for x in t if isinstance(x, str))
        return Union[hints] if hints else Any
    if t in _SCALARS:
        return _SCALARS[t]
    if t == "array":
        items = schema.get("items")
        return List[_type_hint(items)] if isinstance(items, Mapping) and items else list
    if t == "object":
        return Dict[str, Any]
    return Any


def _one_line(text: str) -> str:
    # One line per argument (the parser splits the Args block at `name:` line starts), and no
    # section word that would cut the description short.
    return _SECTION.sub(r"\1 :", " ".join(str(text).split()))


def _parameter_name(tool: str, name: str, taken: set) -> str:
    py = name + "_" if keyword.iskeyword(name) or name == "self" else name
    if not py.isidentifier():
        raise ValueError(f"tool `{tool}`: argument `{name}` is not a Python identifier, so it cannot be a "
                         "parameter of the environment's method")
    if py in taken:
        raise ValueError(f"tool `{tool}`: arguments `{name}` and `{py}` map to the same parameter")
    taken.add(py)
    return py


def _method(class_name: str, tool: Mapping[str, Any]) -> Callable[..., str]:
    """The environment's method for one tool: the signature, hints and docstring TRL reads,
    over a body that takes any keywords and hands them to the sandbox."""
    fn = tool["function"]
    name = fn["name"]
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) \
            or name.startswith("_") or name in _RESERVED:
        raise ValueError(f"tool `{name}` cannot be a method of a TRL environment (a Python identifier, "
                         f"not private, not {' or '.join(sorted(_RESERVED))})")
    schema = fn.get("parameters") or {}
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    to_json: Dict[str, str] = {}
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: Dict[str, Any] = {}
    args_doc = []
    taken: set = set()
    for json_name, prop in properties.items():
        py = _parameter_name(name, json_name, taken)
        to_json[py] = json_name
        hint = _type_hint(prop)
        default = inspect.Parameter.empty if json_name in required else (
            prop.get("default") if isinstance(prop, Mapping) else None)
        params.append(inspect.Parameter(py, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint))
        annotations[py] = hint
        desc = prop.get("description") if isinstance(prop, Mapping) else None
        if py != json_name:
            desc = f"{desc or ''} (the `{json_name}` argument)".strip()
        args_doc.append(f"    {py}: {_one_line(desc or f'The `{json_name}` argument.')}")
    annotations["return"] = str

    def method(self: Any, **arguments: Any) -> str:
        return self._call(name, {to_json.get(k, k): v for k, v in arguments.items()})

    method._toolenv_json_names = to_json  # type: ignore[attr-defined]

    doc = _one_line(fn.get("description") or name)
    if args_doc:
        doc += "\n\nArgs:\n" + "\n".join(args_doc)
    doc += "\n\nReturns:\n    The tool's result as JSON text, or {\"error\": ...} saying what went wrong."
    method.__name__ = name
    method.__qualname__ = f"{class_name}.{name}"
    method.__doc__ = doc
    method.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    return method


class _EnvironmentBase:
    """What every generated environment class shares (its tool methods are added per class)."""

    env: Env
    tool_names: tuple = ()
    _lock: threading.Lock
    total_calls: int = 0
    total_errors: int = 0

    def __init__(self) -> None:
        self._session: Any = None
        self.calls = 0
        self.errors = 0

    def reset(self, **row: Any) -> None:
        """Starts a rollout in a fresh session (its stateful tools empty), seeded by the row's
        ``seed`` column when it has one. Adds nothing to the prompt."""
        if self._session is not None:
            self._session.close()
        seed = row.get("seed")
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"the row's `seed` must be an int, got {type(seed).__name__}")
        self._session = self.env.session(seed=seed)
        self.calls = 0
        self.errors = 0
        return None

    @classmethod
    def python_arguments(cls, name: str, arguments: Mapping[str, Any]) -> Dict[str, Any]:
        """``arguments`` of tool ``name`` (JSON names) keyed as the method's parameters, as a
        model sees them in the schema TRL renders (``from`` becomes ``from_``): for writing
        demonstrations of calls."""
        method = cls.__dict__.get(name)
        if method is None or not hasattr(method, "_toolenv_json_names"):
            raise KeyError(f"`{name}` is not a tool of {cls.__name__}")
        to_python = {j: p for p, j in method._toolenv_json_names.items()}
        return {to_python.get(k, k): v for k, v in arguments.items()}

    def _call(self, name: str, arguments: Dict[str, Any]) -> str:
        if self._session is None:
            raise RuntimeError(f"`{name}` was called before reset(): TRL resets each environment first")
        result = self._session.call(name, arguments)
        cls = type(self)
        with cls._lock:
            cls.total_calls += 1
            cls.total_errors += result.error is not None
        self.calls += 1
        if result.error is not None:
            self.errors += 1
            return json.dumps({"error": result.error.message})
        return json.dumps(result.ok)


def environment_factory(config_path: str = "env/config.toml", tools: Optional[Sequence[str]] = None,
                        *, name: str = "ToolenvEnvironment", env: Optional[Env] = None) -> type:
    """A class to pass as ``GRPOTrainer(environment_factory=...)``: instances share one ``Env``
    of ``config_path`` (restricted to ``tools`` when given; or ``env`` itself) and each has a
    session per rollout. Its methods are the registry's tools; ``calls``/``errors`` count an
    instance's calls since its last ``reset``, ``total_calls``/``total_errors`` (on the class)
    every call made through it. Raises ``ValueError`` for a tool or argument name that cannot be
    a Python method or parameter (a keyword argument such as ``from`` becomes ``from_``)."""
    if not name.isidentifier():
        raise ValueError(f"name must be a Python identifier, got {name!r}")
    shared = env if env is not None else Env(config_path, tools=tools)
    namespace: Dict[str, Any] = {
        "env": shared, "tool_names": tuple(t["function"]["name"] for t in shared.tools()), "_lock": threading.Lock(), "total_calls": 0, "total_errors": 0,
        "__doc__": f"The tools of {config_path} as a TRL environment; see toolenv.adapters.trl.",
        "__module__": __name__,
    }
    for tool in shared.tools():
        method = _method(name, tool)
        namespace[method.__name__] = method
    return type(name, (_EnvironmentBase,), namespace)

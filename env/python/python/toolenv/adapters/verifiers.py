"""toolenv for verifiers (0.4, its v1 API: tasksets, tasks, MCP toolsets, harnesses): the
closest equivalent of the old ``ToolEnv`` (a dataset, tools the model calls, a rubric), with the
tools run in toolenv's sandbox and ToolRL's reward as the rubric.

- ``ToolenvToolset``: a ``vf.Toolset`` (an MCP tool server) whose tools are the registry's, each
  advertised with its full JSON Schema and run in a session of an in-process ``Env``. A tool's
  error (unknown tool, arguments that break the schema, a trap) is an MCP result with
  ``is_error`` set and the message as text, never an exception. It is a task's toolset, which
  verifiers launches per rollout: one session per rollout, so stateful tools start empty.
- ``ToolenvTask``: a ``vf.Task`` whose data carry ToolRL's reference turn (``ground_truth``) and
  the task's answer, with ``@vf.reward toolrl`` (ToolRL's reward of the rollout's first assistant
  turn against the reference) and ``@vf.metric tool_calls``.
- ``ToolenvTaskset``: a ``vf.Taskset`` of the repository's executable tasks
  (``env/data/tasks/*.jsonl``).
- ``toolrl_score(task, trace, variant)``: the reward as a plain function; ``toolrl_reward``, its
  async form, for a task config's
  ``rewards = {toolrl = {fn = "toolenv.adapters.verifiers:toolrl_reward"}}`` on another taskset.

Tool names are advertised bare (``TOOL_PREFIX = None``), as the registry and ToolRL's ground
truth name them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, cast

import verifiers.v1 as vf
from mcp.types import CallToolResult, TextContent, Tool

from .. import Env, reward

__all__ = ["ToolenvTask", "ToolenvTaskConfig", "ToolenvTaskData", "ToolenvTaskset", "ToolenvTasksetConfig",
           "ToolenvToolset", "ToolenvToolsetConfig", "reference_turn", "trace_text", "toolrl_reward",
           "toolrl_score"]

class ToolenvToolsetConfig(vf.ToolsetConfig):
    config_path: str = "env/config.toml"
    """The toolenv config whose tools are served (relative: to the working directory)."""
    tools: Optional[List[str]] = None
    """A selection of its tools (default: all)."""


class ToolenvToolset(vf.Toolset[ToolenvToolsetConfig]):
    """The registry's tools as an MCP tool server; see the module's documentation."""

    TOOL_PREFIX = None

    def __init__(self, config: ToolenvToolsetConfig) -> None:
        super().__init__(config)
        self.env: Optional[Env] = None
        self.session: Any = None
        self.calls = 0
        self.errors = 0

    async def setup(self) -> None:
        self.env = Env(self.config.config_path, tools=self.config.tools)
        self.session = self.env.session()

    async def setup_task(self, task: Any) -> None:
        """A fresh session for the task, seeded by its data's ``seed`` when it has one."""
        if self.env is None:
            await self.setup()
        assert self.env is not None
        self.session.close()
        seed = getattr(getattr(task, "data", None), "seed", None)
        self.session = self.env.session(seed=seed)

    def register(self, mcp: Any) -> None:
        # The full JSON Schemas go out as they are and arguments reach the sandbox untouched:
        # MCPServer's protocol handlers call these two methods (verifiers' own NeMo Gym toolset
        # serves its dynamic catalog the same way), so no signature is derived from Python.
        server = cast(Any, mcp)
        server.list_tools = self._with_state(self.list_tools)
        server.call_tool = self._with_state(self.call_tool)

    async def list_tools(self) -> List[Tool]:
        if self.env is None:
            await self.setup()
        assert self.env is not None
        return [Tool(name=t["function"]["name"], description=t["function"]["description"],
                     input_schema=t["function"]["parameters"]) for t in self.env.tools()]

    async def call_tool(self, name: str, arguments: Optional[Dict[str, Any]] = None,
                        context: Any = None) -> CallToolResult:
        if self.session is None:
            await self.setup()
        self.calls += 1
        try:
            result = await self.session.acall(name, arguments if arguments is not None else {})
        except (TypeError, ValueError) as e:  # arguments that are not a JSON object
            self.errors += 1
            return CallToolResult(content=[TextContent(type="text", text=f"arguments: {e}")], is_error=True)
        if result.error is not None:
            self.errors += 1
            return CallToolResult(content=[TextContent(type="text", text=result.error.message)], is_error=True)
        return CallToolResult(content=[TextContent(type="text", text=json.dumps(result.ok))], is_error=False)


def trace_text(trace: Any, turns: str = "all") -> str:
    """A rollout's assistant turns as TIR text: each turn's content, then its tool calls as one
    ``<tool_call>`` block of ``{"name", "parameters"}`` lines (arguments as the model wrote them
    when they are not JSON); every turn joined by newlines (``turns="all"``) or the first."""
    if turns not in ("all", "first"):
        raise ValueError(f"turns must be all or first, got {turns!r}")
    parts = []
    for message in trace.assistant_messages:
        text = (message.content or "").strip()
        calls = message.tool_calls or []
        if calls:
            lines = []
            for call in calls:
                try:
                    arguments: Any = json.loads(call.arguments)
                except json.JSONDecodeError:
                    arguments = call.arguments
                lines.append(json.dumps({"name": call.name, "parameters": arguments}))
            text = (text + "\n" if text else "") + "<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"
        parts.append(text)
    return "\n".join(parts[:1] if turns == "first" else parts)


def toolrl_score(task: Any, trace: Any, variant: str = "default") -> Optional[float]:
    """ToolRL's reward of the rollout's first assistant turn (ToolRL's reference is one turn: the
    task's first calling turn) against the task data's ``ground_truth``; ``None`` (unscored)
    when the task has none."""
    truth = getattr(task, "ground_truth", None)
    if truth is None:
        return None
    return reward(trace_text(trace, "first"), truth, 0, variant).total


async def toolrl_reward(task: Any, trace: Any) -> Optional[float]:
    """``toolrl_score`` with the default variant, in the form verifiers plugs into a task config's
    ``rewards`` (verifiers awaits its scoring functions)."""
    return toolrl_score(task, trace)


class ToolenvTaskData(vf.TaskData):
    answer: Optional[str] = None
    """The task's expected final answer."""
    ground_truth: Optional[str] = None
    """ToolRL's reference turn (``<think>..</think>`` then a ``<tool_call>`` block)."""
    tools: List[str] = []
    """The tools the task's reference solution uses."""
    seed: Optional[int] = None
    """The session's seed (default: the config's)."""


class ToolenvTaskConfig(vf.TaskConfig):
    toolset: ToolenvToolsetConfig = ToolenvToolsetConfig()
    variant: str = "default"
    """ToolRL's reward variant."""


class ToolenvTask(vf.Task[ToolenvTaskData, vf.State, ToolenvTaskConfig]):
    """One executable task; see the module's documentation."""

    @classmethod
    def toolsets(cls, config: ToolenvTaskConfig) -> List[vf.Toolset]:
        return [ToolenvToolset(config.toolset)]

    @vf.reward
    async def toolrl(self, task: ToolenvTaskData, trace: vf.Trace) -> Optional[float]:
        return toolrl_score(task, trace, self.config.variant)

    @vf.metric
    async def tool_calls(self, trace: vf.Trace) -> float:
        return float(sum(len(m.tool_calls or []) for m in trace.assistant_messages))


class ToolenvTasksetConfig(vf.TasksetConfig):
    path: str = "env/data/tasks/train.jsonl"
    """A JSONL file of executable tasks (``id``, ``question``, ``answer``, ``tools``, ``solution``)."""
    task: ToolenvTaskConfig = ToolenvTaskConfig()


def reference_turn(solution: List[List[Dict[str, Any]]]) -> str:
    """ToolRL's reference turn for a task: its solution's first turn of calls."""
    calls = "\n".join(json.dumps({"name": c["name"], "parameters": c["parameters"]}) for c in solution[0])
    return f"<think></think>\n<tool_call>\n{calls}\n</tool_call>"


class ToolenvTaskset(vf.Taskset[ToolenvTask, ToolenvTasksetConfig]):
    """The repository's executable tasks as verifiers tasks."""

    def load(self) -> Iterator[ToolenvTask]:
        path = Path(self.config.path)
        with path.open() as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    data = ToolenvTaskData(id=row["id"], name=row["id"], prompt=row["question"],
                                           answer=str(row["answer"]), tools=list(row.get("tools", [])),
                                           ground_truth=reference_turn(row["solution"]) if row.get("solution")
                                           else None)
                except (KeyError, TypeError, json.JSONDecodeError) as e:
                    raise ValueError(f"{path}:{n}: not an executable task ({e!r})") from e
                yield ToolenvTask(data, self.config.task)

"""toolenv for verl: ToolRL's reward as ``compute_score``, and the registry's tools as verl
``BaseTool`` s.

Reward: ``custom_reward_function.path`` pointing at this file, ``name: compute_score``. verl
calls ``compute_score(data_source, solution_str, ground_truth, extra_info=None)`` per sample and
accepts a float or a dict with a ``score`` key (the other keys are logged). The variant and the
training step come from ``extra_info`` (``{"variant": ..., "step": ...}``) when the dataset puts
them there.

Tools: ``toolenv tools --verl-config > tools.yaml`` writes verl's tool config (one
``ToolenvTool`` per registered tool, ``config: {type: native, config_path: ...}``) for
``actor_rollout_ref.rollout.multi_turn.tool_config_path``. verl builds one ``ToolenvTool`` per
entry; all of them share one in-process ``Env`` per config path.

Sessions: verl's tool agent loop calls ``create`` / ``execute`` / ``release`` around every single
call, with a fresh instance id each time, and passes the trajectory's ``AgentData`` to
``execute``. The session (the episode whose state stateful tools share) is therefore kept in
``agent_data.extra_fields`` (verl's place for "tool session data"): one per trajectory, shared by
all its tools and calls, freed with the trajectory. Without an ``agent_data`` (older rollouts that
``create(request_id)`` once per trajectory and ``release`` at its end) the session belongs to the
instance id and is closed by ``release``.

``execute`` returns ``(ToolResponse(text=...), 0.0, metrics)``: the result as JSON text or
``{"error": "..."}`` for what the model got wrong (never an exception), a step reward of 0 (the
reward is ``compute_score``'s), and ``{"fuel", "us", "error_kind"}``. ``calc_reward`` is ToolRL's
correctness of the calls made under the instance against ``create_kwargs["ground_truth"]``
(ToolRL's reference text), 0 without one.

verl needs torch to import; where it is not installed, ``BaseTool``, ``ToolResponse`` and
``OpenAIFunctionToolSchema`` fall back to stand-ins with verl's interface and verl's pydantic
field definitions (so a tool config verl would reject is rejected here too).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Dict, List, Optional, Tuple

from .. import Env, reward

__all__ = ["HAVE_VERL", "ToolenvTool", "compute_score", "verl_tool_schema"]


def compute_score(data_source: Any, solution_str: str, ground_truth: str,
                  extra_info: Optional[Dict[str, Any]] = None) -> Dict[str, float]:
    info = extra_info or {}
    s = reward(solution_str, ground_truth, int(info.get("step", 0)), info.get("variant", "default"))
    return {"score": s.total, "format": s.format, "correctness": s.correctness, "length": s.length}


try:
    from verl.tools.base_tool import BaseTool
    from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse
    from verl.utils.rollout_trace import rollout_trace_op

    HAVE_VERL = True
except ImportError:
    HAVE_VERL = False

    def rollout_trace_op(fn: Any) -> Any:
        return fn

    try:
        from pydantic import BaseModel, Field
    except ImportError:  # compute_score still works; the tool needs verl's schema models
        BaseModel = None  # type: ignore[assignment,misc]

    if BaseModel is None:
        class BaseTool:  # type: ignore[no-redef]
            def __init__(self, config: dict, tool_schema: Any) -> None:
                raise ImportError("toolenv.adapters.verl.ToolenvTool needs verl or at least pydantic "
                                  "(pip install pydantic)")
    else:
        # verl.tools.schemas' models, field for field: what verl accepts in a tool config.
        class OpenAIFunctionPropertySchema(BaseModel):  # type: ignore[no-redef]
            type: str
            description: Optional[str] = None
            enum: Optional[List[str]] = None

        class OpenAIFunctionParametersSchema(BaseModel):  # type: ignore[no-redef]
            type: str
            properties: Dict[str, OpenAIFunctionPropertySchema]
            required: List[str]

        class OpenAIFunctionSchema(BaseModel):  # type: ignore[no-redef]
            name: str
            description: str
            parameters: OpenAIFunctionParametersSchema = Field(
                default_factory=lambda: OpenAIFunctionParametersSchema(type="object", properties={}, required=[]))
            strict: bool = False

        class OpenAIFunctionToolSchema(BaseModel):  # type: ignore[no-redef]
            type: str
            function: OpenAIFunctionSchema

        class ToolResponse(BaseModel):  # type: ignore[no-redef]
            text: Optional[str] = None
            image: Optional[List[Any]] = None
            video: Optional[List[Any]] = None

        class BaseTool:  # type: ignore[no-redef]
            """verl.tools.base_tool.BaseTool's interface (verl is not installed)."""

            def __init__(self, config: dict, tool_schema: Optional[OpenAIFunctionToolSchema]):
                self.config = config
                self.tool_schema = tool_schema or self.get_openai_tool_schema()
                assert self.tool_schema is not None, "Tool schema is not set!"
                self.name = self.tool_schema.function.name

            def get_openai_tool_schema(self) -> OpenAIFunctionToolSchema:
                return self.tool_schema

            async def create(self, instance_id: Optional[str] = None, **kwargs: Any) -> Tuple[str, ToolResponse]:
                return (instance_id or str(uuid.uuid4())), ToolResponse()

            async def execute(self, instance_id: str, parameters: Dict[str, Any],
                              **kwargs: Any) -> Tuple[ToolResponse, float, dict]:
                return ToolResponse(text="Updated the tool state."), 0.0, {}

            async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
                return 0.0

            async def release(self, instance_id: str, **kwargs: Any) -> None:
                pass


_SCALAR_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                 (list, "array"), (dict, "object"), (type(None), "null"))


def _json_type(value: Any) -> str:
    return next(name for t, name in _SCALAR_TYPES if isinstance(value, t))


def verl_tool_schema(tool: Dict[str, Any]) -> Dict[str, Any]:
    """An OpenAI tool object reduced to what verl's schema models hold: per property one type
    string (the first non-null of a list, an enum's or const's value type, ``any`` for any JSON
    value), the description and a string enum. The same reduction as ``toolenv tools
    --verl-config``; the sandbox still checks arguments against the full schema."""
    fn = tool["function"]
    params = fn.get("parameters") or {}
    properties = {}
    for name, prop in (params.get("properties") or {}).items():
        t = prop.get("type")
        if isinstance(t, list):
            names = [x for x in t if isinstance(x, str)]
            t = next((x for x in names if x != "null"), names[0] if names else None)
        if not isinstance(t, str):
            values = prop["enum"] if isinstance(prop.get("enum"), list) else (
                [prop["const"]] if "const" in prop else [])
            kinds = list(dict.fromkeys(_json_type(v) for v in values))
            t = kinds[0] if len(kinds) == 1 else "any"
        out: Dict[str, Any] = {"type": t}
        if isinstance(prop.get("description"), str):
            out["description"] = prop["description"]
        if isinstance(prop.get("enum"), list) and all(isinstance(v, str) for v in prop["enum"]):
            out["enum"] = list(prop["enum"])
        properties[name] = out
    return {"type": "function", "function": {
        "name": fn["name"], "description": fn.get("description", ""),
        "parameters": {"type": "object", "properties": properties,
                       "required": [r for r in params.get("required") or [] if isinstance(r, str)]}}}


_ENVS: Dict[str, Env] = {}


def _env(config_path: str) -> Env:
    # verl builds one tool object per tool: they share the registry (loading compiles every module).
    if config_path not in _ENVS:
        _ENVS[config_path] = Env(config_path)
    return _ENVS[config_path]


def _tool_call_text(calls: List[Dict[str, Any]]) -> str:
    lines = "\n".join(json.dumps({"name": c["name"], "parameters": c["parameters"]}) for c in calls)
    return f"<tool_call>\n{lines}\n</tool_call>"


class ToolenvTool(BaseTool):
    """One registered tool as a verl tool; see the module's documentation. ``config``:
    ``config_path`` (default ``env/config.toml``), ``name`` (the tool, needed only without a
    ``tool_schema``), ``variant`` (ToolRL's, for ``calc_reward``)."""

    def __init__(self, config: Dict[str, Any], tool_schema: Optional[Any] = None):
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        self.config_path = str(config.get("config_path", "env/config.toml"))
        self.env = _env(self.config_path)
        self.variant = str(config.get("variant", "default"))
        self._instances: Dict[str, Dict[str, Any]] = {}
        super().__init__(config, tool_schema)
        known = {t["function"]["name"] for t in self.env.tools()}
        if self.name not in known:
            raise ValueError(f"tool_schema names `{self.name}`, which {self.config_path} does not register "
                             f"(it registers: {', '.join(sorted(known))})")

    def get_openai_tool_schema(self) -> Any:
        if getattr(self, "tool_schema", None) is not None:
            return self.tool_schema
        name = self.config.get("name")
        for tool in self.env.tools():
            if tool["function"]["name"] == name:
                return OpenAIFunctionToolSchema.model_validate(verl_tool_schema(tool))
        raise ValueError(f"a ToolenvTool without tool_schema needs config.name, one of the tools of "
                         f"{self.config_path}; got {name!r}")

    async def create(self, instance_id: Optional[str] = None, **kwargs: Any) -> Tuple[str, Any]:
        if instance_id is None:
            instance_id = uuid.uuid4().hex
        create_kwargs = {**(kwargs.get("create_kwargs") or {}),
                         **{k: v for k, v in kwargs.items() if k != "create_kwargs"}}
        self._instances[instance_id] = {"kwargs": create_kwargs, "calls": [], "session": None}
        return instance_id, ToolResponse()

    def _session(self, instance: Dict[str, Any], agent_data: Any) -> Any:
        seed = instance["kwargs"].get("seed")
        extra = getattr(agent_data, "extra_fields", None)
        if isinstance(extra, dict):
            key = f"toolenv.session:{self.config_path}"
            if key not in extra:
                extra[key] = self.env.session(id=getattr(agent_data, "request_id", None), seed=seed)
            return extra[key]
        if instance["session"] is None:
            instance["session"] = self.env.session(seed=seed)
        return instance["session"]

    @rollout_trace_op
    async def execute(self, instance_id: str, parameters: Any, **kwargs: Any) -> Tuple[Any, float, dict]:
        instance = self._instances.get(instance_id)
        if instance is None:
            raise KeyError(f"no instance `{instance_id}` of tool `{self.name}`: create() it first")
        session = self._session(instance, kwargs.get("agent_data"))
        try:
            result = await asyncio.to_thread(session.call, self.name, parameters)
        except (TypeError, ValueError) as e:  # arguments that are not a JSON object: the model's doing
            return ToolResponse(text=json.dumps({"error": f"arguments: {e}"})), 0.0, \
                {"fuel": 0, "us": 0, "error_kind": "parse"}
        instance["calls"].append({"name": self.name, "parameters": parameters if isinstance(parameters, dict)
                                  else json.loads(parameters)})
        metrics = {"fuel": result.fuel, "us": result.us,
                   "error_kind": result.error.kind if result.error is not None else None}
        text = json.dumps({"error": result.error.message}) if result.error is not None else json.dumps(result.ok)
        return ToolResponse(text=text), 0.0, metrics

    async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
        instance = self._instances.get(instance_id)
        if instance is None:
            raise KeyError(f"no instance `{instance_id}` of tool `{self.name}`")
        truth = instance["kwargs"].get("ground_truth")
        if not truth or not instance["calls"]:
            return 0.0
        return reward(_tool_call_text(instance["calls"]), truth, int(kwargs.get("step", 0)), self.variant).correctness

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        instance = self._instances.pop(instance_id, None)
        if instance is not None and instance["session"] is not None:
            instance["session"].close()

"""verl with toolenv: the tool config ``toolenv tools --verl-config`` writes, loaded the way
verl's tool registry loads it, and a trajectory's calls made the way verl's tool agent loop makes
them (create, execute with the trajectory's agent data, release, around every call). Runs
without verl (the adapter falls back to verl's interface); with verl installed the same file
drives verl's own classes. In a verl run, point
``actor_rollout_ref.rollout.multi_turn.tool_config_path`` at the YAML and
``custom_reward_function.path`` at ``toolenv/adapters/verl.py`` (``name: compute_score``)::

    toolenv tools --verl-config > tools.yaml
    python env/python/examples/verl_tools.py tools.yaml
"""

from __future__ import annotations

import asyncio
import importlib
import sys

import yaml

from toolenv.adapters.verl import HAVE_VERL, OpenAIFunctionToolSchema, compute_score


class Trajectory:
    """What verl's AgentData gives a tool: the request id and a dict for session data."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.extra_fields: dict = {}


async def call(tools: dict, name: str, arguments: dict, trajectory: Trajectory) -> str:
    tool = tools[name]
    instance_id, _ = await tool.create(create_kwargs={})
    try:
        response, step_reward, metrics = await tool.execute(instance_id, arguments, agent_data=trajectory)
    finally:
        await tool.release(instance_id)
    return f"{name}({arguments}) -> {response.text}  {metrics}"


async def main(path: str) -> None:
    tools = {}
    for entry in yaml.safe_load(open(path))["tools"]:
        module, _, cls = entry["class_name"].rpartition(".")
        schema = OpenAIFunctionToolSchema.model_validate(entry["tool_schema"])
        tool = getattr(importlib.import_module(module), cls)(config=entry["config"], tool_schema=schema)
        tools[tool.name] = tool
    print(f"verl installed: {HAVE_VERL}; tools: {', '.join(tools)}")
    trajectory = Trajectory("request-0")
    for name, arguments in [("kv_store", {"op": "set", "key": "h", "value": 330}),
                            ("kv_store", {"op": "get", "key": "h"}),  # the same trajectory's state
                            ("calculator", {"expression": "330 * 1.5"}),
                            ("calculator", {"expresion": "1"})]:  # an error, as text
        print(await call(tools, name, arguments, trajectory))
    turn = '<think>x</think>\n<tool_call>\n{"name": "calculator", "parameters": {"expression": "330*1.5"}}\n</tool_call>'
    print("compute_score:", compute_score("toolenv", turn, turn))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "tools.yaml"))

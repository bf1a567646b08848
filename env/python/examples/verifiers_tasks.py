"""verifiers (v1) with toolenv: the repository's tasks as a taskset, their tools served over
MCP from toolenv's sandbox, and ToolRL's reward scoring a rollout. A verifiers run launches the
toolset per rollout and a harness drives the model; here an in-memory MCP client stands in for
the harness and plays a task's reference solution::

    python env/python/examples/verifiers_tasks.py
"""

from __future__ import annotations

import asyncio
import json

import verifiers.v1 as vf
from mcp.client import Client
from mcp.server.mcpserver import MCPServer
from verifiers.v1.trace import AgentInfo, TraceTask

from toolenv.adapters.verifiers import ToolenvTaskConfig, ToolenvTaskset, ToolenvTasksetConfig, ToolenvToolset


async def main() -> None:
    taskset = ToolenvTaskset(ToolenvTasksetConfig(task=ToolenvTaskConfig()))
    task = next(iter(taskset.take(1)))
    print("task:", task.data.id, task.data.prompt)

    toolset = ToolenvToolset(task.config.toolset)
    await toolset.setup()
    await toolset.setup_task(task)
    server = MCPServer("toolenv")
    toolset.register(server)
    reference = json.loads(task.data.ground_truth.split("<tool_call>\n")[1].split("\n</tool_call>")[0])
    async with Client(server) as client:
        print("tools:", [t.name for t in (await client.list_tools()).tools])
        result = await client.call_tool(reference["name"], reference["parameters"])
        print("call:", reference, "->", result.content[0].text, "(error)" if result.is_error else "")

    messages = [vf.UserMessage(content=task.data.prompt),
                vf.AssistantMessage(content="<think>use the tool</think>", tool_calls=[vf.ToolCall(
                    id="1", name=reference["name"], arguments=json.dumps(reference["parameters"]))]),
                vf.ToolMessage(tool_call_id="1", content=result.content[0].text),
                vf.AssistantMessage(content=f"<response>{task.data.answer}</response>")]
    trace = vf.Trace(task=TraceTask(type=type(task).__name__, data=task.data),
                     agent=AgentInfo(config=vf.AgentConfig()),
                     nodes=[vf.MessageNode(message=m, sampled=m.role == "assistant", parent=i - 1 if i else None)
                            for i, m in enumerate(messages)])
    await task.score(trace)
    print("rewards:", {k: r.score for k, r in trace.rewards.items()}, "metrics:", trace.metrics)


if __name__ == "__main__":
    asyncio.run(main())

"""The Python package against the real registry, the real `toolenv` binary and a real `toolenv
serve` on loopback. Run: scripts/python.sh (builds the package into .venv-py, then pytest)."""

import asyncio
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

import toolenv
from toolenv import Client, Env, ToolError

REPO = Path(__file__).resolve().parents[3]
CONFIG = str(REPO / "env" / "config.toml")
TOOLS = ["calculator", "kv_store", "unit_convert"]


def toolenv_bin() -> str:
    for p in (os.environ.get("TOOLENV_BIN"), REPO / "target/release/toolenv", REPO / "target/debug/toolenv"):
        if p and Path(p).exists():
            return str(p)
    raise RuntimeError("build the toolenv binary first (cargo build -p toolenv)")


@pytest.fixture(scope="module")
def env():
    return Env(CONFIG, tools=TOOLS, max_turns=3)


@pytest.fixture(scope="module")
def server():
    p = subprocess.Popen([toolenv_bin(), "serve", "--config", CONFIG, "--addr", "127.0.0.1:0",
                          "--tools", ",".join(TOOLS), "--max-turns", "3"],
                         cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    url = line.split("listening on ")[1].split()[0]
    yield url
    p.terminate()
    p.wait(timeout=30)


def test_tools_are_the_registrys(env):
    out = subprocess.run([toolenv_bin(), "tools", "--json", "--config", CONFIG], capture_output=True,
                         text=True, check=True, cwd=REPO).stdout
    every = json.loads(out)
    tools = env.tools()
    assert [t["function"]["name"] for t in tools] == ["calculator", "unit_convert", "kv_store"]
    assert all(t in every for t in tools)


def test_calls_give_results_and_typed_errors(env):
    with env.session(seed=3) as s:
        assert s.seed == 3
        r = s.call("calculator", {"expression": "6*7"})
        assert r.ok == {"value": 42} and r.error is None and r.fuel > 0
        assert s.call("calculator", '{"expression": "1+1"}').ok == {"value": 2}
        assert s.call("kv_store", {"op": "set", "key": "k", "value": [1]}).ok == {"ok": True, "key": "k"}
        assert s.call("kv_store", {"op": "get", "key": "k"}).ok == {"key": "k", "value": [1]}
        assert s.call("nope", {}).error.kind == "unknown_tool"
        bad = s.call("calculator", {"expression": 5})
        assert bad.error.kind == "invalid_arguments" and "expression" in bad.error.message
        assert s.call("calculator", "[1, 2]").error == ToolError("parse", "arguments must be a JSON object, got an array")
    with env.session() as other:
        assert other.call("kv_store", {"op": "get", "key": "k"}).error.kind == "exit"


def test_bad_input_raises_with_what_and_where(env, tmp_path):
    with pytest.raises(OSError, match="no-such.toml"):
        Env(str(tmp_path / "no-such.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[sandbox]\nnope = 1\n")
    with pytest.raises(ValueError, match=r"bad.toml:2"):
        Env(str(bad))
    with pytest.raises(ValueError, match="registers no tool named `zzz`"):
        Env(CONFIG, tools=["zzz"])
    s = env.session()
    with pytest.raises(ValueError, match="arguments: not JSON: key must be a string at line 1 column 2"):
        s.call("calculator", "{oops")
    with pytest.raises(TypeError, match=r'arguments\["a"\]\[1\]: object is not JSON'):
        s.call("calculator", {"a": [1, object()]})
    with pytest.raises(TypeError, match="arguments must be a dict or a JSON string, got int"):
        s.call("calculator", 3)
    with pytest.raises(TypeError, match="name must be a str"):
        s.call(3, {})
    with pytest.raises(ValueError, match="ground_truth"):
        toolenv.reward("x", "<tool_call>\n{oops}\n</tool_call>")
    with pytest.raises(ValueError, match="variant"):
        toolenv.reward("x", "y", variant="nope")
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.call("calculator", {"expression": "1"})


STEPS = [
    '<think>set, get</think>\n<tool_call>\n{"name": "kv_store", "parameters": {"op": "set", "key": "x", "value": 1}}\n'
    '{"name": "kv_store", "parameters": {"op": "get", "key": "x"}}\nnot a call\n</tool_call>',
    '<think>calc</think>\n<tool_call>\n{"name": "calculator", "parameters": {"expression": "2+"}}\n</tool_call>',
    '<think>done</think>\n<response>1</response>',
]


def test_in_process_and_server_give_identical_answers(env, server):
    client = Client(server)
    assert client.tools() == env.tools()
    local, remote = env.session(seed=5), client.session(seed=5)
    calls = [("calculator", {"expression": "2^10"}), ("kv_store", {"op": "set", "key": "a", "value": "b"}),
             ("kv_store", {"op": "get", "key": "a"}), ("unit_convert", {"value": 1, "from": "km", "to": "m"}),
             ("nope", {}), ("calculator", "[1]")]
    for name, args in calls:
        a, b = local.call(name, args), remote.call(name, args)
        assert (a.ok, a.error) == (b.ok, b.error), name
    for text in STEPS:
        a, b = local.step(text), remote.step(text)
        assert a == b
    assert a.done and a.stop == "response"
    remote.close()
    assert client.reward(STEPS[0], STEPS[1]) == toolenv.reward(STEPS[0], STEPS[1])


def test_reward_equals_toolenv_reward_on_every_vector():
    lines = (REPO / "data/reward/vectors.jsonl").read_text().splitlines()
    items = [json.loads(l) for l in lines if l.strip()]
    out = subprocess.run([toolenv_bin(), "reward"], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, check=True, cwd=REPO).stdout
    expected = [json.loads(l) for l in out.splitlines()]
    got = toolenv.reward_batch(items)
    assert len(got) == len(expected) == len(items)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.__dict__ == e, i


def test_parse_turn():
    t = toolenv.parse_turn(STEPS[0])
    assert t.think == "set, get" and t.has_tool_call_block and t.response is None
    assert [c.get("name") for c in t.calls] == ["kv_store", "kv_store", None]
    assert "error" in t.calls[2] and t.calls[2]["line"] == 5
    assert toolenv.parse_turn("<think>x").issues == ["<think> is not closed by </think>"]


def test_eight_threads_lose_nothing(env):
    results = {}

    def work(k):
        s = env.session()
        results[k] = [s.call("calculator", {"expression": f"{k}*1000+{i}"}).ok["value"] for i in range(1000)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(8):
        assert results[k] == [k * 1000 + i for i in range(1000)]


def test_async_variants(env):
    async def main():
        s = env.session()
        rs = await asyncio.gather(*(s.acall("calculator", {"expression": f"{i}+1"}) for i in range(20)))
        st = await s.astep(STEPS[1])
        return rs, st

    rs, st = asyncio.run(main())
    assert [r.ok["value"] for r in rs] == list(range(1, 21))
    assert st.errors[0].kind == "exit" and st.observation.startswith("<obs>")


def test_trl_reward_function_has_trls_signature():
    from toolenv.adapters.trl import reward_function

    f = reward_function()
    assert f.__name__ == "toolrl_default"
    good = STEPS[1]
    completions = [good, [{"role": "assistant", "content": good}], "<response>x</response>"]
    scores = f(["p"] * 3, completions, ground_truth=[good, good, None])
    assert scores[0] == scores[1] == toolenv.reward(good, good).total
    assert scores[2] is None

    class State:
        global_step = 7

    g = reward_function("schedule", term="format")
    assert g(["p"], [good], ground_truth=[good], trainer_state=State()) == [toolenv.reward(good, good, 7, "schedule").format]
    with pytest.raises(KeyError, match="no `ground_truth` column"):
        f(["p"], [good], answer=[good])
    with pytest.raises(ValueError, match="nope"):
        reward_function("nope")


def test_verl_compute_score_has_verls_signature():
    from toolenv.adapters.verl import compute_score

    good = STEPS[1]
    s = compute_score("toolrl", good, good)
    r = toolenv.reward(good, good)
    assert s == {"score": r.total, "format": r.format, "correctness": r.correctness, "length": r.length}
    s = compute_score("toolrl", good, good, {"variant": "schedule", "step": 3})
    assert s["score"] == toolenv.reward(good, good, 3, "schedule").total


def test_skyrl_env_is_a_real_base_text_env():
    import skyrl_gym
    from skyrl_gym.envs.base_text_env import BaseTextEnv

    from toolenv.adapters import skyrl

    skyrl.register()
    truth = STEPS[1]
    env = skyrl_gym.make("toolenv", env_config={"config_path": CONFIG, "tools": TOOLS, "max_turns": 3},
                         extras={"reward_spec": {"ground_truth": truth}})
    assert isinstance(env, BaseTextEnv)
    prompt, _ = env.init([{"role": "user", "content": "q"}])
    out = env.step(STEPS[0])
    assert not out["done"] and out["observations"][0]["role"] == "user"
    assert out["observations"][0]["content"].startswith("<obs>")
    assert out["reward"] == toolenv.reward(STEPS[0], truth).total
    out = env.step(STEPS[2])
    assert out["done"] and out["observations"] == [] and out["metadata"]["stop"] == "response"
    assert env.get_metrics() == {"tool_calls": 3, "tool_errors": 1, "turns": 2}
    env.close()


# --- TRL's environment_factory --------------------------------------------------------------


def trl_tool_methods(instance):
    """The methods TRL's GRPOTrainer exposes as tools: it lists the class's functions with
    inspect.getmembers(type(env), inspect.isfunction) and skips reset, get_reward and _names."""
    import inspect

    return {name: getattr(instance, name) for name, _ in inspect.getmembers(type(instance), inspect.isfunction)
            if name not in ("reset", "get_reward") and not name.startswith("_")}


def test_trl_environment_methods_are_the_registrys_tools_as_transformers_reads_them():
    from transformers.utils import get_json_schema

    from toolenv.adapters.trl import environment_factory

    Environment = environment_factory(CONFIG)
    env = Environment()
    methods = trl_tool_methods(env)
    registry = {t["function"]["name"]: t["function"] for t in Env(CONFIG).tools()}
    assert set(methods) == set(registry) == set(Environment.tool_names)
    for name, method in methods.items():
        # transformers' get_json_schema is what TRL renders each method through.
        schema = get_json_schema(method)["function"]
        tool = registry[name]
        assert schema["name"] == name and schema["description"] == " ".join(tool["description"].split())
        props = tool["parameters"]["properties"]
        py = {("from_" if k == "from" else k): v for k, v in props.items()}
        assert list(schema["parameters"]["properties"]) == list(py)
        assert schema["parameters"].get("required", []) == [
            "from_" if r == "from" else r for r in tool["parameters"].get("required", [])]
        for k, prop in py.items():
            got = schema["parameters"]["properties"][k]
            assert got["description"].startswith(" ".join(prop["description"].split())), (name, k)
            if "type" in prop:
                assert got["type"] == prop["type"], (name, k)
            if "enum" in prop:
                assert got["enum"] == prop["enum"]
        assert schema["return"]["type"] == "string"
    kv = get_json_schema(methods["kv_store"])["function"]["parameters"]["properties"]
    assert "type" not in kv["value"]  # any JSON value: no type claimed


def test_trl_environment_runs_calls_in_a_session_per_reset_and_errors_are_text():
    from toolenv.adapters.trl import environment_factory

    Environment = environment_factory(CONFIG, tools=TOOLS)
    env = Environment()
    with pytest.raises(RuntimeError, match="before reset"):
        env.calculator(expression="1")
    assert env.reset(prompt=[{"role": "user", "content": "q"}], ground_truth="x") is None
    assert json.loads(env.calculator(expression="6*7")) == {"value": 42}
    # `from` is a Python keyword: the parameter is `from_`, and the tool gets `from`.
    assert json.loads(env.unit_convert(value=1, from_="km", to="m"))["value"] == 1000
    assert json.loads(env.kv_store(op="set", key="k", value=[1])) == {"ok": True, "key": "k"}
    assert json.loads(env.kv_store(op="get", key="k")) == {"key": "k", "value": [1]}
    # What the model got wrong comes back as {"error": ...}: a misspelt argument reaches the
    # sandbox (the method takes any keyword) and its schema names it.
    bad = json.loads(env.calculator(expresion="1"))
    assert "expresion" in bad["error"] and "expression" in bad["error"]
    assert "error" in json.loads(env.calculator(expression="1/0"))
    assert (env.calls, env.errors) == (6, 2)
    other = Environment()
    other.reset(seed=4)
    assert "error" in json.loads(other.kv_store(op="get", key="k"))  # sessions are separate
    env.reset()
    assert "error" in json.loads(env.kv_store(op="get", key="k"))  # reset starts empty
    assert (env.calls, env.errors) == (1, 1)
    assert (Environment.total_calls, Environment.total_errors) == (8, 4)
    with pytest.raises(TypeError, match="seed"):
        env.reset(seed="7")
    assert Environment.python_arguments("unit_convert", {"value": 1, "from": "km"}) == {"value": 1, "from_": "km"}
    with pytest.raises(KeyError, match="nope"):
        Environment.python_arguments("nope", {})


def test_trl_environment_factory_rejects_names_that_cannot_be_methods(tmp_path):
    from toolenv.adapters import trl

    bad = {"type": "function", "function": {"name": "reset", "description": "d", "parameters": {}}}
    with pytest.raises(ValueError, match="`reset` cannot be a method"):
        trl._method("E", bad)
    bad = {"type": "function", "function": {"name": "t", "description": "d", "parameters": {
        "type": "object", "properties": {"a-b": {"type": "string"}}}}}
    with pytest.raises(ValueError, match="`a-b` is not a Python identifier"):
        trl._method("E", bad)
    with pytest.raises(ValueError, match="identifier"):
        trl.environment_factory(CONFIG, name="not a name")


def test_trl_type_hints_and_docstrings_from_json_schema():
    from typing import Any, Dict, List, Literal, Optional

    from toolenv.adapters.trl import _one_line, _type_hint

    assert _type_hint({"type": "string"}) is str
    assert _type_hint({"type": "number"}) is float
    assert _type_hint({"type": ["string", "null"]}) == Optional[str]
    assert _type_hint({"enum": ["a", "b"]}) == Literal["a", "b"]
    assert _type_hint({"type": "array", "items": {"type": "integer"}}) == List[int]
    assert _type_hint({"type": "object"}) == Dict[str, Any]
    assert _type_hint({}) is Any
    # Section words would end the description early in transformers' parser.
    assert _one_line("Does x.\n  Returns: y") == "Does x. Returns : y"


def test_trl_reward_reads_tool_calls_of_conversational_completions():
    from toolenv.adapters.trl import completion_text, reward_function

    truth = STEPS[1]
    call = {"type": "function", "function": {"name": "calculator", "arguments": {"expression": "2+"}}}
    completion = [{"role": "assistant", "content": "<think>calc</think>", "tool_calls": [call]},
                  {"role": "tool", "name": "calculator", "content": "{}"}]
    assert completion_text(completion) == truth
    # OpenAI-style arguments as a JSON string read the same.
    as_text = {"type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+"}'}}
    assert completion_text([{"role": "assistant", "content": "<think>calc</think>", "tool_calls": [as_text]}]) == truth
    assert reward_function()(["p"], [completion], ground_truth=[truth]) == [toolenv.reward(truth, truth).total]
    # A call, its result, then an answer: the first assistant turn is what ToolRL's reference
    # describes; turns="all" scores them joined.
    answered = completion + [{"role": "assistant", "content": "<response>2</response>"}]
    assert completion_text(answered, "first") == truth
    assert completion_text(answered) == truth + "\n<response>2</response>"
    assert reward_function()(["p"], [answered], ground_truth=[truth]) == [toolenv.reward(truth, truth).total]
    assert reward_function(turns="all")(["p"], [answered], ground_truth=[truth]) == [
        toolenv.reward(truth + "\n<response>2</response>", truth).total]
    with pytest.raises(ValueError, match="turns"):
        reward_function(turns="last")
    with pytest.raises(TypeError, match="tool call"):
        completion_text([{"role": "assistant", "content": "", "tool_calls": ["calculator"]}])


# --- verl's BaseTool --------------------------------------------------------------------------


def verl_yaml():
    import yaml  # PyYAML: the YAML 1.1 parser under verl's OmegaConf.load

    out = subprocess.run([toolenv_bin(), "tools", "--verl-config", "--config", CONFIG], capture_output=True,
                         text=True, check=True, cwd=REPO).stdout
    return yaml.safe_load(out)


def test_verl_config_loads_into_tools_the_way_verl_builds_them():
    from toolenv.adapters.verl import OpenAIFunctionToolSchema, ToolenvTool, verl_tool_schema

    config = verl_yaml()
    tools = Env(CONFIG).tools()
    assert [e["tool_schema"]["function"]["name"] for e in config["tools"]] == [t["function"]["name"] for t in tools]
    built = []
    for entry, tool in zip(config["tools"], tools):
        # verl.tools.utils.tool_registry: importable class_name, config.type "native", the
        # schema validated by OpenAIFunctionToolSchema, then cls(config=..., tool_schema=...).
        module, _, cls = entry["class_name"].rpartition(".")
        assert getattr(__import__(module, fromlist=[cls]), cls) is ToolenvTool
        assert entry["config"] == {"type": "native", "config_path": str(Path(CONFIG).resolve())}
        # The Rust and Python reductions of the schema agree.
        assert entry["tool_schema"] == verl_tool_schema(tool)
        schema = OpenAIFunctionToolSchema.model_validate(entry["tool_schema"])
        built.append(ToolenvTool(config=entry["config"], tool_schema=schema))
    assert [t.name for t in built] == [t["function"]["name"] for t in tools]
    kv = next(e for e in config["tools"] if e["tool_schema"]["function"]["name"] == "kv_store")
    assert kv["tool_schema"]["function"]["parameters"]["properties"]["value"]["type"] == "any"
    # Without a tool_schema, the tool takes it from the registry (BaseTool asks for it).
    t = ToolenvTool({"type": "native", "config_path": CONFIG, "name": "calculator"})
    assert t.tool_schema.model_dump() == built[0].tool_schema.model_dump()
    with pytest.raises(ValueError, match="needs config.name"):
        ToolenvTool({"type": "native", "config_path": CONFIG})
    other = dict(entry["tool_schema"], function=dict(entry["tool_schema"]["function"], name="zzz"))
    with pytest.raises(ValueError, match="does not register"):
        ToolenvTool(entry["config"], OpenAIFunctionToolSchema.model_validate(other))
    # verl's models reject a property without a type: what the reduction exists for.
    raw = {"type": "function", "function": kv["tool_schema"]["function"] | {"parameters": {
        "type": "object", "properties": {"value": {"description": "any"}}, "required": []}}}
    with pytest.raises(Exception, match="type"):
        OpenAIFunctionToolSchema.model_validate(raw)


class AgentData:
    """The fields of verl's AgentData that a tool sees (verl.experimental.agent_loop)."""

    def __init__(self, request_id):
        self.request_id = request_id
        self.extra_fields = {}


def test_verl_tool_keeps_a_session_per_trajectory_across_create_release():
    from toolenv.adapters.verl import OpenAIFunctionToolSchema, ToolenvTool

    config = verl_yaml()["tools"]
    tools = {e["tool_schema"]["function"]["name"]: ToolenvTool(
        e["config"], OpenAIFunctionToolSchema.model_validate(e["tool_schema"])) for e in config}
    kv = tools["kv_store"]

    async def call(tool, args, agent_data):
        # verl's ToolAgentLoop._call_tool: create, execute with agent_data, release, per call.
        iid, _ = await tool.create(create_kwargs={})
        try:
            return await tool.execute(iid, args, agent_data=agent_data)
        finally:
            await tool.release(iid)

    async def main():
        a, b = AgentData("traj-a"), AgentData("traj-b")
        r1 = await call(kv, {"op": "set", "key": "x", "value": 5}, a)
        r2 = await call(kv, {"op": "get", "key": "x"}, a)
        r3 = await call(kv, {"op": "get", "key": "x"}, b)
        r4 = await call(tools["calculator"], '{"expression": "6*7"}', a)
        r5 = await call(tools["calculator"], {"expresion": "1"}, a)
        r6 = await call(tools["calculator"], "{oops", a)
        return a, (r1, r2, r3, r4, r5, r6)

    a, (r1, r2, r3, r4, r5, r6) = asyncio.run(main())
    text = lambda r: json.loads(r[0].text)  # noqa: E731
    assert text(r1) == {"ok": True, "key": "x"} and r1[1] == 0.0 and r1[2]["error_kind"] is None
    assert text(r2) == {"key": "x", "value": 5}  # the same trajectory: the same session
    assert "error" in text(r3) and r3[2]["error_kind"] == "exit"  # another trajectory: its own
    assert text(r4) == {"value": 42} and r4[2]["fuel"] > 0
    assert "expresion" in text(r5)["error"] and r5[2]["error_kind"] == "invalid_arguments"
    assert "not JSON" in text(r6)["error"] and r6[2]["error_kind"] == "parse"
    assert list(a.extra_fields) == [f"toolenv.session:{str(Path(CONFIG).resolve())}"]
    assert kv._instances == {} and tools["calculator"]._instances == {}  # every release freed


def test_verl_tool_without_agent_data_keys_the_session_by_instance_and_calc_reward_is_toolrl():
    from toolenv.adapters.verl import OpenAIFunctionToolSchema, ToolenvTool

    entry = next(e for e in verl_yaml()["tools"] if e["tool_schema"]["function"]["name"] == "calculator")
    calc = ToolenvTool(entry["config"], OpenAIFunctionToolSchema.model_validate(entry["tool_schema"]))
    kv_entry = next(e for e in verl_yaml()["tools"] if e["tool_schema"]["function"]["name"] == "kv_store")
    kv = ToolenvTool(kv_entry["config"], OpenAIFunctionToolSchema.model_validate(kv_entry["tool_schema"]))
    truth = STEPS[1]

    async def main():
        # The older rollout: create(request_id) once per trajectory, release at its end.
        iid, response = await calc.create("req-1", ground_truth=truth)
        assert iid == "req-1" and response.text is None
        assert await calc.calc_reward(iid) == 0.0  # no call yet
        await calc.execute(iid, {"expression": "2+"})
        score = await calc.calc_reward(iid)
        await calc.release(iid)
        kid, _ = await kv.create("req-2")
        await kv.execute(kid, {"op": "set", "key": "y", "value": 1})
        got = await kv.execute(kid, {"op": "get", "key": "y"})
        session = kv._instances[kid]["session"]
        await kv.release(kid)
        with pytest.raises(KeyError, match="create"):
            await kv.execute(kid, {"op": "list"})
        return score, got, session

    score, got, session = asyncio.run(main())
    assert score == toolenv.reward('<tool_call>\n{"name": "calculator", "parameters": {"expression": "2+"}}\n'
                                   "</tool_call>", truth).correctness
    assert score > 0
    assert json.loads(got[0].text) == {"key": "y", "value": 1}
    with pytest.raises(ValueError, match="closed"):
        session.call("kv_store", {"op": "list"})  # release closed the instance's session


# --- verifiers ------------------------------------------------------------------------------


def test_verifiers_toolset_serves_the_registry_over_mcp_with_errors_as_text():
    from mcp.client import Client
    from mcp.server.mcpserver import MCPServer

    import verifiers.v1 as vf
    from toolenv.adapters.verifiers import ToolenvToolset, ToolenvToolsetConfig

    toolset = ToolenvToolset(ToolenvToolsetConfig(config_path=CONFIG, tools=TOOLS))
    assert isinstance(toolset, vf.Toolset)

    async def main():
        await toolset.setup()
        server = MCPServer("toolenv")
        toolset.register(server)
        async with Client(server) as client:  # the MCP protocol, in memory
            listed = (await client.list_tools()).tools
            results = [await client.call_tool(name, args) for name, args in [
                ("calculator", {"expression": "6*7"}), ("kv_store", {"op": "set", "key": "a", "value": 1}),
                ("kv_store", {"op": "get", "key": "a"}), ("calculator", {"expresion": "1"}), ("nope", {})]]
        first = toolset.session
        class Data:
            seed = 9
        class Task:
            data = Data()
        await toolset.setup_task(Task())
        return listed, results, first

    listed, results, first = asyncio.run(main())
    assert [(t.name, t.input_schema) for t in listed] == [
        (t["function"]["name"], t["function"]["parameters"]) for t in Env(CONFIG, tools=TOOLS).tools()]
    ok, setr, getr, bad, unknown = results
    assert not ok.is_error and json.loads(ok.content[0].text) == {"value": 42}
    assert json.loads(getr.content[0].text) == {"key": "a", "value": 1}
    assert bad.is_error and "expresion" in bad.content[0].text
    assert unknown.is_error and "unknown tool `nope`" in unknown.content[0].text
    assert (toolset.calls, toolset.errors) == (5, 2)
    assert toolset.session.seed == 9
    with pytest.raises(ValueError, match="closed"):
        first.call("calculator", {"expression": "1"})  # the task's session replaced the first


def verifiers_trace(data, messages):
    import verifiers.v1 as vf
    from verifiers.v1.trace import AgentInfo, TraceTask

    nodes = [vf.MessageNode(message=m, sampled=m.role == "assistant", parent=i - 1 if i else None)
             for i, m in enumerate(messages)]
    return vf.Trace(task=TraceTask(type="ToolenvTask", data=data), agent=AgentInfo(config=vf.AgentConfig()),
                    nodes=nodes)


def test_verifiers_taskset_and_task_score_toolrl_on_a_real_trace(tmp_path):
    import verifiers.v1 as vf
    from toolenv.adapters.verifiers import (ToolenvTask, ToolenvTaskConfig, ToolenvTaskset,
                                            ToolenvTasksetConfig, ToolenvToolset, trace_text)

    tasks_path = REPO / "env/data/tasks/train.jsonl"
    taskset = ToolenvTaskset(ToolenvTasksetConfig(path=str(tasks_path)))
    assert isinstance(taskset, vf.Taskset) and ToolenvTaskset.task_type() is ToolenvTask
    tasks = list(taskset.take(3))
    first = json.loads(tasks_path.read_text().splitlines()[0])
    assert [t.data.idx for t in tasks] == [0, 1, 2] and tasks[0].data.id == first["id"]
    assert tasks[0].data.prompt == first["question"] and tasks[0].data.answer == first["answer"]
    call = first["solution"][0][0]
    assert tasks[0].data.ground_truth == (
        f'<think></think>\n<tool_call>\n{json.dumps({"name": call["name"], "parameters": call["parameters"]})}'
        "\n</tool_call>")
    assert [type(s) for s in ToolenvTask.toolsets(ToolenvTaskConfig())] == [ToolenvToolset]

    task = tasks[0]
    messages = [vf.UserMessage(content=task.data.prompt),
                vf.AssistantMessage(content="<think>compute</think>", tool_calls=[
                    vf.ToolCall(id="c1", name=call["name"], arguments=json.dumps(call["parameters"]))]),
                vf.ToolMessage(tool_call_id="c1", content="{}"),
                vf.AssistantMessage(content=f"<response>{first['answer']}</response>")]
    trace = verifiers_trace(task.data, messages)
    text = trace_text(trace)
    assert text.startswith("<think>compute</think>\n<tool_call>\n") and text.endswith("</response>")
    first_turn = trace_text(trace, "first")
    assert first_turn == text.split("\n<response>")[0]
    asyncio.run(task.score(trace))
    # ToolRL's reference is the task's first calling turn: the first assistant turn is scored
    # (with the answer turn joined on, the format term would fail).
    assert trace.rewards["toolrl"].score == toolenv.reward(first_turn, task.data.ground_truth).total
    assert trace.rewards["toolrl"].score > toolenv.reward(text, task.data.ground_truth).total
    assert trace.metrics == {"tool_calls": 1.0}

    # The reward plugged by import path into a task config, as a verifiers user would.
    plugged = tasks[1].__class__(tasks[1].data, ToolenvTaskConfig(
        rewards={"toolrl_plugged": vf.RewardFunctionConfig(fn="toolenv.adapters.verifiers:toolrl_reward",
                                                           weight=0.5)}))
    wrong = verifiers_trace(plugged.data, [vf.UserMessage(content="q"), vf.AssistantMessage(content="no idea")])
    asyncio.run(plugged.score(wrong))
    expected = toolenv.reward("no idea", plugged.data.ground_truth).total
    assert wrong.rewards["toolrl_plugged"].score == wrong.rewards["toolrl"].score == expected
    assert wrong.rewards["toolrl_plugged"].weight == 0.5

    bad = tmp_path / "bad-tasks.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"bad-tasks.jsonl:1: not an executable task"):
        list(ToolenvTaskset(ToolenvTasksetConfig(path=str(bad))))


def test_examples_run(tmp_path):
    """The verl, SkyRL and verifiers examples the README links run as written (the TRL one needs
    torch: scripts/trl-e2e.sh runs it)."""
    import sys

    examples = REPO / "env/python/examples"
    config = tmp_path / "tools.yaml"
    config.write_text(subprocess.run([toolenv_bin(), "tools", "--verl-config", "--config", CONFIG],
                                     capture_output=True, text=True, check=True, cwd=REPO).stdout)
    run = lambda *a: subprocess.run([sys.executable, *a], capture_output=True, text=True, cwd=REPO,  # noqa: E731
                                    env=os.environ | {"PYTHONPATH": str(REPO / "env/python/python")})
    verl = run(str(examples / "verl_tools.py"), str(config))
    assert verl.returncode == 0, verl.stderr
    assert 'kv_store({\'op\': \'get\', \'key\': \'h\'}) -> {"key": "h", "value": 330}' in verl.stdout
    assert '-> {"error": "invalid arguments for `calculator`' in verl.stdout
    vf = run(str(examples / "verifiers_tasks.py"))
    assert vf.returncode == 0, vf.stderr
    assert '-> {"value": 8986}' in vf.stdout and "rewards: {'toolrl': 4.0}" in vf.stdout
    sky = run(str(examples / "skyrl_env.py"))
    assert sky.returncode == 0, sky.stderr
    assert '"results": {"value": 8986}' in sky.stdout and "reward: 4.0 done: False" in sky.stdout

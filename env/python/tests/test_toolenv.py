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

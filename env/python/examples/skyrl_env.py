"""SkyRL-gym with toolenv: ``skyrl_gym.make("toolenv", ...)`` is an episode in a toolenv session
whose ``step(action)`` runs the assistant turn's calls and whose reward is ToolRL's against the
ground truth. In a SkyRL run, ``skyrl.register()`` before the generator builds its environments
and ``environment.env_class: toolenv`` in its config::

    python env/python/examples/skyrl_env.py
"""

from __future__ import annotations

import skyrl_gym

from toolenv.adapters import skyrl

skyrl.register()
truth = '<think>multiply</think>\n<tool_call>\n{"name": "calculator", "parameters": {"expression": "88*94+714"}}\n</tool_call>'
env = skyrl_gym.make("toolenv", env_config={"config_path": "env/config.toml", "tools": ["calculator"]},
                     extras={"reward_spec": {"ground_truth": truth}})
env.init([{"role": "user", "content": "What is 88 * 94 + 714?"}])
out = env.step(truth)
print("observation:", out["observations"][0]["content"], "reward:", out["reward"], "done:", out["done"])
out = env.step("<think>done</think>\n<response>8986</response>")
print("reward:", out["reward"], "done:", out["done"], "metrics:", env.get_metrics())
env.close()

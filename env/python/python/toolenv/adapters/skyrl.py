"""toolenv as a SkyRL-gym environment: ``ToolenvEnv`` is a ``BaseTextEnv`` whose ``step(action)``
is the rollout loop's step in a toolenv session and whose reward is ToolRL's.

Register it and name it in SkyRL's config::

    from toolenv.adapters import skyrl
    skyrl.register()            # id "toolenv"
    env = skyrl_gym.make("toolenv", env_config={"config_path": "env/config.toml"},
                         extras={"reward_spec": {"ground_truth": reference_turn}})

``env_config`` keys: ``config_path`` (default ``env/config.toml``), ``tools`` (a list; default
all), ``max_turns`` (default 6), ``variant`` (ToolRL's, default ``default``). ``extras``:
``reward_spec.ground_truth`` (ToolRL's reference text; without it the reward is 0) and ``seed``.
Each step's reward is ToolRL's reward of that turn against the ground truth; the observation is
the ``<obs>`` text as a user message.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

from .. import Env, reward

__all__ = ["ToolenvEnv", "register"]

_ENVS: Dict[Tuple[str, Optional[Tuple[str, ...]], int], Env] = {}


def _env(config_path: str, tools: Optional[Tuple[str, ...]], max_turns: int) -> Env:
    # Loading a registry compiles or deserializes every tool: once per process, not per episode.
    key = (config_path, tools, max_turns)
    if key not in _ENVS:
        _ENVS[key] = Env(config_path, tools=list(tools) if tools else None, max_turns=max_turns)
    return _ENVS[key]


def _get(config: Any, key: str, default: Any) -> Any:
    if config is None:
        return default
    getter = getattr(config, "get", None)
    value = getter(key, default) if getter else getattr(config, key, default)
    return default if value is None else value


class ToolenvEnv(BaseTextEnv):
    """One episode in a toolenv session; see the module's documentation."""

    def __init__(self, env_config: Any = None, extras: Optional[Dict[str, Any]] = None):
        super().__init__()
        extras = extras or {}
        tools = _get(env_config, "tools", None)
        self.max_turns = int(_get(env_config, "max_turns", 6))
        self.variant = str(_get(env_config, "variant", "default"))
        self.env = _env(str(_get(env_config, "config_path", "env/config.toml")),
                        tuple(tools) if tools else None, self.max_turns)
        self.ground_truth = (extras.get("reward_spec") or {}).get("ground_truth")
        seed = extras.get("seed")
        self.session = self.env.session(seed=int(seed) if seed is not None else None)
        self.calls = 0
        self.tool_errors = 0
        self.closed = False

    def step(self, action: str) -> BaseTextEnvStepOutput:
        self.turns += 1
        step = self.session.step(action)
        done = step.done or self.turns >= self.max_turns
        self.calls += len(step.calls)
        self.tool_errors += sum(e is not None for e in step.errors)
        score = reward(action, self.ground_truth, 0, self.variant).total if self.ground_truth else 0.0
        observations = [] if done or step.observation is None else [{"role": "user", "content": step.observation}]
        if done:
            self.close()
        return BaseTextEnvStepOutput(observations=observations, reward=score, done=done,
                                     metadata={"stop": step.stop, "calls": len(step.calls)},
                                     postprocessed_action=None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.session.close()

    def get_metrics(self) -> Dict[str, Any]:
        return {"tool_calls": self.calls, "tool_errors": self.tool_errors, "turns": self.turns}


def register(id: str = "toolenv") -> None:
    """Registers ``ToolenvEnv`` with skyrl_gym under ``id``."""
    import skyrl_gym

    skyrl_gym.register(id=id, entry_point="toolenv.adapters.skyrl:ToolenvEnv")

"""Adapters that make toolenv look like each RL framework's own interface.

- ``toolenv.adapters.trl``: a reward function with TRL's signature and an ``environment_factory``
  whose methods are the registry's tools (``GRPOTrainer``).
- ``toolenv.adapters.verl``: a ``compute_score`` with verl's signature and ``ToolenvTool``, a verl
  ``BaseTool`` (its tool config from ``toolenv tools --verl-config``).
- ``toolenv.adapters.skyrl``: a SkyRL-gym ``BaseTextEnv`` (imports skyrl_gym).
- ``toolenv.adapters.verifiers``: a verifiers (v1) toolset, task and taskset, the closest
  equivalent of the old ``ToolEnv``, with ToolRL's reward (imports verifiers).

Runnable examples: ``env/python/examples/``.
"""

"""Adapters that make toolenv look like each RL framework's own interface.

- ``toolenv.adapters.trl``: a reward function with TRL's signature.
- ``toolenv.adapters.verl``: a ``compute_score`` with verl's signature.
- ``toolenv.adapters.skyrl``: a SkyRL-gym ``BaseTextEnv`` (imports skyrl_gym).

(TRL's ``environment_factory``, verl's ``BaseTool`` and verifiers' ``ToolEnv`` are not here yet.)
"""

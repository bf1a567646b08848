"""Adapters that make toolenv look like each RL framework's own interface.

- ``toolenv.adapters.trl``: a reward function with TRL's signature.
- ``toolenv.adapters.verl``: a ``compute_score`` with verl's signature.

(The framework classes — TRL's ``environment_factory``, verl's ``BaseTool``, SkyRL-gym's
``BaseTextEnv``, verifiers' ``ToolEnv`` — are not here yet: they are to be tested against the
frameworks' real classes.)
"""

"""Gymnasium environments that ship with offrl, registered on ``import offrl.envs``.

``import offrl`` alone stays light (no gymnasium, no torch: ``offrl --help`` is instant), so code that calls
``gym.make("offrl/…")`` first imports ``offrl.envs`` — or names the module in the id,
``gym.make("offrl.envs:offrl/MultimodalBandit-v0")``, which gymnasium imports for you. ``offrl.load_policy``
imports it too. (The OGBench environments are ogbench's own; ``offrl.envs.ogbench`` only wraps them.)
"""
from offrl.envs import bandit  # noqa: F401  (registers offrl/MultimodalBandit-v0)

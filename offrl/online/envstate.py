"""An environment's state mid-episode, as plain data, so an interrupted online phase continues exactly.

A checkpoint never pickles an environment (a file offrl loads must not be able to run code), so only
environments whose whole state is known are saved:

- **MuJoCo** (gymnasium's ``MujocoEnv``): the simulator's full integration state (``mj_getState`` with
  ``mjSTATE_INTEGRATION``: time, qpos, qvel, actuator activations, controls, warm-start accelerations …);
- environments that declare their state themselves: ``offrl_state()`` / ``load_offrl_state(state)`` on the
  unwrapped environment (offrl's bandit does);

plus, for every environment, its ``np_random`` generator and each wrapper's ``_elapsed_steps`` (TimeLimit).
Any other environment returns ``None``: the collector then starts a new episode there on resume (the
transitions of the interrupted episode stay in the replay) and says so — the run goes on correctly but is no
longer the uninterrupted one step for step.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: Format of the saved state, checked on load.
FORMAT = 1


def _wrappers(env: Any) -> list[Any]:
    chain = []
    while env is not None:
        chain.append(env)
        env = getattr(env, "env", None)
    return chain


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A numpy generator's state with its big integers as strings (plain, exactly restorable)."""
    def text(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: text(x) for k, x in v.items()}
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v
    return text(rng.bit_generator.state)


def _rng_restore(rng: np.random.Generator, state: dict[str, Any]) -> None:
    def number(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: number(x) for k, x in v.items()}
        return int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v
    rng.bit_generator.state = number(state)


def _is_mujoco(env: Any) -> bool:
    return hasattr(env, "model") and hasattr(env, "data") and type(env).__module__.startswith("gymnasium.envs.mujoco")


def env_state(env: Any) -> dict[str, Any] | None:
    """The state of ``env`` (a gymnasium env, wrappers included) as plain data, or None when it is not known."""
    base = env.unwrapped
    if _is_mujoco(base):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        sim = np.empty(mujoco.mj_stateSize(base.model, spec))
        mujoco.mj_getState(base.model, base.data, sim, spec)
        own: dict[str, Any] = {"kind": "mujoco", "sim": sim}
    elif callable(getattr(base, "offrl_state", None)) and callable(getattr(base, "load_offrl_state", None)):
        own = {"kind": "declared", "state": base.offrl_state()}
    else:
        return None
    elapsed = [int(w._elapsed_steps) if getattr(w, "_elapsed_steps", None) is not None else None
               for w in _wrappers(env)]
    return {"format": FORMAT, "env": own, "np_random": _rng_state(base.np_random), "elapsed_steps": elapsed}


def restore_env_state(env: Any, state: dict[str, Any]) -> None:
    """Put ``env`` (freshly made and reset) into ``state`` from :func:`env_state`."""
    if state.get("format") != FORMAT:
        raise ValueError(f"environment state format {state.get('format')!r} is not {FORMAT}")
    base = env.unwrapped
    own = state["env"]
    if own["kind"] == "mujoco":
        import mujoco

        if not _is_mujoco(base):
            raise ValueError("the saved state is a MuJoCo state but the environment is not a MuJoCo environment")
        sim = np.asarray(own["sim"], dtype=np.float64)
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        if sim.shape != (mujoco.mj_stateSize(base.model, spec),):
            raise ValueError(f"the saved MuJoCo state has {sim.size} numbers, this model's has "
                             f"{mujoco.mj_stateSize(base.model, spec)}")
        mujoco.mj_setState(base.model, base.data, sim, spec)
        mujoco.mj_forward(base.model, base.data)
    else:
        base.load_offrl_state(own["state"])
    _rng_restore(base.np_random, state["np_random"])
    chain = _wrappers(env)
    if len(chain) != len(state["elapsed_steps"]):
        raise ValueError("the environment's wrappers are not those the state was saved with")
    for w, n in zip(chain, state["elapsed_steps"]):
        if n is not None:
            w._elapsed_steps = int(n)

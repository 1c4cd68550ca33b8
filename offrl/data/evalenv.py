"""The evaluation environment recorded in a dataset, built quietly.

Minari stores the evaluation environment as a gymnasium ``EnvSpec``
(``eval_env_spec``, else the collection ``env_spec``);
``recover_environment(eval_env=True)`` rebuilds it. Two things around that call
are offrl's: (1) the spec's package is imported first with its import-time
chatter hidden -- gymnasium-robotics prints an unrelated Adroit notice, and
OGBench's renderer warns that GLFW has no DISPLAY on headless machines, both
harmless; (2) a missing package is an error naming the pip extra. A dataset
that records no environment still loads (training works); it says so in
``OfflineDataset.eval_unavailable``.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import warnings
from typing import Any, Iterator

import gymnasium as gym

from offrl.errors import DatasetError

#: Top-level package of an environment entry point -> the offrl extra that installs it.
EXTRAS: dict[str, str] = {"gymnasium_robotics": "maze", "ogbench": "ogbench"}

NO_ENV_REASON = (
    "its metadata records no environment (no env_spec or eval_env_spec), so there is nothing to evaluate in; "
    "training works, evaluation is skipped"
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Hide Python-level prints and warnings of environment packages (import notices, GLFW on headless hosts)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def import_env_package(entry_point: str | None, dataset_id: str) -> None:
    """Import the package behind ``module:Class`` quietly, or fail naming the extra that provides it."""
    if not entry_point or not isinstance(entry_point, str) or ":" not in entry_point:
        return
    module = entry_point.split(":", 1)[0]
    top = module.split(".", 1)[0]
    if top == "ogbench":
        from offrl.envs.ogbench import silence_harmless_warnings

        silence_harmless_warnings()  # GLFW without DISPLAY; float32 casts of its spaces
    try:
        with quiet():
            importlib.import_module(module)
            if top == "gymnasium_robotics":
                gym.register_envs(importlib.import_module(top))
    except ImportError:
        extra = EXTRAS.get(top)
        how = f"`pip install 'offrl[{extra}]'`" if extra else f"`pip install {top.replace('_', '-')}`"
        raise DatasetError(f"Evaluating '{dataset_id}' needs {top}: {how}.") from None


def _entry_point(raw_spec: Any) -> str | None:
    if isinstance(raw_spec, str):
        try:
            raw_spec = json.loads(raw_spec)
        except ValueError:
            return None
    return raw_spec.get("entry_point") if isinstance(raw_spec, dict) else None


class EnvFactory:
    """Builds the dataset's evaluation environment; a plain picklable object (spec + names), so evaluation
    can run in a worker process (:mod:`offrl.trainer.eval_worker`) as well as in the trainer's."""

    def __init__(self, spec: Any, entry_point: str | None, dataset_id: str, render_mode: str | None = None) -> None:
        self.spec = spec  # a gymnasium EnvSpec (what Minari's recover_environment would gym.make)
        self.entry_point = entry_point
        self.dataset_id = dataset_id
        self.kwargs = {"render_mode": render_mode} if render_mode else {}

    def __call__(self) -> gym.Env:
        import offrl.envs.bandit  # noqa: F401  (registers offrl's own environments)

        import_env_package(self.entry_point, self.dataset_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return gym.make(self.spec, **self.kwargs)
            except gym.error.Error:
                # a spec naming only an id (e.g. PointMaze_UMaze-v3): gymnasium-robotics registers those ids
                import_env_package("gymnasium_robotics:*", self.dataset_id)
                try:
                    return gym.make(self.spec, **self.kwargs)
                except Exception as e:
                    raise DatasetError(f"Could not create the evaluation environment of '{self.dataset_id}': {e}"
                                       ) from None
            except ImportError as e:
                top = (e.name or "").split(".", 1)[0]
                extra = EXTRAS.get(top)
                how = f" `pip install 'offrl[{extra}]'`." if extra else ""
                raise DatasetError(f"Evaluating '{self.dataset_id}' needs {top or e}.{how}") from None
            except Exception as e:
                raise DatasetError(f"Could not create the evaluation environment of '{self.dataset_id}': {e}"
                                   ) from None


def env_factory(ds: Any, meta: dict[str, Any], render_mode: str | None = None
                ) -> tuple[EnvFactory | None, str | None]:
    """(factory of the evaluation environment, None) or (None, why evaluation is unavailable).

    ``render_mode`` (e.g. ``"rgb_array"`` for videos) is passed to the environment when given."""
    raw = meta.get("eval_env_spec") or meta.get("env_spec")
    # Minari keeps the eval env spec on the dataset (``_eval_env_spec``), not on ``ds.spec``.
    spec = getattr(ds, "_eval_env_spec", None) or getattr(ds.spec, "env_spec", None) or getattr(ds, "env_spec", None)
    if not raw and spec is None:
        return None, NO_ENV_REASON
    if spec is None:
        return None, NO_ENV_REASON
    return EnvFactory(spec, _entry_point(raw), ds.spec.dataset_id, render_mode), None


class GymEnvFactory:
    """Builds a registered gymnasium environment by id (``eval.env``, ``offrl eval --env``, ``data import --env``).

    Picklable (an id and a render mode), so evaluation workers build it too. ``module:Env-v0`` ids import
    ``module`` first (gymnasium's syntax), which is how a package of your own registers its environments."""

    def __init__(self, env_id: str, render_mode: str | None = None) -> None:
        self.env_id = env_id
        self.kwargs = {"render_mode": render_mode} if render_mode else {}

    def __call__(self) -> gym.Env:
        import offrl.envs.bandit  # noqa: F401  (registers offrl's own environments)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return gym.make(self.env_id, **self.kwargs)
            except (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound,
                    gym.error.UnregisteredEnv) as e:
                from offrl.errors import suggest

                raise DatasetError(
                    f"No gymnasium environment '{self.env_id}' is registered ({e}).{suggest(self.env_id, gym.registry)}"
                    " Register yours with gymnasium.register (or name it as 'your_module:YourEnv-v0', which imports "
                    "your_module first).") from None
            except ImportError as e:
                top = (e.name or "").split(".", 1)[0]
                extra = EXTRAS.get(top)
                how = f" `pip install 'offrl[{extra}]'`." if extra else ""
                raise DatasetError(f"The environment '{self.env_id}' needs {top or e}.{how}") from None
            except DatasetError:
                raise
            except Exception as e:
                raise DatasetError(f"Could not create the environment '{self.env_id}': {type(e).__name__}: {e}"
                                   ) from None


def env_space_mismatch(env: gym.Env, obs_dim: int, act_low: Any, act_high: Any) -> str | None:
    """Why ``env`` cannot evaluate a policy of ``obs_dim`` flat observations and actions in [act_low, act_high]
    (the dataset's action bounds), or None when the spaces match."""
    import numpy as np

    from offrl.data.flatten import flat_dim

    try:
        env_obs = flat_dim(env.observation_space)
    except TypeError:
        return f"its observation space {env.observation_space} is not one offrl can flatten (Box, Dict, Discrete)"
    if env_obs != obs_dim:
        return (f"its observations have {env_obs} values ({env.observation_space}), the data's have {obs_dim}")
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        return f"its action space {space} is not continuous (Box)"
    low, high = np.asarray(act_low, np.float64).reshape(-1), np.asarray(act_high, np.float64).reshape(-1)
    if int(np.prod(space.shape)) != low.size:
        return f"its actions have {int(np.prod(space.shape))} values ({space}), the data's have {low.size}"
    env_low, env_high = np.asarray(space.low, np.float64).reshape(-1), np.asarray(space.high, np.float64).reshape(-1)
    if not (np.allclose(env_low, low, rtol=1e-5, atol=1e-6) and np.allclose(env_high, high, rtol=1e-5, atol=1e-6)):
        return (f"its action bounds are low {env_low.tolist()}, high {env_high.tolist()}; the data's are low "
                f"{low.tolist()}, high {high.tolist()} (actions are rescaled by the data's bounds)")
    return None


def checked_env_factory(env_id: str, obs_dim: int, act_low: Any, act_high: Any, what: str,
                        render_mode: str | None = None) -> GymEnvFactory:
    """A :class:`GymEnvFactory` for ``env_id`` after building the environment once and checking its spaces
    against ``what`` (e.g. "dataset 'me/x-v0'"): a mismatch is one error naming it."""
    factory = GymEnvFactory(env_id, render_mode)
    env = factory()
    try:
        why = env_space_mismatch(env, obs_dim, act_low, act_high)
    finally:
        env.close()
    if why:
        raise DatasetError(f"The environment '{env_id}' does not match {what}: {why}.")
    return factory

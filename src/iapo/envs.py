"""Gymnasium stand-ins for the paper's ten MuJoCo tasks: seeding, action scaling, exact restore."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.wrappers import Autoreset, OrderEnforcing, PassiveEnvChecker, TimeLimit

__all__ = [
    "GYM_ALIASES",
    "PAPER_ENVS",
    "EnvSpec",
    "EnvState",
    "action_bounds",
    "env_dims",
    "get_qpos_qvel",
    "get_spec",
    "get_state",
    "make_env",
    "paper_name",
    "scale_action",
    "set_state",
]

# Humanoid-v5 constructor kwargs that give the MBPO-style 45-dim observation (qpos[2:], qvel).
_HUMANOID_TRUNCATED = {
    "include_cinert_in_observation": False,
    "include_cvel_in_observation": False,
    "include_qfrc_actuator_in_observation": False,
    "include_cfrc_ext_in_observation": False,
}


@dataclass(frozen=True)
class EnvSpec:
    """How one of the paper's -v2 tasks is built with gymnasium.

    ``kwargs`` always go to ``gym.make``; ``truncated_kwargs`` are added when
    ``truncated_obs=True`` (empty for tasks without an MBPO-style truncated observation).
    """

    paper_name: str
    gym_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    truncated_kwargs: dict[str, Any] = field(default_factory=dict)


_SPECS = (
    EnvSpec("Hopper-v2", "Hopper-v5", note="v5 gives no healthy reward on the terminating step."),
    EnvSpec("HalfCheetah-v2", "HalfCheetah-v5", note="Same model, reward and 17-dim obs as v2."),
    # Walker2d-v5 changed the model: right-foot friction 0.9 -> 1.9 (v2/v4 have 0.9/1.9).
    # We keep the -v5 env code but load the v2/v4 model file shipped with gymnasium.
    EnvSpec(
        "Walker2d-v2",
        "Walker2d-v5",
        kwargs={"xml_file": "walker2d.xml"},
        note="v5 code, v2 model (feet friction 0.9/1.9); no healthy reward on the last step.",
    ),
    EnvSpec(
        "Ant-v2",
        "Ant-v5",
        note="Default obs 105 (v2: 111, worldbody cfrc_ext dropped); truncated 27 as in MBPO.",
        truncated_kwargs={"include_cfrc_ext_in_observation": False},
    ),
    EnvSpec(
        "Humanoid-v2",
        "Humanoid-v5",
        note="Default obs 348 (v2: 376, always-zero entries dropped); truncated 45 as in MBPO.",
        truncated_kwargs=_HUMANOID_TRUNCATED,
    ),
    EnvSpec("InvertedPendulum-v2", "InvertedPendulum-v5", note="No reward on the failing step."),
    EnvSpec(
        "InvertedDoublePendulum-v2",
        "InvertedDoublePendulum-v5",
        note="Obs 9 (v2: 11, two always-zero constraint forces dropped).",
    ),
    EnvSpec(
        "Reacher-v2",
        "Reacher-v5",
        note="Obs 10 (v2: 11, always-zero z dropped); distance reward after the step; 50 steps.",
    ),
    EnvSpec("Swimmer-v2", "Swimmer-v5", note="Same model, reward and 8-dim obs as v2."),
    EnvSpec(
        "HumanoidStandup-v2",
        "HumanoidStandup-v5",
        note="Obs 348 (v2: 376, always-zero entries dropped); no truncated variant in the paper.",
    ),
)

PAPER_ENVS: dict[str, EnvSpec] = {s.paper_name: s for s in _SPECS}
GYM_ALIASES: dict[str, str] = {s.gym_id: s.paper_name for s in _SPECS}
"""Gymnasium's ID of each task → the paper's name for it (`iapo envs` prints the pairs)."""


def paper_name(name: str) -> str:
    """The paper's name of a task given by either name (Hopper-v5 → Hopper-v2); any other name is
    returned as it is, for the caller's check to reject with the list of names."""
    return GYM_ALIASES.get(name, name)


def get_spec(name: str) -> EnvSpec:
    """Return the EnvSpec of a task (paper name or gymnasium ID), or raise ValueError listing both."""
    try:
        return PAPER_ENVS[paper_name(name)]
    except KeyError:
        allowed = ", ".join(PAPER_ENVS)
        raise ValueError(f"unknown environment {name!r}; allowed names: {allowed} "
                         f"(or their gymnasium IDs: {', '.join(GYM_ALIASES)})") from None


def _make_kwargs(spec: EnvSpec, truncated_obs: bool) -> dict[str, Any]:
    kwargs = dict(spec.kwargs)
    if truncated_obs:
        kwargs.update(spec.truncated_kwargs)
    return kwargs


def make_env(
    name: str, seed: int, truncated_obs: bool = False, render_size: int | None = None
) -> tuple[gym.Env, np.ndarray]:
    """Build a headless, seeded env for a paper task; return it and its first observation.

    The registered TimeLimit (1000 steps; 50 for Reacher) is kept and no normalisation is
    added. ``truncated_obs`` selects the MBPO observation for Ant/Humanoid and is a no-op
    for the other tasks. ``render_size``: the env also renders, offscreen, square RGB frames of
    that many pixels (``env.render()``; MuJoCo's OpenGL backend comes from MUJOCO_GL, see
    `iapo.video`); rendering reads the simulation and never changes it.
    """
    spec = get_spec(name)
    kwargs = _make_kwargs(spec, truncated_obs)
    if render_size is not None:
        kwargs |= {"render_mode": "rgb_array", "width": render_size, "height": render_size}
    env = gym.make(spec.gym_id, **kwargs)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    return env, obs


@cache
def env_dims(name: str, truncated_obs: bool = False) -> tuple[int, int]:
    """Return (observation dim, action dim) of a paper task; the env is closed again."""
    spec = get_spec(name)
    env = gym.make(spec.gym_id, **_make_kwargs(spec, truncated_obs))
    try:
        (obs_dim,) = env.observation_space.shape
        (act_dim,) = env.action_space.shape
    finally:
        env.close()
    return int(obs_dim), int(act_dim)


def action_bounds(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """Return copies of (low, high) of the env's Box action space."""
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"expected a Box action space, got {type(space).__name__}")
    return space.low.copy(), space.high.copy()


def scale_action(env: gym.Env, a: np.ndarray) -> np.ndarray:
    """Map an action in [-1, 1] affinely onto the env's Box bounds, clip, cast to its dtype."""
    low, high = action_bounds(env)
    low64, high64 = low.astype(np.float64), high.astype(np.float64)
    scaled = low64 + (np.asarray(a, dtype=np.float64) + 1.0) * 0.5 * (high64 - low64)
    return np.clip(scaled, low64, high64).astype(env.action_space.dtype)


# --------------------------------------------------------------------------- state

_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION

# Quantities MuJoCo derives from the integration state. mj_step recomputes them before they
# affect the dynamics, but they are left one sub-step stale after each step and some envs read
# them before stepping (Ant: body xpos, Humanoid: xipos for the forward reward). mj_forward
# after mj_setState would make them current and so change the next reward; we copy them instead.
_DERIVED_CANDIDATES = (
    "xpos", "xquat", "xmat", "xipos", "ximat", "xanchor", "xaxis",
    "geom_xpos", "geom_xmat", "site_xpos", "site_xmat", "cam_xpos", "cam_xmat",
    "light_xpos", "light_xdir", "subtree_com", "cdof", "cinert",
    "ten_wrapadr", "ten_wrapnum", "ten_length", "wrap_obj", "wrap_xpos", "actuator_length",
    "ten_velocity", "actuator_velocity", "cvel", "cdof_dot",
    "qfrc_bias", "qfrc_spring", "qfrc_damper", "qfrc_gravcomp", "qfrc_fluid", "qfrc_passive",
    "subtree_linvel", "subtree_angmom", "actuator_force", "qfrc_actuator", "act_dot",
    "qacc", "qacc_smooth", "qfrc_smooth", "qfrc_constraint", "qfrc_inverse",
    "cacc", "cfrc_int", "cfrc_ext", "sensordata", "energy",
)  # fmt: skip
_DERIVED_FIELDS = tuple(f for f in _DERIVED_CANDIDATES if hasattr(mujoco.MjData, f))
# Lazy-evaluation flags (e.g. whether cacc/cfrc_* are up to date).
_DERIVED_FLAGS = tuple(
    f for f in ("flg_energypos", "flg_energyvel", "flg_subtreevel", "flg_rnepost")
    if hasattr(mujoco.MjData, f)
)  # fmt: skip


@dataclass
class EnvState:
    """Everything that determines an env's future: plain arrays, ints and dicts (picklable)."""

    env_id: str
    physics: np.ndarray
    derived: dict[str, np.ndarray]
    flags: dict[str, int]
    np_random: dict[str, Any]
    np_random_seed: int | None
    action_rng: dict[str, Any] | None
    wrappers: list[tuple[str, dict[str, Any]]]


def _wrapper_chain(env: gym.Env) -> list[gym.Env]:
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def _wrapper_state(w: gym.Env) -> dict[str, Any]:
    if isinstance(w, TimeLimit):
        return {"elapsed_steps": w._elapsed_steps, "max_episode_steps": w._max_episode_steps}
    if isinstance(w, OrderEnforcing):
        return {"has_reset": w._has_reset}
    if isinstance(w, Autoreset):
        return {"autoreset": w.autoreset}
    if isinstance(w, PassiveEnvChecker):
        return {}  # one-off API checks only; they never change a trajectory
    raise TypeError(f"cannot capture the state of wrapper {type(w).__name__}")


def _restore_wrapper(w: gym.Env, saved: dict[str, Any]) -> None:
    if isinstance(w, TimeLimit):
        if w._max_episode_steps != saved["max_episode_steps"]:
            raise ValueError("TimeLimit max_episode_steps differs from the saved state")
        w._elapsed_steps = saved["elapsed_steps"]
    elif isinstance(w, OrderEnforcing):
        w._has_reset = saved["has_reset"]
    elif isinstance(w, Autoreset):
        w.autoreset = saved["autoreset"]
    elif isinstance(w, PassiveEnvChecker):
        # Mark the checks as done: the data-reuse check needs the previous obs object itself.
        w.checked_reset = w.checked_step = w.checked_data_reuse = True
        w._previous_data = None


def _bitgen_state(rng: np.random.Generator) -> dict[str, Any]:
    return copy.deepcopy(rng.bit_generator.state)


def _generator_from(
    state: dict[str, Any], current: np.random.Generator | None
) -> np.random.Generator:
    name = state["bit_generator"]
    if current is None or type(current.bit_generator).__name__ != name:
        current = np.random.Generator(getattr(np.random, name)())
    current.bit_generator.state = copy.deepcopy(state)
    return current


def get_state(env: gym.Env) -> EnvState:
    """Capture the MuJoCo integration state, derived quantities, RNGs and wrapper counters."""
    base = env.unwrapped
    model, data = base.model, base.data
    if model.opt.enableflags & mujoco.mjtEnableBit.mjENBL_SLEEP:
        raise NotImplementedError("MuJoCo sleeping is enabled; its state is not captured")
    physics = np.empty(mujoco.mj_stateSize(model, _INTEGRATION), dtype=np.float64)
    mujoco.mj_getState(model, data, physics, _INTEGRATION)
    space = env.action_space
    return EnvState(
        env_id=base.spec.id if base.spec is not None else type(base).__name__,
        physics=physics,
        derived={f: np.array(getattr(data, f), copy=True) for f in _DERIVED_FIELDS},
        flags={f: int(getattr(data, f)) for f in _DERIVED_FLAGS},
        np_random=_bitgen_state(base.np_random),
        np_random_seed=base._np_random_seed,
        action_rng=None if space._np_random is None else _bitgen_state(space._np_random),
        wrappers=[(type(w).__name__, _wrapper_state(w)) for w in _wrapper_chain(env)],
    )


def set_state(env: gym.Env, state: EnvState) -> None:
    """Restore a state from get_state into an env of the same task (same wrapper stack).

    mj_forward is deliberately not called: the copied derived quantities are exactly those of
    the saved env, and recomputing them would change the next reward of Ant and Humanoid.
    """
    base = env.unwrapped
    model, data = base.model, base.data
    env_id = base.spec.id if base.spec is not None else type(base).__name__
    if env_id != state.env_id:
        raise ValueError(f"state is for {state.env_id!r}, env is {env_id!r}")
    if state.physics.shape != (mujoco.mj_stateSize(model, _INTEGRATION),):
        raise ValueError("state size does not match the env's MuJoCo model")
    chain = _wrapper_chain(env)
    names = [type(w).__name__ for w in chain]
    if names != [n for n, _ in state.wrappers]:
        raise ValueError(f"wrapper stack {names} differs from saved {state.wrappers}")
    if set(state.derived) != set(_DERIVED_FIELDS):
        raise ValueError("state was saved with a different set of derived MuJoCo fields")

    mujoco.mj_setState(model, data, state.physics, _INTEGRATION)
    for name, value in state.derived.items():
        np.copyto(getattr(data, name), value)
    for name, value in state.flags.items():
        setattr(data, name, value)
    base.np_random = _generator_from(state.np_random, base._np_random)
    base._np_random_seed = state.np_random_seed
    space = env.action_space
    space._np_random = (
        None if state.action_rng is None else _generator_from(state.action_rng, space._np_random)
    )
    for w, (_, saved) in zip(chain, state.wrappers, strict=True):
        _restore_wrapper(w, saved)


def get_qpos_qvel(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """Return copies of the MuJoCo qpos and qvel (for logging)."""
    data = env.unwrapped.data
    return data.qpos.copy(), data.qvel.copy()

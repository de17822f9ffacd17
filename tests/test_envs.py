"""Tests for iapo.envs: task mapping, dims, seeding, action scaling and exact state restore."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

from iapo.envs import (
    PAPER_ENVS,
    EnvState,
    action_bounds,
    env_dims,
    get_qpos_qvel,
    get_spec,
    get_state,
    make_env,
    paper_name,
    scale_action,
    set_state,
)

# (obs dim, action dim) of the gymnasium -v5 stand-ins, default observations.
EXPECTED_DIMS = {
    "Hopper-v2": (11, 3),
    "HalfCheetah-v2": (17, 6),
    "Walker2d-v2": (17, 6),
    "Ant-v2": (105, 8),
    "Humanoid-v2": (348, 17),
    "InvertedPendulum-v2": (4, 1),
    "InvertedDoublePendulum-v2": (9, 1),
    "Reacher-v2": (10, 2),
    "Swimmer-v2": (8, 2),
    "HumanoidStandup-v2": (348, 17),
}
TRUNCATED_OBS = {"Ant-v2": 27, "Humanoid-v2": 45}

Record = dict[str, list]


def _actions(env: gym.Env, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = rng.uniform(-1, 1, (n, *env.action_space.shape))
    return np.stack([scale_action(env, a) for a in raw])


def _rollout(env: gym.Env, actions: np.ndarray) -> Record:
    """Step through actions, resetting (unseeded) after each episode end."""
    rec: Record = {"obs": [], "reward": [], "terminated": [], "truncated": [], "reset_obs": []}
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        rec["obs"].append(obs)
        rec["reward"].append(reward)
        rec["terminated"].append(terminated)
        rec["truncated"].append(truncated)
        if terminated or truncated:
            rec["reset_obs"].append(env.reset()[0])
    return rec


def _assert_identical(a: Record, b: Record) -> None:
    for key in a:
        assert len(a[key]) == len(b[key]), key
        for x, y in zip(a[key], b[key], strict=True):
            assert np.array_equal(np.asarray(x), np.asarray(y)), key


# --------------------------------------------------------------------------- mapping / dims


def test_mapping_covers_the_ten_paper_tasks() -> None:
    assert set(PAPER_ENVS) == set(EXPECTED_DIMS)
    for name, spec in PAPER_ENVS.items():
        assert spec.paper_name == name
        assert spec.gym_id == name.replace("-v2", "-v5")


@pytest.mark.parametrize("name", list(EXPECTED_DIMS))
def test_every_env_constructs_with_expected_dims(name: str) -> None:
    env, obs = make_env(name, seed=0)
    try:
        obs_dim, act_dim = EXPECTED_DIMS[name]
        print(f"{name} -> {PAPER_ENVS[name].gym_id}: obs {obs.shape[0]}, act {act_dim}")
        assert isinstance(env.action_space, gym.spaces.Box)
        assert env.observation_space.shape == (obs_dim,)
        assert env.action_space.shape == (act_dim,)
        assert obs.shape == (obs_dim,) and obs.dtype == np.float64
        assert env.render_mode is None
        assert env.spec.max_episode_steps == (50 if name == "Reacher-v2" else 1000)
        assert env_dims(name) == (obs_dim, act_dim)
        obs2, *_ = env.step(env.action_space.sample())
        assert obs2.shape == (obs_dim,)
    finally:
        env.close()


@pytest.mark.parametrize("bad", ["Hopper-v4", "hopper-v2", "Hopper", "CartPole-v1"])
def test_unknown_name_raises_listing_names(bad: str) -> None:
    for call in (lambda: make_env(bad, seed=0), lambda: env_dims(bad)):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert repr(bad) in msg
        assert all(name in msg for name in PAPER_ENVS)


def test_truncated_dims() -> None:
    assert env_dims("Ant-v2") == (105, 8)
    assert env_dims("Humanoid-v2") == (348, 17)
    assert env_dims("Ant-v2", truncated_obs=True) == (27, 8)
    assert env_dims("Humanoid-v2", truncated_obs=True) == (45, 17)
    for name, dim in TRUNCATED_OBS.items():
        env, obs = make_env(name, seed=1, truncated_obs=True)
        assert obs.shape == (dim,)
        # MBPO's truncated observation is exactly (qpos[2:], qvel).
        obs, *_ = env.step(scale_action(env, np.zeros(env.action_space.shape)))
        qpos, qvel = get_qpos_qvel(env)
        assert np.array_equal(obs, np.concatenate([qpos[2:], qvel]))
    # No-op for tasks without a truncated variant.
    for name in ("HalfCheetah-v2", "HumanoidStandup-v2"):
        assert env_dims(name, truncated_obs=True) == env_dims(name)


def test_walker_uses_v2_feet_friction() -> None:
    env, _ = make_env("Walker2d-v2", seed=0)
    model = env.unwrapped.model
    assert model.geom("foot_geom").friction[0] == pytest.approx(0.9)
    assert model.geom("foot_left_geom").friction[0] == pytest.approx(1.9)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", ["HalfCheetah-v2", "Hopper-v2", "Ant-v2", "Humanoid-v2"])
def test_same_seed_same_trajectory_different_seed_differs(name: str) -> None:
    env_a, obs_a = make_env(name, seed=3)
    env_b, obs_b = make_env(name, seed=3)
    env_c, obs_c = make_env(name, seed=4)
    assert np.array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a, obs_c)
    assert np.array_equal(env_a.action_space.sample(), env_b.action_space.sample())
    actions = _actions(env_a, 60, seed=0)
    rec_a, rec_c = _rollout(env_a, actions), _rollout(env_c, actions)
    _assert_identical(rec_a, _rollout(env_b, actions))
    assert not np.array_equal(rec_a["obs"][0], rec_c["obs"][0])


# --------------------------------------------------------------------------- action scaling


def test_scale_action_maps_bounds_and_clips() -> None:
    for name in ("InvertedPendulum-v2", "Humanoid-v2", "HalfCheetah-v2"):
        env, _ = make_env(name, seed=0)
        low, high = action_bounds(env)
        n = low.shape[0]
        assert np.array_equal(scale_action(env, -np.ones(n)), low)
        assert np.array_equal(scale_action(env, np.ones(n)), high)
        assert np.allclose(scale_action(env, np.zeros(n)), (low + high) / 2)
        assert np.array_equal(scale_action(env, np.full(n, 5.0)), high)
        assert np.array_equal(scale_action(env, np.full(n, -7.0)), low)
        assert scale_action(env, np.zeros(n)).dtype == env.action_space.dtype
    env, _ = make_env("InvertedPendulum-v2", seed=0)
    assert np.allclose(scale_action(env, np.array([0.5])), [1.5])


# --------------------------------------------------------------------------- exact restore


@pytest.mark.parametrize("name", ["HalfCheetah-v2", "Hopper-v2", "Ant-v2", "Humanoid-v2"])
def test_exact_restore_same_and_fresh_env(name: str) -> None:
    env, _ = make_env(name, seed=11)
    _rollout(env, _actions(env, 7, seed=1))
    state = get_state(env)
    actions = _actions(env, 50, seed=2)
    reference = _rollout(env, actions)
    if name == "Hopper-v2":
        assert any(reference["terminated"]), "test should cover a termination + reset"

    set_state(env, state)
    _assert_identical(reference, _rollout(env, actions))

    fresh, _ = make_env(name, seed=12345)
    set_state(fresh, state)
    _assert_identical(reference, _rollout(fresh, actions))

    # The same state can be restored many times (Monte Carlo rollouts) without being mutated.
    set_state(fresh, state)
    _assert_identical(reference, _rollout(fresh, actions))


@pytest.mark.parametrize("name", list(EXPECTED_DIMS))
def test_exact_restore_every_env(name: str) -> None:
    env, _ = make_env(name, seed=5)
    _rollout(env, _actions(env, 3, seed=3))
    state = get_state(env)
    actions = _actions(env, 8, seed=4)
    reference = _rollout(env, actions)
    fresh, _ = make_env(name, seed=6)
    set_state(fresh, state)
    _assert_identical(reference, _rollout(fresh, actions))


def test_restore_across_time_limit() -> None:
    env, _ = make_env("HalfCheetah-v2", seed=0)
    _rollout(env, _actions(env, 990, seed=5))
    state = get_state(env)
    assert dict(state.wrappers)["TimeLimit"]["elapsed_steps"] == 990
    actions = _actions(env, 20, seed=6)
    reference = _rollout(env, actions)
    assert reference["truncated"].index(True) == 9  # the 1000th step
    assert sum(reference["truncated"]) == 1 and not any(reference["terminated"])

    fresh, _ = make_env("HalfCheetah-v2", seed=1)
    set_state(fresh, state)
    restored = _rollout(fresh, actions)
    assert restored["truncated"].index(True) == 9
    _assert_identical(reference, restored)


def test_reset_after_restore_matches_original() -> None:
    env, _ = make_env("Hopper-v2", seed=21)
    _rollout(env, _actions(env, 5, seed=7))
    state = get_state(env)
    reset_a = env.reset()[0]
    sample_a = env.action_space.sample()
    fresh, _ = make_env("Hopper-v2", seed=22)
    set_state(fresh, state)
    assert fresh.unwrapped.np_random_seed == 21
    assert np.array_equal(fresh.reset()[0], reset_a)
    assert np.array_equal(fresh.action_space.sample(), sample_a)
    assert not np.array_equal(fresh.reset()[0], reset_a)  # the generator advanced


def test_state_survives_torch_save(tmp_path) -> None:
    env, _ = make_env("Ant-v2", seed=8, truncated_obs=True)
    _rollout(env, _actions(env, 12, seed=8))
    state = get_state(env)
    actions = _actions(env, 30, seed=9)
    reference = _rollout(env, actions)

    path = tmp_path / "state.pt"
    torch.save(state, path)
    loaded = torch.load(path, weights_only=False)
    assert isinstance(loaded, EnvState)
    assert np.array_equal(loaded.physics, state.physics)
    fresh, _ = make_env("Ant-v2", seed=0, truncated_obs=True)
    set_state(fresh, loaded)
    _assert_identical(reference, _rollout(fresh, actions))


def test_mj_forward_after_restore_would_change_ant_reward() -> None:
    """Why set_state copies derived quantities instead of calling mj_forward."""
    env, _ = make_env("Ant-v2", seed=2)
    _rollout(env, _actions(env, 10, seed=10))
    state = get_state(env)
    actions = _actions(env, 3, seed=11)
    reference = _rollout(env, actions)
    set_state(env, state)
    mujoco.mj_forward(env.unwrapped.model, env.unwrapped.data)
    forwarded = _rollout(env, actions)
    assert np.array_equal(reference["obs"][0], forwarded["obs"][0])
    assert reference["reward"][0] != forwarded["reward"][0]


def test_state_is_a_snapshot_and_checks_compatibility() -> None:
    env, _ = make_env("HalfCheetah-v2", seed=0)
    state = get_state(env)
    physics, xpos = state.physics.copy(), state.derived["xpos"].copy()
    _rollout(env, _actions(env, 5, seed=12))
    assert np.array_equal(state.physics, physics)
    assert np.array_equal(state.derived["xpos"], xpos)

    other, _ = make_env("Hopper-v2", seed=0)
    with pytest.raises(ValueError, match="HalfCheetah-v5"):
        set_state(other, state)
    wrapped = gym.wrappers.ClipAction(make_env("HalfCheetah-v2", seed=0)[0])
    with pytest.raises(TypeError, match="ClipAction"):
        get_state(wrapped)
    with pytest.raises(ValueError, match="wrapper stack"):
        set_state(wrapped, state)
    with pytest.raises(ValueError, match="derived"):
        set_state(env, dataclasses.replace(state, derived={}))


def test_get_qpos_qvel_returns_copies() -> None:
    env, _ = make_env("Hopper-v2", seed=0)
    qpos, qvel = get_qpos_qvel(env)
    assert qpos.shape == (6,) and qvel.shape == (6,)
    qpos[:] = 123.0
    assert not np.array_equal(env.unwrapped.data.qpos, qpos)


@pytest.mark.parametrize("name", list(EXPECTED_DIMS))
def test_gymnasium_ids_are_aliases(name: str) -> None:
    gym_id = name.replace("-v2", "-v5")
    assert paper_name(gym_id) == name and paper_name(name) == name
    assert get_spec(gym_id) is get_spec(name) is PAPER_ENVS[name]

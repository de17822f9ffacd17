"""The replay buffer: one row per transition on the training device, its own sampling generator."""

from __future__ import annotations

import numpy as np
import torch

from iapo.replay import ReplayBuffer

OBS, ACT = 4, 2


def filled(n: int, capacity: int = 10, seed: int = 0) -> ReplayBuffer:
    buf = ReplayBuffer(OBS, ACT, capacity, seed=seed)
    for i in range(n):
        buf.add(np.full(OBS, i, np.float64), np.full(ACT, -i, np.float32), 0.5 * i,
                np.full(OBS, i + 1, np.float64), terminated=i % 3 == 0)
    return buf


def test_a_sample_holds_whole_transitions_as_stored():
    b = filled(7).sample(64)
    i = b.obs[:, 0]
    assert set(i.tolist()) <= set(range(7)) and len(set(i.tolist())) > 3
    torch.testing.assert_close(b.obs, i[:, None].expand(-1, OBS))
    torch.testing.assert_close(b.action, -i[:, None].expand(-1, ACT))
    torch.testing.assert_close(b.reward, 0.5 * i)
    torch.testing.assert_close(b.next_obs, (i + 1)[:, None].expand(-1, OBS))
    torch.testing.assert_close(b.done, (i % 3 == 0).float())
    assert b.obs.dtype == torch.float32 and filled(3).sample(4, torch.float64).reward.dtype == torch.float64


def test_the_ring_overwrites_the_oldest_transitions():
    buf = filled(13, capacity=10)
    assert buf.size == 10 and buf.ptr == 3
    assert set(buf.sample(500).obs[:, 0].tolist()) == set(range(3, 13))


def test_state_dict_round_trip_continues_the_same_draws():
    """A restored buffer (contents, position, generator) draws what the original draws next."""
    a = filled(8, seed=5)
    a.sample(16)
    state = a.state_dict()
    assert state["obs"].shape == (8, OBS) and state["reward"].shape == (8,)
    b = ReplayBuffer(OBS, ACT, 10, seed=99)
    b.load_state_dict(state)
    for _ in range(3):
        x, y = a.sample(16), b.sample(16)
        assert all(torch.equal(getattr(x, f), getattr(y, f)) for f in ("obs", "action", "reward", "done"))
    a.add(np.zeros(OBS), np.zeros(ACT), 1.0, np.zeros(OBS), False)
    b.add(np.zeros(OBS), np.zeros(ACT), 1.0, np.zeros(OBS), False)
    assert torch.equal(a.rows, b.rows)


def test_seeds_give_different_streams():
    assert not torch.equal(filled(8, seed=1).sample(32).obs, filled(8, seed=2).sample(32).obs)


def test_a_state_from_another_kind_of_device_reseeds_instead_of_crashing():
    """A CUDA generator state is 16 bytes, a CPU one 5056: loading one into the other raised
    "RNG state is wrong size". Now the stream is reseeded from the run's seed and the stored count,
    the same way on every such resume (reproducible), and the caller is told."""
    a = filled(40, capacity=64, seed=3)
    state = a.state_dict()
    assert state["generator_kind"] == "cpu"
    from_gpu = state | {"generator": torch.zeros(16, dtype=torch.uint8), "generator_kind": "cuda"}
    legacy = {k: v for k, v in from_gpu.items() if k != "generator_kind"}  # earlier versions: size tells
    draws = []
    for saved in (from_gpu, legacy):
        b = ReplayBuffer(OBS, ACT, 64, seed=3)
        assert b.load_state_dict(saved) is True and b.size == 40
        draws.append(b.sample(16).obs)
    assert torch.equal(draws[0], draws[1])
    same_kind = ReplayBuffer(OBS, ACT, 64, seed=3)
    assert same_kind.load_state_dict(state) is False
    assert torch.equal(same_kind.sample(16).obs, a.sample(16).obs)


def test_rows_staged_through_one_staging_row_are_stored_as_copied_directly():
    """The staged path (on CUDA: a pinned row, copied without blocking) stores each transition as
    the direct copy does, though every row goes through the same staging tensor."""
    direct, staged = ReplayBuffer(OBS, ACT, 10, stage=False), ReplayBuffer(OBS, ACT, 10, stage=True)
    rng = np.random.default_rng(0)
    for _ in range(12):
        args = (rng.standard_normal(OBS), rng.uniform(-1, 1, ACT), float(rng.standard_normal()),
                rng.standard_normal(OBS), bool(rng.random() < 0.3))
        assert direct.add(*args) == staged.add(*args)
    assert torch.equal(direct.rows, staged.rows) and staged._staging is not None
    assert ReplayBuffer(OBS, ACT, 10)._staging is None  # on the CPU by default: the direct copy


def test_rows_staged_on_a_gpu_match_the_cpu_rows():
    """On CUDA (skipped elsewhere): the pinned staging row, reused by each add while the previous
    non-blocking copy may still run, never lets one row's numbers into another."""
    import pytest

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cpu, gpu = ReplayBuffer(OBS, ACT, 64), ReplayBuffer(OBS, ACT, 64, device="cuda")
    rng = np.random.default_rng(1)
    for _ in range(64):
        args = (rng.standard_normal(OBS), rng.uniform(-1, 1, ACT), float(rng.standard_normal()),
                rng.standard_normal(OBS), bool(rng.random() < 0.3))
        cpu.add(*args)
        gpu.add(*args)
    assert gpu._staging is not None and gpu._staging.is_pinned()
    assert torch.equal(cpu.rows, gpu.rows.cpu())

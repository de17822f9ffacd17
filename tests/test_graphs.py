"""CUDA graphs of the update and of acting (`training.graphs: on`, `iapo.graphs`).

On the CPU: the static-buffer code a graph records (`Agent.use_static_buffers(capture=False)`)
computes exactly what the eager update and acting compute (the same operations on copies of the
same inputs: compared bit for bit, parameters, Adam state, metrics, actions and random streams),
reads nothing back to the host (on the `meta` device), and each piece a capture relies on holds:
static inputs refilled in place, outputs that outlive later calls, weight snapshots taken afresh
while a step is recorded, the Polyak average as one multi-tensor op, the hard copy outside, Adam's
capturable flag set after a state is loaded. Capture and replay themselves are checked on the CPU
with `CpuGraph`, which replays recorded operators on fixed tensors as a CUDA graph replays kernels
on fixed memory: replays are bit-identical to eager calls, also after the weights were changed in
place since the capture (it fails when snapshots are cached across the capture, when the update
count or a hard-copy decision is a Python number inside the step, when a persistent tensor is
rebound instead of updated in place, or when host data enters the step). On CUDA (skipped without
one): the same check with real CUDA graphs, to rounding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

import iapo.graphs
from iapo.agent import Agent, Batch
from iapo.config import ConfigError, load_params, resolve
from iapo.graphs import WARMUP, StaticStep, set_capturable, step_snapshots
from iapo.replay import ReplayBuffer
from iapo.values.fused import _pair, default_chunk_rows, stack_ensemble, stacked
from iapo.values.q_ensemble import QEnsemble
from tests import test_devices as on_meta
from tests.conftest import ROOT
from tests.test_devices import META, meta_agent, meta_batch

OBS_DIM, ACT_DIM, BATCH = 17, 6, 32
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def configured(make_cfg, params, variant: str, arch: str = "A", **training):
    cfg = make_cfg(variant=variant)
    return dataclasses.replace(cfg, q_arch=arch, q_architecture=params.q_architectures[arch],
                               training=cfg.training.model_copy(update={"batch_size": BATCH} | training))


def filled_buffer(device: str = "cpu", seed: int = 0) -> ReplayBuffer:
    """A replay buffer with 100 random transitions: batches are sampled as in training (views of one
    tensor of rows)."""
    buf = ReplayBuffer(OBS_DIM, ACT_DIM, 200, device, seed)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        buf.add(rng.standard_normal(OBS_DIM), rng.uniform(-1, 1, ACT_DIM), float(rng.standard_normal()),
                rng.standard_normal(OBS_DIM), bool(rng.random() < 0.05))
    return buf


def assert_equal(a, b, where: str = "") -> None:
    """Bit-identical nested tensors (dicts compared in key order too)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_equal(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def steps(agent: Agent, batches: list[Batch], buf: ReplayBuffer) -> list:
    """Per batch: an update, a stochastic and a deterministic action, the λ acted with, the random
    stream's state after them (each step from the same seed)."""
    out = []
    for i, b in enumerate(batches):
        torch.manual_seed(100 + i)
        metrics = agent.update(b)
        obs = buf.next_obs(i)  # a view into the replay rows, as the training loop acts on
        (sampled, _), (mode, lam) = agent.act_on_device(obs), agent.act_on_device(obs, deterministic=True)
        actions = [sampled, mode]
        out.append([metrics, actions, lam.mu, lam.log_sigma, torch.get_rng_state()])
    return out


# ------------------------------------------------------------------ the static-buffer code against eager
@pytest.mark.parametrize(("variant", "arch", "training"), [
    ("direct", "A", {}),
    ("iterative", "B", {"target_hard_copy_every": 2, "policy_q": "online"}),
    ("direct_flow", "A", {}),
    ("iterative_mb", "A", {}),
])
def test_static_buffers_compute_exactly_what_the_eager_path_computes(make_cfg, params, variant, arch,
                                                                     training):
    cfg = configured(make_cfg, params, variant, arch, **training)
    agents = []
    for static in (False, True):
        torch.manual_seed(0)
        agent = Agent(cfg, OBS_DIM, ACT_DIM)
        if static:
            agent.use_static_buffers(capture=False)
        agents.append(agent)
    eager, static = agents
    buf = filled_buffer()
    batches = [buf.sample(BATCH) for _ in range(3)]
    assert_equal(steps(eager, batches, buf), steps(static, batches, buf), "steps")
    assert_equal(eager.training_state(), static.training_state(), "state")
    assert static.graphs.update.calls == 3 and static.graphs.update.graph is None  # no capture here
    for agent in (eager, static):
        assert int(agent.update_count) == agent.n_updates == 3 and int(agent.nonfinite_at) == 0


@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_the_static_path_runs_on_the_device_alone(make_cfg, params, variant):
    """What a graph records reads nothing back to the host and mixes in no CPU tensor (`meta`)."""
    agent = meta_agent(make_cfg, params, variant, "A")
    agent.use_static_buffers(capture=False)
    for _ in range(2):
        metrics = agent.update(meta_batch())
        assert metrics and all(v.device == META and v.dim() == 0 for v in metrics.values())
    for deterministic in (False, True):
        action, lam = agent.act_on_device(torch.empty(on_meta.OBS_DIM, device=META), deterministic)
        assert action.device == META and action.shape == (on_meta.ACT_DIM,)
        assert lam.mu.device == META and lam.mu.shape == (1, on_meta.ACT_DIM)


# ------------------------------------------------------------------ the pieces a capture relies on
def test_static_inputs_are_refilled_in_place_and_outputs_outlive_later_calls():
    step = StaticStep(lambda x, y: {"sum": x + y, "dot": (x * y).sum()}, capture=False)
    x, y = torch.arange(4.0), torch.ones(4)
    first = step(x, y)
    buffers = [t.data_ptr() for t in step.inputs]
    second = step(2 * x, 3 * y)
    assert [t.data_ptr() for t in step.inputs] == buffers                  # the same static tensors
    assert torch.equal(first["sum"], x + y) and first["dot"] == (x * y).sum()  # not overwritten
    assert torch.equal(second["sum"], 2 * x + 3 * y) and second["dot"].shape == ()
    with pytest.raises(ValueError, match="static inputs of shapes"):
        step(x)
    with pytest.raises(ValueError, match="static inputs of shapes"):
        step(x[:1], y[:1])  # one batch size per graph (a copy would broadcast it)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            StaticStep(lambda x: {"x": x}, capture=True)


def test_weight_snapshots_are_taken_once_per_step_while_a_step_is_recorded(params):
    """Cached snapshots would freeze the weights of the capture into the graph: inside
    `step_snapshots` a step takes its own (the same numbers), once, and leaves the cache alone; the
    next step takes a new one."""
    ens = QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"])
    cached_q = stacked(ens)
    assert stacked(ens) is cached_q
    with step_snapshots():
        first = [stacked(ens), stacked(ens)]
    with step_snapshots():
        second = stacked(ens)
    assert first[0] is first[1]                                      # once per step
    assert len({id(x) for x in (cached_q, first[0], second)}) == 3  # a new one each step
    assert torch.equal(first[0].first.weight, cached_q.first.weight)
    assert stacked(ens) is cached_q


def test_an_update_step_stacks_each_q_ensemble_once(make_cfg, params, monkeypatch):
    """A step under `step_snapshots` (as a graph records it) stacks each ensemble it reads once, not
    at every one of its 2K + 2 value calls. Budget: the stack/cat kernels of one iterative update,
    counted by a TorchDispatchMode (71 with one snapshot per ensemble; 137 when every value call
    re-stacked)."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    import iapo.values.fused as fused

    class Kernels(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n: Counter[str] = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    taken = []
    snapshot = fused._snapshot
    monkeypatch.setattr(fused, "_snapshot", lambda ens, dtype: taken.append(id(ens)) or snapshot(ens, dtype))
    torch.manual_seed(0)
    agent = Agent(configured(make_cfg, params, "iterative"), OBS_DIM, ACT_DIM)
    agent.use_static_buffers(capture=False)
    batch = filled_buffer().sample(BATCH)
    agent.update(batch)
    taken.clear()
    with Kernels() as kernels:
        agent.update(batch)
    assert len(taken) == len(set(taken)) <= 2  # the online and the target ensemble, once each
    assert kernels.n["stack"] + kernels.n["cat"] <= 80, kernels.n


def test_constants_are_filled_on_the_device_and_rows_form_one_chunk_off_the_cpu(params):
    """`_pair` writes what `torch.tensor` would copy from the host (which a graph cannot capture);
    off the CPU the Q products run as one chunk (the chunks are sized for a CPU cache)."""
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        like = torch.zeros(1, dtype=dtype)
        for a, b in ((-1.25, 1.25), (1.0, -1.0), (-0.3, 0.3)):
            assert torch.equal(_pair(like, a, b), torch.tensor([a, b], dtype=dtype).view(2, 1, 1))
    ens = QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"])
    assert default_chunk_rows(stack_ensemble(ens), 2560) == 512
    assert default_chunk_rows(stack_ensemble(ens.to(META)), 2560) == 2560


def test_polyak_average_in_place_and_hard_copy_after_the_step(make_cfg, params):
    """θ̄ ← lerp(θ̄, θ, τ) per tensor (as one multi-tensor op inside the step); every k-th update the
    targets become the online weights exactly (outside the step)."""
    agent = Agent(configured(make_cfg, params, "direct", target_hard_copy_every=2), OBS_DIM, ACT_DIM)
    targets = list(agent.q_target.parameters())
    storage = [p.data_ptr() for p in targets]
    b = filled_buffer().sample(BATCH)
    before = [p.clone() for p in targets]
    agent.update(b)
    tau = agent.cfg.training.tau
    for t, old, p in zip(targets, before, agent.q.parameters(), strict=True):
        assert torch.equal(t, torch.lerp(old, p, tau))
    agent.update(b)
    assert all(torch.equal(t, p) for t, p in zip(targets, agent.q.parameters(), strict=True))
    assert [p.data_ptr() for p in agent.q_target.parameters()] == storage  # in place


def test_a_loaded_state_sets_adams_capturable_flag_and_the_update_count(make_cfg, params):
    """A state saved by a captured run (capturable Adam) resumes on the CPU and vice versa: the
    flag and the step counts' device follow the loading agent; the device counter follows n_updates."""
    cfg = configured(make_cfg, params, "direct")
    saver = Agent(cfg, OBS_DIM, ACT_DIM)
    b = filled_buffer().sample(BATCH)
    saver.update(b)
    state = saver.training_state()
    for key in ("q_opt", "pi_opt", "alpha_opt"):
        for group in state[key]["param_groups"]:
            group["capturable"] = True  # as written on CUDA with training.graphs: on
    loader = Agent(cfg, OBS_DIM, ACT_DIM)
    loader.load_training_state(state)
    assert not any(g["capturable"] for opt in loader.adams() for g in opt.param_groups)
    assert int(loader.update_count) == loader.n_updates == 1
    loader.update(b)
    assert int(loader.update_count) == 2

    agent = meta_agent(make_cfg, params, "direct", "A")  # parameters on a device, steps on the CPU
    agent.update(meta_batch())
    assert all(s["step"].device.type == "cpu" for s in agent.q_opt.state.values())
    agent.q_opt._warned_capturable_if_run_uncaptured = False  # as after an unpickled optimizer
    set_capturable(agent.q_opt, True)
    assert agent.q_opt.state and all(s["step"].device == META for s in agent.q_opt.state.values())
    assert agent.q_opt._warned_capturable_if_run_uncaptured  # its eager warm-up steps are meant: no warning


# ------------------------------------------------------------------ the setting and the benchmark
def _params_with(tmp_path, line: str):
    text = (ROOT / "params.yaml").read_text()
    old = next(x for x in text.splitlines() if x.startswith("  graphs:"))
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, f"  {line}"))
    return load_params(path)


def test_the_graphs_setting_reads_on_and_off_and_is_not_hashed(tmp_path):
    hashes = set()
    for line, value in (("graphs: on", "on"), ("graphs: off", "off"), ('graphs: "on"', "on")):
        params = _params_with(tmp_path, line)  # bare on/off are YAML booleans: read as the words
        assert params.training.graphs == value
        hashes.add(resolve(params, "Hopper-v2", "iterative", 0, "mini").params_hash())
    assert len(hashes) == 1  # how a run executes, not what it computes
    with pytest.raises(ConfigError, match=r"training\.graphs.*'off' or 'on'.*'sometimes'"):
        _params_with(tmp_path, "graphs: sometimes")


def test_device_bench_times_eager_rows_on_the_cpu(capsys):
    from iapo.cli import main
    from iapo.tools.bench import format_device_table, run_device_bench

    result = run_device_bench(ROOT / "params.yaml", device="cpu", repeats=1, warmup=0,
                              variants=("direct",), archs=("A",))
    rows = result["ops"]
    assert [(r["op"], r["path"]) for r in rows] == [("update", "eager"), ("act", "eager")]  # no captured rows
    for r in rows:
        assert 0 < r["ms_min"] <= r["ms"] <= r["ms_max"] and r["device_ms"] == r["ms"] and r["speedup"] == 1.0
    assert "update  direct" in format_device_table(result) and result["machine"]["device"] == "cpu"
    if not torch.cuda.is_available():
        assert main(["bench", "--device", "cuda", "--quick"]) == 2
        assert "sees no CUDA device" in capsys.readouterr().err


# ------------------------------------------------------------------ capture and replay
class CpuGraph:
    """`torch.cuda.CUDAGraph`'s semantics on the CPU, to test capture-safety without a GPU.

    The capture records every operator call below autograd (the backward's and Adam's included)
    with its tensor objects; a replay calls them again on those same objects, writing each new
    result into the tensor the capture produced (fixed memory, as a graph's), view operators aside
    (their views already alias that memory). A replay therefore sees only what a CUDA graph sees:
    Python decisions, Python numbers and tensor objects as they were at the capture, and the
    current contents of those tensors; random operators draw anew, in the captured order. A host
    read during the capture, or a tensor made from host data (`torch.tensor(...)`; on the CPU also
    an item assignment of a Python number), is an error, as on CUDA. Unlike CUDA's, this capture
    runs the step too, so the replay that follows it is skipped."""

    HOST: ClassVar = {torch.ops.aten._local_scalar_dense, torch.ops.aten.is_nonzero, torch.ops.aten.equal,
                      torch.ops.aten.lift_fresh, torch.ops.aten.lift_fresh_copy}

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.ran = False

    @contextlib.contextmanager
    def capturing(self):
        graph = self

        class Recorder(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func.overloadpacket in graph.HOST:
                    raise AssertionError(f"{func} while capturing: a host read or host data")
                out = func(*args, **(kwargs or {}))
                graph.calls.append((func, args, kwargs or {}, out))
                return out

        with Recorder():
            yield
        self.ran = True

    def replay(self) -> None:
        """As a CUDA graph replays: the captured kernels on the captured memory, outside PyTorch's
        dispatcher, so no tensor's `_version` moves (each call runs on `.data` aliases, which share
        the memory but not the version counter)."""
        if self.ran:
            self.ran = False
            return

        def alias(x):
            return x.data if isinstance(x, torch.Tensor) else x

        with torch.no_grad():
            for func, args, kwargs, out in self.calls:
                if func.is_view:
                    continue
                fresh = func(*tree_map(alias, args), **tree_map(alias, kwargs))
                for old, new in zip(tree_flatten(out)[0], tree_flatten(fresh)[0], strict=True):
                    if isinstance(old, torch.Tensor) and old.data_ptr() != new.data_ptr():
                        old.data.copy_(new)


class CpuGraphStep(StaticStep):
    """`StaticStep` capturing into a `CpuGraph` (no CUDA device, no side stream)."""

    def __init__(self, fn, capture: bool, warmup: int = WARMUP) -> None:
        super().__init__(fn, capture=False, warmup=warmup)
        self.capture = capture

    def on_device(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def run_on_side_stream(self) -> torch.Tensor:
        return self.run()

    def record(self) -> None:
        self.graph = CpuGraph()
        with self.graph.capturing():
            self.packed = self.run()


def check_captured_against_eager(cfg, device: str, compare) -> None:
    """Two agents from the same weights with capturable Adam: one captures (`WARMUP` eager calls,
    the capture, replays), one calls eagerly; the same batches and seeds, compared by `compare`
    after every update and action, and so is an eager `agent.policy` after them (a weight snapshot
    cached before the replays would be stale: a replay bumps no `_version`). Before the last two
    steps every target and policy weight is scaled in place (a graph that had frozen a snapshot of
    the weights would miss it); hard copies every 2 updates; then a NaN loss in a replayed update is
    reported with its update number."""
    agents = []
    for _ in range(2):
        torch.manual_seed(0)
        agent = Agent(cfg, OBS_DIM, ACT_DIM, device)
        agent.use_static_buffers(capture=True)
        agents.append(agent)
    graphed, eager = agents
    eager.graphs = None  # the eager calls, with the same capturable Adam
    buf = filled_buffer(device)
    n = WARMUP + 4
    for i in range(n):
        b = buf.sample(BATCH)
        if i == WARMUP + 2:
            with torch.no_grad():
                for agent in agents:
                    for p in [*agent.q_target.parameters(), *agent.optimizer.parameters()]:
                        p.mul_(1.05)
        out = []
        for agent in agents:
            torch.manual_seed(i)
            metrics = agent.update(b)
            acted = [agent.act_on_device(buf.next_obs(i), det) for det in (False, True)]
            torch.manual_seed(1000 + i)  # an eager caller after the replays (the online policy change)
            policy = agent.policy(b.obs[:4])
            out.append([metrics, [a for a, _ in acted], acted[-1][1].mu, policy.mu, policy.log_sigma])
        compare(*out)
    assert all(s.graph is not None for s in graphed.graphs.steps())
    compare(list(graphed.parameters()), list(eager.parameters()))
    b = buf.sample(BATCH)
    graphed.update(dataclasses.replace(b, reward=torch.full_like(b.reward, float("nan"))))
    graphed.update(b)
    with pytest.raises(FloatingPointError, match=rf"update {n + 1} \("):
        graphed.check_finite()


@pytest.mark.parametrize(("variant", "training"), [
    ("iterative", {"target_hard_copy_every": 2, "policy_q": "online"}),
    ("direct_flow", {"target_hard_copy_every": 2}),
])
def test_replays_of_a_captured_graph_match_eager_calls(make_cfg, params, monkeypatch, variant, training):
    """On the CPU with `CpuGraph`: capture and replays are bit-identical to eager calls (the same
    operators on the same numbers), and a capture makes no host read. Adam is made capturable on
    the CPU for this (torch allows it on accelerators only; its capturable arithmetic is device-agnostic)."""
    monkeypatch.setattr(iapo.graphs, "StaticStep", CpuGraphStep)
    adam = importlib.import_module("torch.optim.adam")
    monkeypatch.setattr(adam, "_get_capturable_supported_devices", lambda supports_xla=True: ["cpu"])
    cfg = configured(make_cfg, params, variant, **training)
    check_captured_against_eager(cfg, "cpu", assert_equal)


# ------------------------------------------------------------------ on a GPU
@CUDA
@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_captured_update_and_acting_match_eager_on_cuda(make_cfg, params, variant):
    """`check_captured_against_eager` with CUDA graphs, close to rounding.

    Tolerance: the same kernels on the same data, but cuBLAS may pick other algorithms on the
    capture's stream than on the default one (its results are reproducible per stream
    configuration only): rounding at ~1e-7 relative, which Adam keeps near that level over a few
    updates. A stale snapshot or a baked-in number moves J and Q̂ by percents."""

    def close(graphed, eager) -> None:
        for got, expected in zip(tree_flatten(graphed)[0], tree_flatten(eager)[0], strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)

    cfg = configured(make_cfg, params, variant, graphs="on", target_hard_copy_every=2)
    check_captured_against_eager(cfg, "cuda", close)

"""Device-agnostic training: no tensor from another device in the math, no host read in an update.

PyTorch's `meta` device stands in for a GPU on a CPU-only machine: a meta tensor has a shape and a
dtype but no data, so mixing in a CPU tensor raises (as a CUDA tensor would), and any host read
(`.item()`, `float()`, `bool()`, `.tolist()`) raises too, where on a GPU it would stall the queue.
`Agent.update` and acting up to its one device→host copy of the action run on `meta` for every
variant and both Q architectures.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from iapo.agent import Agent, Batch
from iapo.devices import DeviceError, available, describe, resolve_device

VARIANTS = ["direct", "iterative", "iterative_k1", "iterative_k2", "iterative_beta1", "direct_flow",
            "direct_mb", "iterative_mb"]
OBS_DIM, ACT_DIM, META = 11, 3, torch.device("meta")


def meta_agent(make_cfg, params, variant: str, arch: str) -> Agent:
    cfg = make_cfg(variant=variant)
    cfg = dataclasses.replace(cfg, q_arch=arch, q_architecture=params.q_architectures[arch])
    return Agent(cfg, OBS_DIM, ACT_DIM, device="meta")


def meta_batch(n: int = 8) -> Batch:
    def t(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, device=META)
    return Batch(t(n, OBS_DIM), t(n, ACT_DIM), t(n), t(n, OBS_DIM), t(n))


@pytest.mark.parametrize("arch", ["A", "B"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_update_and_acting_run_on_the_device_alone(make_cfg, params, variant, arch):
    agent = meta_agent(make_cfg, params, variant, arch)
    assert all(p.device == META for p in agent.parameters())
    for _ in range(2):  # the second update reads the Adam state and the refreshed Q snapshot
        metrics = agent.update(meta_batch())
        assert metrics and all(v.device == META and v.dim() == 0 for v in metrics.values())
    assert agent.nonfinite_at.device == META
    for deterministic in (False, True):
        action, _ = agent.act_on_device(torch.empty(OBS_DIM, device=META), deterministic)
        assert action.device == META and action.shape == (ACT_DIM,)
    states = torch.empty(5, OBS_DIM, device=META)
    trace = agent.policy(states)  # the online policy-change metric's batch of states
    assert trace.mu.device == META and trace.mu.shape == (5, ACT_DIM)


def test_a_host_read_on_meta_raises():
    """The premise of the test above: meta tensors refuse host reads and CPU operands."""
    x = torch.empty((), device=META)
    with pytest.raises((RuntimeError, NotImplementedError)):
        x.item()
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.empty(3, device=META) * torch.ones(3)


def test_a_nonfinite_loss_is_reported_later_with_its_update(make_cfg):
    agent = Agent(make_cfg(variant="direct"), OBS_DIM, ACT_DIM)
    g = torch.Generator().manual_seed(0)
    b = Batch(torch.randn(8, OBS_DIM, generator=g), torch.rand(8, ACT_DIM, generator=g) * 2 - 1,
              torch.randn(8, generator=g), torch.randn(8, OBS_DIM, generator=g), torch.zeros(8))
    agent.update(b)
    agent.check_finite()
    bad = dataclasses.replace(b, reward=torch.full((8,), float("nan")))
    agent.update(bad)
    agent.update(b)
    with pytest.raises(FloatingPointError, match=r"update 2 \(.*q_loss nan"):
        agent.check_finite()


@pytest.mark.parametrize("name", ["tpu", "cuda:banana", "mps", "xla"])
def test_unknown_or_unsupported_devices_are_refused(name):
    with pytest.raises(DeviceError, match="available on this machine: cpu"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_names_the_torch_build():
    with pytest.raises(DeviceError, match=r"sees no CUDA device.*--device cpu"):
        resolve_device("cuda")
    assert available() == ["cpu"]


def test_describe_records_the_device_and_versions():
    info = describe(resolve_device("cpu"))
    assert info["device"] == "cpu" and info["gpu_name"] is None
    assert info["torch_version"] == torch.__version__ and "cuda_version" in info


@pytest.mark.parametrize("device", ["tpu", "cuda:7"] if not torch.cuda.is_available() else ["tpu"])
def test_iapo_train_refuses_a_bad_device_in_one_paragraph(tmp_path, device):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "iapo.cli", "train", "--env", "InvertedPendulum-v2",
                           "--variant", "direct", "--scale", "smoke", "--out", str(out),
                           "--device", device], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and f"--device '{device}'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


def test_a_resume_state_loads_to_the_cpu_whatever_the_run_device(tmp_path, capsys):
    """Resume files load to the CPU (the RNG states must stay CPU byte tensors) and the agent moves
    what belongs on its device: here the run's device is swapped for `meta` before resuming, as a
    GPU run resuming would be, and the RNG states come back intact."""
    from iapo import checkpoint
    from iapo.config import load_params, resolve
    from iapo.train import Run
    from tests.conftest import small_params

    params = load_params(small_params(tmp_path, steps=160, initial_random_steps=150, log_every=10,
                                      eval_every=160, checkpoint_steps=[160], resume_every=160))
    cfg = resolve(params, "InvertedPendulum-v2", "direct", 0, "smoke")
    Run(cfg, tmp_path / "run").run()
    run = Run(cfg, tmp_path / "run")
    torch.manual_seed(123)  # something else than the saved state
    run.device = META
    assert run.try_resume()
    state = checkpoint.load(tmp_path / "run" / "resume" / "step_160.pt")
    assert torch.equal(torch.get_rng_state(), state["torch_rng"])
    assert run.buffer.generator.get_state().equal(state["replay"]["generator"])
    assert state["device"]["device"] == "cpu" and state["device"]["torch_version"] == torch.__version__
    assert "saved on cpu and resumes on meta" in capsys.readouterr().err

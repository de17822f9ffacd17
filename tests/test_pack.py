"""`iapo train-pack` (iapo.pack): cores shared out, signals passed on, the job's exit code, MPS.

The seeds' trainings themselves are real `iapo train` runs in the Slurm test (tests/test_slurm.py:
two seeds at once in one job, preempted and signalled, resumed bit-identical); here each seed is a
small Python process standing in for one, so the pack's own behaviour is checked in seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iapo.errors import DeviceError
from iapo.pack import core_sets, mps_daemon, outcome, train_pack

# a seed: writes its CPU affinity, then waits for SIGTERM and exits 143 as `iapo train` does once saved
SEED = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *a: (out.with_suffix(".stopped").write_text("saved"), sys.exit(143)))
out.write_text(" ".join(map(str, sorted(os.sched_getaffinity(0)))))
time.sleep(float(sys.argv[2]))
"""


def seed_cmd(folder: Path, i: int, seconds: float) -> list[str]:
    return [sys.executable, "-c", SEED, str(folder / f"seed{i}.cores"), str(seconds), "train", f"seed {i}"]


def test_cores_are_shared_out_in_contiguous_equal_parts() -> None:
    assert core_sets([0, 1, 2, 3, 4, 5, 6, 7], 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert core_sets([4, 5], 2) == [[4], [5]]
    assert core_sets([0, 1], 3) == [[0], [1], [0]]  # fewer cores than seeds: shared in turn
    for cpus, runs in (([0, 1, 2, 3, 4], 2), (list(range(16)), 5)):
        sets = core_sets(cpus, runs)
        assert [c for cores in sets for c in cores] == cpus and max(map(len, sets)) - min(map(len, sets)) <= 1


def test_the_job_exits_143_if_any_seed_was_stopped_else_with_the_first_failure() -> None:
    assert outcome([0, 0]) == 0
    assert outcome([0, 143]) == 143 and outcome([1, 143]) == 143  # the retry resumes every seed
    assert outcome([0, 2, 1]) == 2


def test_each_seed_runs_at_once_on_its_own_cores_with_its_own_log(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs 2 CPUs")
    logs = [tmp_path / "logs" / f"seed{i}.log" for i in range(2)]
    start = time.perf_counter()
    code = train_pack([seed_cmd(tmp_path, i, 2.0) for i in range(2)], logs, cpus=cpus[:2])
    assert code == 0
    assert time.perf_counter() - start < 3.9  # both slept their 2 s at the same time
    assert [(tmp_path / f"seed{i}.cores").read_text() for i in range(2)] == [str(cpus[0]), str(cpus[1])]
    assert all(log.exists() for log in logs)


def test_sigterm_reaches_every_seed_and_the_job_exits_143(tmp_path: Path) -> None:
    """The pack as its own process (`iapo.pack.train_pack`), SIGTERMed as Slurm does at a preemption:
    every seed gets the signal, saves and exits 143; the pack exits 143."""
    code = (f"import sys; sys.path[:0] = {sys.path!r}\n"
            "from iapo.pack import train_pack\n"
            "from tests.test_pack import seed_cmd\nfrom pathlib import Path\n"
            f"sys.exit(train_pack([seed_cmd(Path({str(tmp_path)!r}), i, 60) for i in range(2)], None))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not all((tmp_path / f"seed{i}.cores").exists() for i in range(2)):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143, proc.stderr.read()
    assert [(tmp_path / f"seed{i}.stopped").read_text() for i in range(2)] == ["saved", "saved"]
    assert "exit codes [143, 143]: exit 143" in proc.stderr.read()


def test_mps_without_its_control_program_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(DeviceError, match="nvidia-cuda-mps-control is not on PATH"), mps_daemon(True):
        pass
    with mps_daemon(False) as env:  # not asked: nothing started, nothing added
        assert env == {}


def test_train_pack_refuses_an_unknown_variant_before_starting_anything(tmp_path: Path) -> None:
    params = Path(__file__).parents[1] / "params.yaml"
    proc = subprocess.run([sys.executable, "-m", "iapo.cli", "--params", str(params), "train-pack", "--scale",
                           "smoke", "--env", "InvertedPendulum-v2", "--variant", "nope", "--device", "cpu"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_an_mps_daemon_that_will_not_start_is_one_clear_error(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A node whose nvidia-cuda-mps-control refuses to start (MPS not allowed): a DeviceError naming
    the exit code and what it printed, and the seeds never start."""
    fake = tmp_path / "nvidia-cuda-mps-control"
    fake.write_text("#!/bin/sh\necho 'MPS not allowed on this node' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError, match=r"failed \(exit 3: MPS not allowed on this node\)"):
        train_pack([seed_cmd(tmp_path, 0, 60)], None, mps=True)
    assert not (tmp_path / "seed0.cores").exists()

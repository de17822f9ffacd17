"""The compute device of a run: `--device` validated, described for run.json and the resume state.

What is reproducible across devices: a run repeats bit for bit on the same kind of device with the
same software (and, on CUDA, in deterministic mode); the CPU and CUDA draw different random streams
and round differently, so a run on one kind of device is a different sample from the same algorithm,
not the same numbers. A run resumed on another kind of device goes on correctly but is no longer
bit-identical to an uninterrupted run; `iapo train` says so when it happens.
"""

from __future__ import annotations

import os

import torch

from iapo.errors import DeviceError

SUPPORTED = ("cpu", "cuda")
CUBLAS_WORKSPACE = ":4096:8"  # what torch.use_deterministic_algorithms asks of cuBLAS (CUDA ≥ 10.2)


def available() -> list[str]:
    """The devices this process can train on, e.g. ['cpu', 'cuda:0 (NVIDIA H200)']."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return out


def resolve_device(name: str | torch.device) -> torch.device:
    """`name` (cpu | cuda | cuda:N, or a torch.device) as a torch.device that exists here, or a
    DeviceError that names the value, the devices available and the fix. Called once, where a
    device enters the program (`train`, `evaluate`, `Agent.load`, the diagnostics); what follows
    takes the torch.device it returns."""
    name = str(name)
    here = ", ".join(available())
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(
            f"--device {name!r} is not a device name torch knows. Use one of cpu, cuda, cuda:N; "
            f"available on this machine: {here}."
        ) from None
    if device.type not in SUPPORTED:
        raise DeviceError(
            f"--device {name!r}: iapo trains on cpu or cuda only; available on this machine: {here}."
        )
    if device.type == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
        raise DeviceError(
            f"--device {name!r}: torch {torch.__version__} ({build}) sees no CUDA device on this "
            f"machine; available: {here}. Train with --device cpu here, or run on a GPU node with a "
            "CUDA build of torch (see the README's set-up section for the torch builds)."
        )
    index = 0 if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name!r}: there is no CUDA device {index}; available: {here}.")
    return torch.device("cuda", index)


def describe(device: torch.device) -> dict:
    """Device, GPU name, CUDA and torch versions: recorded in run.json and in every resume state."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"device": str(device), "device_kind": device.type, "gpu_name": gpu,
            "cuda_version": torch.version.cuda, "torch_version": torch.__version__,
            "deterministic": torch.are_deterministic_algorithms_enabled()}


def kind(info: dict | None) -> str:
    """'cpu', or 'cuda (GPU name)', of a `describe` record; 'unknown' for states saved before it."""
    if not info:
        return "unknown"
    return info["device_kind"] + (f" ({info['gpu_name']})" if info.get("gpu_name") else "")


def set_deterministic() -> None:
    """Deterministic kernels (`torch.use_deterministic_algorithms`); on CUDA, cuBLAS needs a fixed
    workspace (CUBLAS_WORKSPACE_CONFIG), set here before the first CUDA call unless already set.
    An operation with no deterministic kernel then raises instead of running nondeterministically."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)

"""CUDA graphs of the agent's update and acting (`training.graphs: on`): static buffers, one capture, replays.

On a GPU the networks of this study are small: an iterative update is about 2,100 small kernels
and acting (K iterations for one state) a few hundred, so the time goes to launching them, not to
running them. A CUDA graph (`torch.cuda.CUDAGraph`, as in LeanRL) records the kernels of one call
once and replays them with one launch. A replay runs the same kernels on the same memory, so
everything a step reads or writes must stay where the capture saw it; `StaticStep` arranges that:

* inputs: preallocated tensors, refilled in place before each call (the replay batch, the state);
* parameters, Adam's state (capturable: its step count is a device tensor, so no host read and no
  Python number baked into the graph), the agent's device update counter and its non-finite
  record: persistent tensors, only ever updated in place, never rebound;
* weight snapshots (the stacked Q ensemble of `iapo.values.fused`): normally cached until a weight
  changes, but a cache hit during the capture would freeze the weights of that moment into the
  graph. The step runs under `step_snapshots`: each ensemble is stacked once per step, inside the
  graph, and re-stacked by every replay. Once is enough: every weight read of a step comes before
  its first optimizer step (the losses are all computed first). Outside the graph the caches key on
  the weights' `_version`, which a replay's in-place updates do not bump; they key on the count of
  replays (`generation`) too, so an eager call after a replay never reads a stale one;
* constants made inside the step are written by fills on the device, never copied from host
  memory (`torch.tensor([...], device=...)`), which a capture cannot record;
* outputs (logged metrics, the action): written into one packed tensor inside the graph and
  cloned after each replay, because the next replay overwrites the graph's own;
* random numbers: CUDA graphs support the default CUDA generator through graph-safe RNG (its
  philox seed and offset are read from device tensors at replay, and each replay advances the
  offset by what the captured kernels consume), so every replay draws new samples, in the
  order eager calls would have drawn them from the same generator state;
* what changes from call to call on the host stays outside the graph: the Python update counter
  and the hard copy of the target networks every k updates (`Agent.after_update`).

Without capture (`capture=False`, any device) the same static-buffer code runs eagerly: how the
CPU tests check it against the eager update and acting; they also replay an emulated graph on the
CPU (tests/test_graphs.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

WARMUP = 3
"""Eager calls (on a side stream) before the capture: they initialise Adam's state and the agent's
non-finite record, which must exist before the graph records updates to them in place."""

_step_cache: dict | None = None  # the snapshots of the step running under `step_snapshots`
_generation = 0


def generation() -> int:
    """How many graph replays this process has run. A replay does not go through PyTorch's
    dispatcher, so the in-place updates it makes (Adam, Polyak averaging) bump no tensor's
    `_version`; every weight-snapshot cache keys on this count too, so that no eager caller after a
    replay reads weights cached before it."""
    return _generation


def replayed() -> None:
    """Record one graph replay (`StaticStep` calls it after each): invalidates every snapshot cache."""
    global _generation
    _generation += 1


@contextlib.contextmanager
def step_snapshots() -> Iterator[None]:
    """One step's weight snapshots (`iapo.values.fused.stacked`, and what `FusedValue.action_grad`
    keeps on them): taken at the step's first read of each ensemble, shared by its later reads, and
    dropped when the block ends, never cached past it. Captured into a graph, they are re-taken on
    every replay from the weights of that moment. Only for a step whose weight reads all come
    before its first weight update (an update step: its losses first, then its optimizer steps)."""
    global _step_cache
    previous, _step_cache = _step_cache, {}
    try:
        yield
    finally:
        _step_cache = previous


def step_cache() -> dict | None:
    """The snapshots of the step under `step_snapshots`, None outside one."""
    return _step_cache


def set_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Make an Adam capturable (its step count a tensor on the parameters' device, bias corrections
    computed there) or not (step count on the CPU); also after `load_state_dict`, which brings back
    the flag and the step counts of the run that saved the state, whatever its device. A capturable
    Adam's eager steps (the warm-up before a capture, a resumed run's first calls) are meant, so
    torch's warning about capturable steps run uncaptured is marked as already given."""
    if capturable:
        optimizer._warned_capturable_if_run_uncaptured = True
    for group in optimizer.param_groups:
        group["capturable"] = capturable
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            device = p.device if capturable else torch.device("cpu")
            if isinstance(step, Tensor) and step.device != device:
                optimizer.state[p]["step"] = step.to(device)


Outputs = dict[str, Tensor]


class StaticStep:
    """`fn` run on static input buffers; captured as a CUDA graph after `warmup` eager calls if
    `capture`.

    `fn` maps tensors to a dict of tensors of one dtype. Each call copies its inputs into the
    static buffers (allocated at the first call: same shapes, dtypes and device), then runs `fn` on
    them: eagerly (always without `capture`; on a side stream for the first `warmup` calls with
    it), or, once captured, by `graph.replay()`. The outputs come back as views of one fresh
    tensor, so they stay valid after later calls.
    """

    def __init__(self, fn: Callable[..., Outputs], capture: bool, warmup: int = WARMUP) -> None:
        if capture and not torch.cuda.is_available():
            raise ValueError("CUDA graph capture needs a CUDA device")
        self.fn, self.capture, self.warmup = fn, capture, warmup
        self.inputs: list[Tensor] | None = None
        self.layout: list[tuple[str, torch.Size]] = []
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.packed: Tensor | None = None      # the graph's own output, overwritten by each replay
        self.stream: torch.cuda.Stream | None = None

    def __call__(self, *inputs: Tensor) -> Outputs:
        self.fill(inputs)
        self.calls += 1
        if not self.capture:
            return self.unpack(self.run())
        with self.on_device():
            if self.calls <= self.warmup:
                return self.unpack(self.run_on_side_stream())
            if self.graph is None:
                self.record()
            self.graph.replay()
            replayed()
            return self.unpack(self.packed.clone())

    def fill(self, inputs: tuple[Tensor, ...]) -> None:
        """Copy the call's inputs into the static buffers, in place (allocated at the first call)."""
        if self.inputs is None:
            self.inputs = [torch.empty_like(x, memory_format=torch.contiguous_format) for x in inputs]
        shapes = [tuple(x.shape) for x in inputs]
        if shapes != [tuple(x.shape) for x in self.inputs]:  # copy_ would broadcast a smaller input
            raise ValueError(f"static inputs of shapes {[tuple(x.shape) for x in self.inputs]}, got {shapes}")
        for static, x in zip(self.inputs, inputs, strict=True):
            static.copy_(x)

    def run(self) -> Tensor:
        """`fn` on the static buffers, its outputs packed into one flat tensor: the code a graph records."""
        with step_snapshots():
            outputs = self.fn(*self.inputs)
        self.layout = [(name, value.shape) for name, value in outputs.items()]
        return torch.cat([value.reshape(-1) for value in outputs.values()])

    def unpack(self, packed: Tensor) -> Outputs:
        sizes = [math.prod(shape) for _, shape in self.layout]
        return {name: part.view(shape) for (name, shape), part in
                zip(self.layout, packed.split(sizes), strict=True)}

    def on_device(self) -> contextlib.AbstractContextManager:
        """The inputs' GPU as the current device: its streams run the warm-up, capture and replays."""
        return torch.cuda.device(self.inputs[0].device)

    def run_on_side_stream(self) -> Tensor:
        """An eager call on a side stream, as a capture runs (PyTorch's recipe for the warm-up)."""
        if self.stream is None:
            self.stream = torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            packed = self.run()
        torch.cuda.current_stream().wait_stream(self.stream)
        return packed

    def record(self) -> None:
        """Capture `fn` on the static buffers once (nothing runs: the caller replays it)."""
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.packed = self.run()


class StaticSteps:
    """An agent's update and its acting (stochastic and deterministic) as `StaticStep`s, captured as
    CUDA graphs if `capture`, its Adam optimizers then capturable. Without capture the same
    static-buffer code runs eagerly: how the CPU tests check it against the eager path."""

    def __init__(self, update: Callable[..., Outputs], act: Callable[..., Outputs],
                 optimizers: list[torch.optim.Optimizer], capture: bool) -> None:
        self.capture = capture
        for opt in optimizers:
            set_capturable(opt, capture)
        self.update = StaticStep(update, capture)
        self.act = {det: StaticStep(functools.partial(act, deterministic=det), capture)
                    for det in (False, True)}

    def steps(self) -> list[StaticStep]:
        return [self.update, *self.act.values()]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU, whose calls return when done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)

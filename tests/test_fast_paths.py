"""The fast path against the reference path: same samples, same numbers.

Two kinds of check, so that they hold on any x86-64 CPU (GEMM kernels round differently per CPU):

* the algebra, in float64: agents cast to double, noise drawn in float32 and cast
  (`standard_normal`), so both paths see the same numbers; policy losses, updates, acting and whole
  short training runs agree to `DOUBLE` (1e-10) or `DOUBLE_RTOL` (1e-9): rounding at 1e-16 cannot reach
  these bounds, a wrong term exceeds them by orders of magnitude (shown by injected errors);
* the float32 rounding of one evaluation: bit-identical where the arithmetic is the same (Q̂ and J
  values: the members' products are the same GEMMs; the gated update of the iterative optimizer);
  ∇_a Q̂, ∇_λ J and the trained parameters' gradients (hand-derived backward, other summation order)
  agree to a relative error below 1e-5 (one J evaluation; measured ~1e-7 to 1e-6) or 1e-3 (after
  K = 5 iterations that feed ∇_λ J back through LayerNorms). Nothing in float32 is compared after
  several updates: Adam turns rounding-level gradients into lr-sized steps, by machine.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from iapo.agent import Agent, Batch
from iapo.config import QArchitecture, load_params, resolve
from iapo.objective import Objective
from iapo.optimizers.iterative import IterativeOptimizer
from iapo.train import Run
from iapo.values.fused import FusedValue, stacked, supports
from iapo.values.q_ensemble import QEnsemble, pessimistic, pessimistic_weights
from tests.conftest import small_params

OBS_DIM, ACT_DIM = 17, 6


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖."""
    return ((a - b).norm() / b.norm()).item()


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def with_training(cfg, **update):
    return dataclasses.replace(cfg, training=cfg.training.model_copy(update=update))


def pair(cfg, arch: str | None = None, params=None, dtype: torch.dtype = torch.float32,
         **training) -> tuple[Agent, Agent]:
    """(reference, fast) agents with the same weights, in `dtype`; the target Q-networks' output layers
    scaled as after training (`trained_like`). `training` updates the fast agent's settings."""
    if arch is not None:
        cfg = dataclasses.replace(cfg, q_arch=arch, q_architecture=params.q_architectures[arch])
    ref = Agent(with_training(cfg, fused=False), OBS_DIM, ACT_DIM)
    trained_like(ref.q_target)
    fast = Agent(with_training(cfg, fused=True, **training), OBS_DIM, ACT_DIM)
    fast.load_state_dict(ref.state_dict())
    return ref.to(dtype), fast.to(dtype)


def trained_like(ensemble: QEnsemble) -> QEnsemble:
    """Give the output layers a realistic scale (at initialisation they are ~1e-3, so Q̂ is flat)."""
    with torch.no_grad():
        for net in ensemble.members:
            net.head.weight.normal_(0.0, 0.3)
    return ensemble


def batch(n: int = 64, seed: int = 0, dtype: torch.dtype = torch.float32) -> Batch:
    g = torch.Generator().manual_seed(seed)
    fields = (torch.randn(n, OBS_DIM, generator=g), torch.rand(n, ACT_DIM, generator=g) * 2 - 1,
              torch.randn(n, generator=g), torch.randn(n, OBS_DIM, generator=g),
              (torch.rand(n, generator=g) < 0.1).float())
    return Batch(*(f.to(dtype) for f in fields))


DOUBLE = 1e-10
"""Agreement of the two paths in float64 after a few updates or K iterations: float64 rounds at
1.1e-16, and in float64 no step amplifies rounding to near this bound (Adam's division by √v does so
in float32, where a gradient at rounding level, ~1e-7, is far above its ε = 1e-8). The float64
checks prove the algebra on any machine; the float32 ones bound the rounding of one evaluation."""


# ------------------------------------------------------------------ eq. 13 and the Q ensemble
@pytest.mark.parametrize("std", ["population", "unbiased"])
@pytest.mark.parametrize("members", [2, 3])
def test_pessimistic_weights_are_the_gradient_of_eq13(std, members):
    qs = torch.randn(members, 50, dtype=torch.float64)
    qs[:, 0] = 1.0  # a tie: sign 0, as autograd's |·|
    q = qs.clone().requires_grad_()
    expected, = torch.autograd.grad(pessimistic(q, 2.5, std).sum(), q)
    torch.testing.assert_close(pessimistic_weights(qs, 2.5, std), expected, equal_nan=True)


@pytest.mark.parametrize("arch", ["A", "B"])
@pytest.mark.parametrize("std", ["population", "unbiased"])
def test_fused_value_matches_the_autograd_reference(params, arch, std):
    torch.manual_seed(0)
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures[arch])).requires_grad_(False)
    obs = torch.randn(64, OBS_DIM).expand(10, 64, OBS_DIM)
    actions = (torch.rand(10, 64, ACT_DIM) * 2 - 1).requires_grad_()
    reference = pessimistic(ens(obs, actions), 2.5, std)
    grad_ref, = torch.autograd.grad(reference.sum(), actions)
    for chunk_rows in (640, 100):  # one chunk, and chunks that split the samples
        value = FusedValue(ens, 2.5, std, chunk_rows=chunk_rows)
        q, grad = value.value_and_action_grad(obs, actions.detach())
        assert torch.equal(q, reference.detach())        # the same products: bit-identical Q̂
        assert rel_err(grad, grad_ref) < 1e-5             # hand-derived backward: rounding only
        # as a ValueFn inside autograd: the backward multiplies by the saved ∇_a Q̂
        a = actions.detach().requires_grad_()
        out = value(obs, a)
        assert torch.equal(out.detach(), reference.detach())
        (out * 3.0).sum().backward()
        assert rel_err(a.grad, 3.0 * grad_ref) < 1e-5
    # the acting form: the states' part of the first layer computed once
    grad_fn = FusedValue(ens, 2.5, std).action_grad_fn(obs[0], 10)
    assert rel_err(grad_fn(actions.detach()), grad_ref) < 1e-5


def test_fused_value_is_a_snapshot_refreshed_when_weights_change(params):
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"])).requires_grad_(False)
    value = FusedValue(ens, 1.0)
    obs, a = torch.randn(5, OBS_DIM), torch.rand(5, ACT_DIM)
    first = stacked(ens)
    assert stacked(ens) is first                          # cached while the weights are unchanged
    with torch.no_grad():
        for p in ens.parameters():
            p.mul_(1.5)                                   # in place, as Polyak averaging or Adam
    assert stacked(ens) is not first
    torch.testing.assert_close(value(obs, a), pessimistic(ens(obs, a), 1.0), rtol=0, atol=0)


def test_fused_value_falls_back_to_autograd_for_state_gradients(params):
    ens = QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"]).requires_grad_(False)
    obs = torch.randn(4, OBS_DIM, requires_grad=True)  # e.g. model-predicted states (eq. 14)
    FusedValue(ens, 1.0)(obs, torch.rand(4, ACT_DIM)).sum().backward()
    assert obs.grad is not None and obs.grad.abs().sum() > 0


def test_unsupported_ensembles_use_the_reference_path(make_cfg):
    tanh = QArchitecture(n_layers=2, n_units=32, nonlinearity="tanh", layer_norm=False,
                         connectivity="sequential")
    assert not supports(QEnsemble(OBS_DIM, ACT_DIM, tanh))
    assert not supports(nn.Linear(3, 1))
    cfg = make_cfg(variant="iterative")
    agent = Agent(dataclasses.replace(cfg, q_architecture=tanh), OBS_DIM, ACT_DIM)
    assert not agent.fused_q and not isinstance(agent.q_value_fn(1.0), FusedValue)
    assert agent.update(batch(16))["q_loss"] >= 0  # still trains, through autograd


# ------------------------------------------------------------------ the objective J (eq. 8)
@pytest.mark.parametrize("arch", ["A", "B"])
def test_value_and_grad_matches_autograd_through_J(params, arch):
    torch.manual_seed(1)
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures[arch])).requires_grad_(False)
    obs, alpha = torch.randn(32, OBS_DIM), torch.tensor(0.3)
    mu, log_sigma = torch.randn(32, ACT_DIM) * 0.5, torch.randn(32, ACT_DIM) * 0.3 - 0.5
    reference = Objective(lambda s, a: pessimistic(ens(s, a), 2.5), obs, alpha, 10)
    fast = Objective(FusedValue(ens, 2.5), obs, alpha, 10)
    torch.manual_seed(7)
    est_ref, *grad_ref = reference.value_and_grad(mu, log_sigma)  # autograd through J
    torch.manual_seed(7)
    est, *grad = fast.value_and_grad(mu, log_sigma)              # pathwise gradient by hand
    assert torch.equal(est.J, est_ref.J) and torch.equal(est.actions, est_ref.actions)
    for g, g_ref in zip(grad, grad_ref, strict=True):
        assert rel_err(g, g_ref) < 1e-5
    torch.manual_seed(7)
    for g, g_ref in zip(fast.grad_fn()(mu, log_sigma), grad_ref, strict=True):
        assert rel_err(g, g_ref) < 1e-5


# ------------------------------------------------------------------ the policy optimizers
def test_fused_step_is_bit_identical_to_step(params):
    opt = IterativeOptimizer(OBS_DIM, ACT_DIM, params.policy, [-10.0, 0.5], 5, 1.0, "layernorm")
    with torch.no_grad():
        for p in opt.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    obs, blocks = torch.randn(20, OBS_DIM), [torch.randn(20, ACT_DIM) for _ in range(4)]
    expected = opt.step(obs, *blocks)
    got = opt.fused_step(opt.prepare(obs), *blocks)
    for e, g in zip(expected, got, strict=True):
        assert torch.equal(e, g)


def _grads(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variant", ["direct", "iterative"])
@pytest.mark.parametrize("arch", ["A", "B"])
def test_policy_loss_value_and_gradients_match(make_cfg, params, variant, arch, dtype):
    ref, fast = pair(make_cfg(variant=variant), arch, params, dtype)
    b = batch(32, dtype=dtype)
    out = {}
    for name, agent in (("ref", ref), ("fast", fast)):
        torch.manual_seed(3)
        loss, trace, _ = agent.policy_loss(b)
        loss.backward()
        out[name] = loss.detach(), torch.stack(trace.J), _grads(agent.optimizer)
    (loss_r, J_r, g_r), (loss_f, J_f, g_f) = out["ref"], out["fast"]
    assert torch.equal(J_f[0], J_r[0])                 # J at λ0: same samples, same products
    tol = 1e-5 if variant == "direct" else 1e-3        # K iterations feed ∇λJ back through LayerNorms
    tol = DOUBLE if dtype == torch.float64 else tol
    assert rel_err(J_f, J_r) < tol and abs((loss_f - loss_r) / loss_r) < tol
    assert rel_err(g_f, g_r) < tol


def test_iterative_with_a_generic_value_function_is_bit_identical_in_J(params):
    """With a plain callable Q̂ the fused loop uses autograd for ∇λJ: J, λ and the loss are the same
    numbers; only the φ-gradient is summed in another order."""

    def bowl(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return -5.0 * (action - 0.5 * torch.tanh(obs[..., :ACT_DIM])).square().sum(-1)

    opt = IterativeOptimizer(OBS_DIM, ACT_DIM, params.policy, [-10.0, 0.5], 5, 1.0, "layernorm")
    with torch.no_grad():
        for p in opt.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    objective = Objective(bowl, torch.randn(16, OBS_DIM), 0.2, 10)
    traces, grads = [], []
    for fused in (False, True):
        opt.fused = fused
        opt.zero_grad()
        torch.manual_seed(5)
        trace = opt.optimize(objective, train=True)
        trace.loss.backward()
        traces.append(trace)
        grads.append(_grads(opt))
    ref, fast = traces
    assert all(torch.equal(a, b) for a, b in zip(ref.J, fast.J, strict=True))
    assert torch.equal(ref.loss, fast.loss) and torch.equal(ref.mu, fast.mu)
    assert rel_err(grads[1], grads[0]) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_acting_matches_the_reference(make_cfg, dtype):
    ref, fast = pair(make_cfg(variant="iterative"), dtype=dtype)
    obs = torch.randn(OBS_DIM).numpy()
    for deterministic in (True, False):
        torch.manual_seed(11)
        a_ref = ref.act(obs, deterministic)
        torch.manual_seed(11)
        a_fast = fast.act(obs, deterministic)
        if dtype == torch.float64:
            np.testing.assert_allclose(a_fast, a_ref, rtol=DOUBLE, atol=DOUBLE)
        else:  # K = 5 iterations feed ∇λJ back through LayerNorms
            torch.testing.assert_close(a_fast, a_ref, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ the agent and training
@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_updates_match(make_cfg, variant):
    """Three updates in float64: the same metrics and weights up to `DOUBLE`. (In float32 the weights
    drift by up to Adam's step, lr = 3e-4, where a gradient is at rounding level: machine-dependent.)"""
    ref, fast = pair(make_cfg(variant=variant), dtype=torch.float64)
    b = batch(64, dtype=torch.float64)
    with default_dtype(torch.float64):
        for step in range(3):
            metrics = []
            for agent in (ref, fast):
                torch.manual_seed(step)
                metrics.append(agent.update(b))
            assert metrics[0].keys() == metrics[1].keys()
            for key in metrics[0]:
                got, expected = float(metrics[1][key]), float(metrics[0][key])
                assert got == pytest.approx(expected, rel=DOUBLE, abs=DOUBLE), key
    for p_ref, p_fast in zip(ref.parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(p_fast, p_ref, rtol=DOUBLE, atol=DOUBLE)


def _run_metrics(tmp_path, env: str, variant: str, fused: bool,
                 dtype: torch.dtype = torch.float64) -> pd.DataFrame:
    """metrics.csv of a 170-step run (20 updates from step 150) whose agent computes in `dtype`.

    The agent is built in float32 and cast, and `standard_normal` draws float32 numbers for every
    dtype, so a float64 run starts from the float32 run's weights and draws its noise."""
    params = load_params(small_params(tmp_path, steps=170, initial_random_steps=150, log_every=10,
                                      eval_every=170, checkpoint_steps=[170], resume_every=170))
    cfg = with_training(resolve(params, env, variant, 0, "smoke"), fused=fused)
    out = tmp_path / f"{env}-{variant}-{fused}-{dtype}"
    run = Run(cfg, out)
    run.agent.to(dtype)
    with default_dtype(dtype):
        run.run()
    return pd.read_csv(out / "metrics.csv")


DOUBLE_RTOL = 1e-9
"""Agreement of the float64 runs, relative to max(|value|, 1e-6): float64 rounds at 1.1e-16, and
neither the 20 updates (Adam divides by √v, which amplifies rounding noise only where a gradient
is itself at rounding level, ~1e-16 ≪ Adam's ε = 1e-8 in float64) nor MuJoCo (HalfCheetah's contacts
turn a 1e-6 change of the actions into 7e-2 within 60 updates: a 1e5 gain) bring that above ~1e-11 on
any IEEE-754 machine. In float32 the same gains reach 1e-4 to 1e-1, which is why this check runs in
float64. A wrong term in the fast path moves the metrics by ≥ 1e-3 (`test_…_fails_on_a_wrong_gradient`)."""


def _disagreement(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """The largest difference over rows and metric columns, relative to max(|b|, 1e-6)."""
    d = (a - b).abs() / np.maximum(b.abs(), 1e-6)
    return float(d.fillna(0.0).to_numpy().max())


@pytest.mark.slow
@pytest.mark.parametrize("env", ["InvertedPendulum-v2", "HalfCheetah-v2"])
@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_short_training_runs_log_the_same_metrics(tmp_path, env, variant):
    """20 updates on each path from the same seed, in float64: the same numbers up to float64
    rounding (`DOUBLE_RTOL`) on every logged row, acting, replay, targets and α included.

    float64 makes this a machine-independent check of the algebra; the float32 rounding of the fast
    path is checked per operation above, where no training loop amplifies it."""
    ref = _run_metrics(tmp_path, env, variant, fused=False)
    fast = _run_metrics(tmp_path, env, variant, fused=True)
    assert list(ref.columns) == list(fast.columns)
    before = ref["updates"] == 0
    pd.testing.assert_frame_equal(fast[before], ref[before])
    assert (ref["updates"] > 0).sum() >= 2
    assert _disagreement(fast, ref) < DOUBLE_RTOL


@pytest.mark.slow
@pytest.mark.parametrize("error", ["sign of ∇a Q", "pessimism term dropped"])
def test_the_training_run_check_fails_on_a_wrong_gradient(tmp_path, monkeypatch, error):
    """The check above catches a real error in the fast path (`FusedValue`, used by the fast path
    only): ∇_a Q̂ with its sign flipped, or ∂Q̂/∂Q_i without eq. 13's ∓(β/2) sign(Q1 − Q2) term."""
    if error == "sign of ∇a Q":
        original = FusedValue.value_and_action_grad

        def flipped(self, obs, action, need_grad=True):
            q, grad = original(self, obs, action, need_grad)
            return q, None if grad is None else -grad
        monkeypatch.setattr(FusedValue, "value_and_action_grad", flipped)
    else:
        def half_only(self, net, qs):  # ∂Q̂/∂Q_i = 1/2: the mean of the members, no pessimism
            return net.head_terms(self.beta)[0].expand(-1, qs.shape[1], -1).clone()
        monkeypatch.setattr(FusedValue, "_head_grad", half_only)
    ref = _run_metrics(tmp_path, "InvertedPendulum-v2", "direct", fused=False)
    wrong = _run_metrics(tmp_path, "InvertedPendulum-v2", "direct", fused=True)
    assert _disagreement(wrong, ref) > 1e3 * DOUBLE_RTOL

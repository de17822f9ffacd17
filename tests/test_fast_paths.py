"""The fast path (issue 6) against the reference path: same samples, same numbers.

Bit-identical where the arithmetic is the same (Q̂ and J values: the members' products are the same
GEMMs; the gated update of the iterative optimizer); otherwise within float32 rounding, stated per
test: ∇_a Q̂, ∇_λ J and the trained parameters' gradients (hand-derived backward, other summation
order) agree to a relative error below 1e-5 (one J evaluation) or 1e-3 (after K = 5 iterations
that feed ∇_λ J back through LayerNorms); short training runs agree to 1e-3 relative in their logged
metrics over the first updates.
"""

from __future__ import annotations

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
from tests.test_train import small_params

OBS_DIM, ACT_DIM = 17, 6


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖."""
    return ((a - b).norm() / b.norm()).item()


def with_training(cfg, **update):
    return dataclasses.replace(cfg, training=cfg.training.model_copy(update=update))


def pair(cfg, arch: str | None = None, params=None, **training) -> tuple[Agent, Agent]:
    """(reference, fast) agents with the same weights; the target Q-networks' output layers scaled
    as after training (`trained_like`). `training` updates the fast agent's settings."""
    if arch is not None:
        cfg = dataclasses.replace(cfg, q_arch=arch, q_architecture=params.q_architectures[arch])
    ref = Agent(with_training(cfg, fused=False), OBS_DIM, ACT_DIM)
    trained_like(ref.q_target)
    fast = Agent(with_training(cfg, fused=True, **training), OBS_DIM, ACT_DIM)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def trained_like(ensemble: QEnsemble) -> QEnsemble:
    """Give the output layers a realistic scale (at initialisation they are ~1e-3, so Q̂ is flat)."""
    with torch.no_grad():
        for net in ensemble.members:
            net.head.weight.normal_(0.0, 0.3)
    return ensemble


def batch(n: int = 64, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, OBS_DIM, generator=g), torch.rand(n, ACT_DIM, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, OBS_DIM, generator=g),
                 (torch.rand(n, generator=g) < 0.1).float())


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


@pytest.mark.parametrize("variant", ["direct", "iterative"])
@pytest.mark.parametrize("arch", ["A", "B"])
def test_policy_loss_value_and_gradients_match(make_cfg, params, variant, arch):
    ref, fast = pair(make_cfg(variant=variant), arch, params)
    b = batch(32)
    out = {}
    for name, agent in (("ref", ref), ("fast", fast)):
        torch.manual_seed(3)
        loss, trace, _ = agent.policy_loss(b)
        loss.backward()
        out[name] = loss.detach(), torch.stack(trace.J), _grads(agent.optimizer)
    (loss_r, J_r, g_r), (loss_f, J_f, g_f) = out["ref"], out["fast"]
    assert torch.equal(J_f[0], J_r[0])                 # J at λ0: same samples, same products
    tol = 1e-5 if variant == "direct" else 1e-3        # K iterations feed ∇λJ back through LayerNorms
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


def test_acting_matches_the_reference(make_cfg):
    ref, fast = pair(make_cfg(variant="iterative"))
    obs = torch.randn(OBS_DIM).numpy()
    for deterministic in (True, False):
        torch.manual_seed(11)
        a_ref = ref.act(obs, deterministic)
        torch.manual_seed(11)
        a_fast = fast.act(obs, deterministic)
        torch.testing.assert_close(a_fast, a_ref, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ the agent and training
@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_updates_match(make_cfg, variant):
    ref, fast = pair(make_cfg(variant=variant))
    b = batch(64)
    for step in range(3):
        metrics = []
        for agent in (ref, fast):
            torch.manual_seed(step)
            metrics.append(agent.update(b))
        assert metrics[0].keys() == metrics[1].keys()
        for key in metrics[0]:
            assert metrics[1][key] == pytest.approx(metrics[0][key], rel=1e-4, abs=1e-6), key
    # Adam moves each weight by ≈ lr = 3e-4 per step whatever the gradient's size, so a weight whose
    # gradient is rounding noise may differ by up to a step: atol is a third of one
    for p_ref, p_fast in zip(ref.parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(p_fast, p_ref, rtol=1e-4, atol=1e-4)


def test_bf16_is_close_and_only_inside_J(make_cfg):
    cfg = make_cfg(variant="iterative")
    fp32, bf16 = pair(cfg)[1], pair(cfg, precision="bf16")[1]
    bf16.load_state_dict(fp32.state_dict())
    assert fp32.q_value_fn(1.0).dtype == torch.float32 and bf16.q_value_fn(1.0).dtype == torch.bfloat16
    b = batch(64)
    torch.manual_seed(0)
    y32 = fp32.bellman_target(b)
    torch.manual_seed(0)
    y16 = bf16.bellman_target(b)
    assert rel_err(y16, y32) < 0.05  # λ at s' from bf16 J; the target's Q̂ itself is fp32
    torch.manual_seed(0)
    loss32, _, _ = fp32.policy_loss(b)
    torch.manual_seed(0)
    loss16, _, _ = bf16.policy_loss(b)
    assert abs((loss16 - loss32) / loss32).item() < 0.05


def _run_metrics(tmp_path, env: str, variant: str, fused: bool, perturb: float = 0.0) -> pd.DataFrame:
    """metrics.csv of a 210-step run (60 updates from step 150), actions scaled by (1 + perturb)."""
    params = load_params(small_params(tmp_path, steps=210, initial_random_steps=150, log_every=30,
                                      eval_every=210, checkpoint_steps=[210], resume_every=210))
    cfg = with_training(resolve(params, env, variant, 0, "smoke"), fused=fused)
    out = tmp_path / f"{variant}-{fused}-{perturb}"
    run = Run(cfg, out)
    if perturb:
        act = run.agent.act
        run.agent.act = lambda obs, deterministic=False: act(obs, deterministic) * np.float32(1 + perturb)
    run.run()
    return pd.read_csv(out / "metrics.csv")


def _row_rel_diff(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Per logged row, the largest relative difference over the metric columns."""
    d = (a - b).abs() / (b.abs() + 1e-8)
    return d.fillna(0.0).max(axis=1).to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize("env", ["InvertedPendulum-v2", "HalfCheetah-v2"])
@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_short_training_runs_log_the_same_metrics(tmp_path, env, variant):
    """60 updates on each path from the same seed.

    Rows before the first update are identical; after it, each row's metrics agree to 1e-4 relative,
    or, where the environment amplifies float differences (HalfCheetah's contacts: a 1e-6 relative
    change of the actions moves the metrics by ~7e-2 within 60 steps), by no more than a reference
    run whose actions were scaled by 1 + 1e-6.
    """
    ref = _run_metrics(tmp_path, env, variant, fused=False)
    fast = _run_metrics(tmp_path, env, variant, fused=True)
    perturbed = _run_metrics(tmp_path, env, variant, fused=False, perturb=1e-6)
    assert list(ref.columns) == list(fast.columns)
    before = ref["updates"] == 0
    pd.testing.assert_frame_equal(fast[before], ref[before])
    bound = np.maximum(1e-4, _row_rel_diff(perturbed, ref))
    assert (_row_rel_diff(fast, ref) <= bound).all(), (_row_rel_diff(fast, ref), bound)

"""Acting on the fast path (`IterativeOptimizer.act_fused`, `FusedValue.action_grad`) against the
reference, and which path `Agent.act` takes.

Tolerances, stated per test:
* the fast acting loop (`Objective.grad_fn` + `fused_step` per iteration) against the reference
  path (autograd through J, `optimize(score=False)`), same samples: λ_K to 1e-5 relative (float32
  rounding, fed back through K = 5 LayerNorm'd iterations; measured ~1e-7);
* ∇_a Q̂ by hand against autograd: 1e-5 relative (measured ~2e-7);
* the agent's action against the loop it dispatches to: bit-identical (the same operations).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from iapo.agent import Agent
from iapo.config import QArchitecture
from iapo.objective import Objective
from iapo.optimizers.base import Trace
from iapo.optimizers.iterative import IterativeOptimizer
from iapo.values.fused import ChunkActionGrad, FusedValue, PlainActionGrad
from iapo.values.q_ensemble import QEnsemble, pessimistic

OBS_DIM, ACT_DIM = 17, 6
ELU_PLAIN = QArchitecture(n_layers=2, n_units=64, nonlinearity="elu", layer_norm=False,
                          connectivity="sequential")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def trained_like(ensemble: QEnsemble) -> QEnsemble:
    """Output layers at a realistic scale (at initialisation they are ~1e-3 and Q̂ is flat)."""
    with torch.no_grad():
        for net in ensemble.members:
            net.head.weight.normal_(0.0, 0.3)
    return ensemble.requires_grad_(False)


def optimizer(params, input_norm: str = "layernorm") -> IterativeOptimizer:
    opt = IterativeOptimizer(OBS_DIM, ACT_DIM, params.policy, [-10.0, 0.5], 5, 1.0, input_norm)
    with torch.no_grad():
        for p in opt.parameters():  # away from the zero head, so the iterations move λ
            p.add_(torch.randn_like(p) * 0.1)
    return opt


def ensemble(params, arch: str, seed: int) -> QEnsemble:
    """A trained-like Q ensemble of architecture A, B or a plain ELU one, drawn from `seed`."""
    torch.manual_seed(seed)
    q_arch = ELU_PLAIN if arch == "elu" else params.q_architectures[arch]
    return trained_like(QEnsemble(OBS_DIM, ACT_DIM, q_arch))


def fast_and_reference(opt: IterativeOptimizer, ens: QEnsemble, obs: torch.Tensor,
                       beta: float = 2.5) -> tuple[Trace, Trace]:
    """λ_K from `act_fused` and from the reference loop, same samples."""
    alpha = torch.tensor(0.3)
    fast = Objective(FusedValue(ens, beta), obs, alpha, 10)
    reference = Objective(lambda s, a: pessimistic(ens(s, a), beta), obs, alpha, 10)
    traces = []
    for run in (lambda: opt.act_fused(fast), lambda: opt.optimize(reference, score=False)):
        torch.manual_seed(7)
        traces.append(run())
    return traces[0], traces[1]


@pytest.mark.parametrize("arch", ["A", "B", "elu"])
@pytest.mark.parametrize("rows", [1, 3])
def test_fast_act_matches_the_reference(params, arch, rows):
    ens = ensemble(params, arch, 0)
    opt, obs = optimizer(params), torch.randn(rows, OBS_DIM)
    assert isinstance(FusedValue(ens, 2.5).action_grad(), ChunkActionGrad if arch == "B" else PlainActionGrad)
    fast, reference = fast_and_reference(opt, ens, obs)
    assert fast.J == [] and fast.mu.shape == (rows, ACT_DIM)
    assert rel_err(fast.mu, reference.mu) < 1e-5 and rel_err(fast.log_sigma, reference.log_sigma) < 1e-5
    assert fast.mu.abs().min() > 1e-4  # the iterations did move μ away from λ_0


def test_fast_act_with_standardized_inputs_matches(params):
    """The code's input normalisation (state raw, action blocks standardised: no LayerNorm affine)."""
    torch.manual_seed(1)
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"]))
    fast, reference = fast_and_reference(optimizer(params, "standardize"), ens, torch.randn(2, OBS_DIM))
    assert rel_err(fast.mu, reference.mu) < 1e-5 and rel_err(fast.log_sigma, reference.log_sigma) < 1e-5


@pytest.mark.parametrize("arch", ["A", "elu", "B"])
@pytest.mark.parametrize("rows", [1, 4])
def test_action_gradient_by_hand_matches_autograd(params, arch, rows):
    ens = ensemble(params, arch, 2)
    obs = torch.randn(rows, OBS_DIM)
    actions = (torch.rand(10, rows, ACT_DIM) * 2 - 1).requires_grad_()
    q = pessimistic(ens(obs.expand(10, rows, OBS_DIM), actions), 1.5)
    expected, = torch.autograd.grad(q.sum(), actions)
    grad = FusedValue(ens, 1.5).action_grad()
    with torch.inference_mode():
        got = grad(actions.detach(), grad.states(obs, 10))
    assert rel_err(got, expected) < 1e-5


def test_plain_gradient_only_for_two_members_and_population_std(params):
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"]))
    assert isinstance(FusedValue(ens, 1.0).action_grad(), PlainActionGrad)
    assert isinstance(FusedValue(ens, 1.0, "unbiased").action_grad(), ChunkActionGrad)


@pytest.mark.parametrize("variant", ["iterative", "iterative_mb", "direct"])
@pytest.mark.parametrize("fused", [True, False])
def test_agent_acts_through_its_optimizer(make_cfg, variant, fused):
    """`Agent.act` is `optimizer.act` on the acting objective, then a sample of its policy: the fast
    loop (`act_fused`) for a fused iterative agent (also over a model-based value, where ∇_λ J comes
    from autograd), else `optimize(score=False)`; bit-identical to calling them by hand."""
    cfg = make_cfg(variant=variant)
    agent = Agent(dataclasses.replace(cfg, training=cfg.training.model_copy(update={"fused": fused})),
                  OBS_DIM, ACT_DIM)
    trained_like(agent.q_target)
    obs = torch.randn(OBS_DIM)
    torch.manual_seed(4)
    action = agent.act(obs.numpy())
    objective = agent.objective(obs.unsqueeze(0), agent.cfg.training.beta_acting)
    torch.manual_seed(4)
    iterative = isinstance(agent.optimizer, IterativeOptimizer)
    with torch.no_grad():
        trace = (agent.optimizer.act_fused(objective) if fused and iterative
                 else agent.optimizer.optimize(objective, score=False))
    a = torch.tanh(trace.mu + trace.log_sigma.exp() * torch.randn(1, 1, ACT_DIM))
    assert torch.equal(torch.from_numpy(action), a.reshape(-1))


@pytest.mark.parametrize("variant", ["iterative", "iterative_mb"])
def test_fast_act_is_the_training_loop_without_j(make_cfg, variant):
    """`act_fused` gives the λ_K of `optimize_fused(score=False)` bit for bit (same samples): with
    ∇_a Q̂ by hand, and over the model-based value, where both take ∇_λ J from autograd."""
    cfg = make_cfg(variant=variant)
    agent = Agent(dataclasses.replace(cfg, training=cfg.training.model_copy(update={"fused": True})),
                  OBS_DIM, ACT_DIM)
    trained_like(agent.q_target)
    objective = agent.objective(torch.randn(3, OBS_DIM), agent.cfg.training.beta_acting)
    traces = []
    for run in (agent.optimizer.act_fused, lambda o: agent.optimizer.optimize_fused(o, score=False)):
        torch.manual_seed(9)
        with torch.no_grad():
            traces.append(run(objective))
    assert torch.equal(traces[0].mu, traces[1].mu) and torch.equal(traces[0].log_sigma, traces[1].log_sigma)

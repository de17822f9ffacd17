"""Acting on the fast path: `act_iterations`, the lean ∇_a Q̂ and the compiled loop.

Tolerances, stated per test:
* the eager acting loop (`act_iterations` with `PlainActionGrad`/`ChunkActionGrad`) against the
  previous fast acting loop (`Objective.grad_fn` + `fused_step` per iteration): bit-identical (the
  same operations in the same order; the sign of Q1 − Q2 is summed in another order, which changes
  nothing unless |Q1 − Q2| is at rounding level, not the case in these draws);
* against the reference path (autograd through J, `optimize(score=False)`): λ_K to 1e-5 relative
  (float32 rounding, fed back through K = 5 LayerNorm'd iterations; measured ~1e-7);
* ∇_a Q̂ against autograd: 1e-5 relative (measured ~2e-7);
* the compiled loop against the eager one: 1e-5 relative (measured bit-identical on this machine;
  the compiler may fuse and reorder float operations).
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


def previous_act(opt: IterativeOptimizer, objective: Objective) -> Trace:
    """The fast acting loop before `act_iterations`: `Objective.grad_fn` and `fused_step`."""
    with torch.inference_mode():
        mu, log_sigma = opt.initial(objective.obs)
        prep, grad = opt.prepare(objective.obs), objective.grad_fn()
        for _ in range(opt.n_iters):
            grad_mu, grad_ls = grad(mu, log_sigma)
            mu, log_sigma = opt.fused_step(prep, mu, log_sigma, grad_mu, grad_ls)
    return Trace(mu, log_sigma)


def three_ways(opt: IterativeOptimizer, ens: QEnsemble, obs: torch.Tensor, beta: float = 2.5) -> list[Trace]:
    """λ_K from `act_fused`, from the previous fast loop and from the reference, same samples."""
    alpha = torch.tensor(0.3)
    fast = Objective(FusedValue(ens, beta), obs, alpha, 10)
    reference = Objective(lambda s, a: pessimistic(ens(s, a), beta), obs, alpha, 10)
    traces = []
    for run in (lambda: opt.act_fused(fast), lambda: previous_act(opt, fast),
                lambda: opt.optimize(reference, score=False)):
        torch.manual_seed(7)
        traces.append(run())
    return traces


@pytest.mark.parametrize("arch", ["A", "B", "elu"])
@pytest.mark.parametrize("rows", [1, 3])
def test_act_matches_previous_loop_and_reference(params, arch, rows):
    torch.manual_seed(0)
    q_arch = ELU_PLAIN if arch == "elu" else params.q_architectures[arch]
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, q_arch))
    opt, obs = optimizer(params), torch.randn(rows, OBS_DIM)
    lean = FusedValue(ens, 2.5).action_grad()
    assert isinstance(lean, ChunkActionGrad if arch == "B" else PlainActionGrad)
    new, previous, reference = three_ways(opt, ens, obs)
    assert new.J == [] and new.mu.shape == (rows, ACT_DIM)
    assert torch.equal(new.mu, previous.mu) and torch.equal(new.log_sigma, previous.log_sigma)
    assert rel_err(new.mu, reference.mu) < 1e-5 and rel_err(new.log_sigma, reference.log_sigma) < 1e-5
    assert new.mu.abs().min() > 1e-4  # the iterations did move μ away from λ_0


def test_act_with_standardized_inputs_matches(params):
    """The code's input normalisation (state raw, action blocks standardised: no LayerNorm affine)."""
    torch.manual_seed(1)
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"]))
    new, previous, reference = three_ways(optimizer(params, "standardize"), ens, torch.randn(2, OBS_DIM))
    assert torch.equal(new.mu, previous.mu) and torch.equal(new.log_sigma, previous.log_sigma)
    assert rel_err(new.mu, reference.mu) < 1e-5


@pytest.mark.parametrize("arch", ["A", "elu"])
@pytest.mark.parametrize("rows", [1, 4])
def test_lean_action_gradient_matches_autograd(params, arch, rows):
    torch.manual_seed(2)
    q_arch = ELU_PLAIN if arch == "elu" else params.q_architectures[arch]
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, q_arch))
    obs = torch.randn(rows, OBS_DIM)
    actions = (torch.rand(10, rows, ACT_DIM) * 2 - 1).requires_grad_()
    q = pessimistic(ens(obs.expand(10, rows, OBS_DIM), actions), 1.5)
    expected, = torch.autograd.grad(q.sum(), actions)
    grad = FusedValue(ens, 1.5).action_grad()
    with torch.inference_mode():
        got = grad(actions.detach(), grad.states(obs, 10))
    assert rel_err(got, expected) < 1e-5


def test_lean_gradient_only_for_two_members_and_population_std(params):
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"]))
    assert isinstance(FusedValue(ens, 1.0).action_grad(), PlainActionGrad)
    assert isinstance(FusedValue(ens, 1.0, "unbiased").action_grad(), ChunkActionGrad)


def test_acting_constants_follow_parameter_updates(params):
    opt = optimizer(params)
    first = opt.act_constants()
    assert opt.act_constants() is first                      # cached while nothing changes
    with torch.no_grad():
        opt.bounds.high.add_(0.1)                            # in place, as Adam
    second = opt.act_constants()
    assert second is not first and torch.equal(second.high, opt.bounds.high.detach())


def test_agent_acts_through_the_new_loop(make_cfg):
    """`Agent.act` with `fused: true` runs `act_iterations` and draws the same samples as before."""
    cfg = make_cfg(variant="iterative")
    agent = Agent(dataclasses.replace(cfg, training=cfg.training.model_copy(update={"fused": True})),
                  OBS_DIM, ACT_DIM)
    trained_like(agent.q_target)
    obs = torch.randn(OBS_DIM)
    torch.manual_seed(4)
    action = agent.act(obs.numpy())
    objective = agent.objective(obs.unsqueeze(0), agent.cfg.training.beta_acting)
    torch.manual_seed(4)
    trace = previous_act(agent.optimizer, objective)
    a, _ = torch.tanh(trace.mu + trace.log_sigma.exp() * torch.randn(1, 1, ACT_DIM)), None
    assert torch.equal(torch.from_numpy(action), a.reshape(-1))


@pytest.mark.slow
def test_compiled_loop_matches_eager_and_does_not_recompile(params):
    """`compile_act`: the same λ_K as the eager loop; new weights and a new α are new inputs, not a
    new compilation (training changes both at every step)."""
    from torch._dynamo.utils import counters

    torch.manual_seed(3)
    ens = trained_like(QEnsemble(OBS_DIM, ACT_DIM, params.q_architectures["A"]))
    opt, obs = optimizer(params), torch.randn(1, OBS_DIM)
    for step in range(3):
        alpha = torch.tensor(0.3 + 0.1 * step)
        objective = Objective(FusedValue(ens, 2.5), obs, alpha, 10)
        traces = []
        for compiled in (False, True):
            opt.compile_act = compiled
            torch.manual_seed(5)
            traces.append(opt.act_fused(objective))
        eager, compiled_trace = traces
        assert rel_err(compiled_trace.mu, eager.mu) < 1e-5
        assert rel_err(compiled_trace.log_sigma, eager.log_sigma) < 1e-5
        if step == 0:
            graphs = counters["stats"]["unique_graphs"]
        with torch.no_grad():  # an update: every weight changes in place
            for p in (*opt.parameters(), *ens.parameters()):
                p.add_(torch.randn_like(p) * 1e-2)
    assert counters["stats"]["unique_graphs"] == graphs
    assert not counters["recompiles"]

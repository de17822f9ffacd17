"""SAC pieces of the agent: temperature loss, Bellman target, target networks (§4.1, A.4)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from iapo.agent import Agent, Batch

OBS_DIM, ACT_DIM = 5, 3


def batch(n: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    done = torch.zeros(n)
    done[: n // 2] = 1.0
    return Batch(torch.randn(n, OBS_DIM, generator=g), torch.rand(n, ACT_DIM, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, OBS_DIM, generator=g), done)


@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_alpha_loss_sign_and_target(make_cfg, variant):
    agent = Agent(make_cfg(variant=variant), OBS_DIM, ACT_DIM)
    # KL̂ ≤ n(1 + ln 2) ⇔ entropy ≥ −n = −|A|  (KL̂ = −H + n ln 2)
    assert agent.kl_target == pytest.approx(ACT_DIM * (1 + math.log(2)))
    entropy_target = ACT_DIM * math.log(2) - agent.kl_target
    assert entropy_target == pytest.approx(-ACT_DIM)
    for kl, direction in ((agent.kl_target + 1.0, +1), (agent.kl_target - 1.0, -1)):
        agent.log_alpha.data.zero_()
        agent.alpha_opt.zero_grad()
        loss = agent.alpha_loss(torch.full((4,), kl))
        assert loss.item() == pytest.approx(-(kl - agent.kl_target))  # −α (KL̂ − κ) at α = 1
        loss.backward()
        agent.alpha_opt.step()
        # too little entropy (KL̂ > κ) → α grows; too much → α shrinks
        assert math.copysign(1, agent.log_alpha.item()) == direction


def set_constant_q(agent: Agent, value: float) -> None:
    """Make both target Q-networks output `value` everywhere (zero head weights, bias = value)."""
    with torch.no_grad():
        for net in agent.q_target.members:
            net.head.weight.zero_()
            net.head.bias.fill_(value)


@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_bellman_target_hand_worked(make_cfg, variant):
    agent = Agent(make_cfg(variant=variant), OBS_DIM, ACT_DIM)
    set_constant_q(agent, 4.0)
    agent.log_alpha.data.fill_(-40.0)  # α ≈ 0: y = r + γ (1 − d) · 4
    b = batch()
    y = agent.bellman_target(b)
    expected = b.reward + 0.99 * (1 - b.done) * 4.0
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-5)
    assert torch.equal(y[b.done == 1], b.reward[b.done == 1])  # termination: no bootstrap


def test_bellman_target_subtracts_the_kl(make_cfg):
    """Q̂ ≡ 0, α = 1: y = r − γ KL̂(s'); averaged over states it matches an independent KL(π‖U)."""
    agent = Agent(make_cfg(variant="direct"), OBS_DIM, ACT_DIM)
    set_constant_q(agent, 0.0)
    b = batch(4000)
    y = agent.bellman_target(b)
    live = b.done == 0
    kl = (b.reward[live] - y[live]) / 0.99
    # the untrained direct policy is the same for every state: μ = 0, log σ = soft_clamp(0)
    mu, log_sigma = (x[0] for x in agent.optimizer(b.next_obs[:1]))
    pi = TransformedDistribution(Normal(mu.double(), log_sigma.exp().double()), [TanhTransform()])
    a = pi.sample((400_000,))
    exact = (pi.log_prob(a).sum(-1) + ACT_DIM * math.log(2)).mean()
    assert exact > 0
    assert kl.mean().item() == pytest.approx(exact.item(), abs=0.02)


def test_polyak_and_hard_copy(make_cfg):
    cfg = make_cfg()
    agent = Agent(cfg, OBS_DIM, ACT_DIM)
    with torch.no_grad():
        for p in agent.q.parameters():
            p.add_(1.0)
    before = [p.clone() for p in agent.q_target.parameters()]
    agent.polyak_update()
    for old, new, online in zip(before, agent.q_target.parameters(), agent.q.parameters(), strict=True):
        torch.testing.assert_close(new, (1 - 0.005) * old + 0.005 * online)
    hard = Agent(dataclasses.replace(cfg, training=cfg.training.model_copy(
        update={"target_hard_copy_every": 2})), OBS_DIM, ACT_DIM)
    with torch.no_grad():
        for p in hard.q.parameters():
            p.add_(1.0)
    hard.n_updates = 1
    hard.polyak_update()
    hard.after_update()  # the 2nd update: the hard copy replaces its average
    assert hard.n_updates == 2
    for new, online in zip(hard.q_target.parameters(), hard.q.parameters(), strict=True):
        assert torch.equal(new, online)


@pytest.mark.parametrize("variant", ["direct", "iterative"])
def test_update_changes_only_what_it_should(make_cfg, variant):
    agent = Agent(make_cfg(variant=variant), OBS_DIM, ACT_DIM)
    target_before = [p.clone() for p in agent.q_target.parameters()]
    online_before = [p.clone() for p in agent.q.parameters()]
    metrics = agent.update(batch(32))
    assert agent.n_updates == 1 and all(math.isfinite(v) for v in metrics.values())
    assert all(not torch.equal(a, b) for a, b in zip(online_before, agent.q.parameters(), strict=True))
    # targets moved only by τ towards the online nets
    for old, new in zip(target_before, agent.q_target.parameters(), strict=True):
        assert (new - old).abs().max() < 0.01
    if variant == "iterative":
        assert {f"J_iter{i}" for i in range(6)} <= metrics.keys()


def test_with_optimizer_swaps_the_optimizer_of_the_copy_only(make_cfg):
    """§4.2.5 transfer: the copy acts with the other optimizer on the same Q-networks; the original
    keeps its own (a plain `copy.copy` of a module would swap both)."""
    torch.manual_seed(0)
    agent = Agent(make_cfg(variant="iterative"), OBS_DIM, ACT_DIM)
    donor = Agent(make_cfg(variant="iterative"), OBS_DIM, ACT_DIM)
    with torch.no_grad():  # a fresh optimizer's update starts at zero: make the donor's act
        for p in donor.optimizer.parameters():
            p.normal_(0.0, 0.5)
    own = agent.optimizer
    other = agent.with_optimizer(donor.optimizer)
    assert agent.optimizer is own and other.optimizer is donor.optimizer
    assert other.q is agent.q and other.log_alpha is agent.log_alpha
    obs = torch.randn(OBS_DIM).numpy()
    a_own, a_other = agent.act(obs, deterministic=True), other.act(obs, deterministic=True)
    assert not torch.allclose(torch.as_tensor(a_own), torch.as_tensor(a_other))

"""The remaining agents run end to end: direct + flow (B.2) and model-based values (A.5)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from iapo.agent import Agent, Batch
from iapo.config import load_params, resolve
from iapo.optimizers.flow import DirectFlowOptimizer
from iapo.train import Run
from tests.conftest import small_params


def test_every_variant_resolves_and_builds(params):
    for variant in params.variants:
        cfg = resolve(params, "Hopper-v2", variant, 0, "smoke")
        agent = Agent(cfg, 11, 3)
        assert agent.model_based == (cfg.value == "model_based")
    flow = Agent(resolve(params, "Hopper-v2", "direct_flow", 0, "smoke"), 11, 3)
    assert isinstance(flow.optimizer, DirectFlowOptimizer) and len(flow.optimizer.flow.transforms) == 2
    # direct + flow is a direct agent for the per-environment tables (β = 1, direct's Q architecture)
    assert resolve(params, "HalfCheetah-v2", "direct_flow", 0, "smoke").q_arch == "B"
    assert resolve(params, "Hopper-v2", "direct_flow", 0, "smoke").beta == 1.0


def test_model_based_J_does_not_train_the_model_or_rollout_policy(make_cfg):
    agent = Agent(make_cfg(env="Hopper-v2", variant="iterative_mb"), 11, 3)
    b = Batch(torch.randn(16, 11), torch.rand(16, 3) * 2 - 1, torch.randn(16), torch.randn(16, 11),
              torch.zeros(16))
    loss, _, _ = agent.policy_loss(b)
    loss.backward()
    assert all(p.grad is None for p in agent.model.parameters())
    assert all(p.grad is None for p in agent.rollout_policy.parameters())
    assert any(p.grad is not None for p in agent.optimizer.parameters())


@pytest.mark.parametrize("variant", ["direct_flow", "direct_mb", "iterative_mb"])
def test_variant_trains_and_logs(tmp_path, variant):
    params = load_params(small_params(tmp_path, steps=175, initial_random_steps=150,
                                      checkpoint_steps=[175], resume_every=175, eval_every=175))
    cfg = resolve(params, "Hopper-v2", variant, 0, "smoke")
    cfg = cfg.__class__(**{**cfg.__dict__, "model_based": cfg.model_based.model_copy(
        update={"pretrain_updates": 30, "n_units": 64})})
    Run(cfg, tmp_path / "run").run()
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["q_loss"].notna().any()
    if variant.endswith("_mb"):
        assert {"model_state_nll", "model_reward_nll"} <= set(metrics.columns)
    if variant == "iterative_mb":
        assert "distill_kl" in metrics.columns

"""Q-network architectures (Tables 3-4) and the pessimistic estimate (eq. 13)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from iapo.values.q_ensemble import HighwayBlock, QEnsemble, QNetwork, ensemble_std, pessimistic


def test_pessimistic_hand_worked():
    qs = torch.tensor([[3.0, -1.0, 2.0], [1.0, -1.0, 6.0]])  # Q1, Q2 for three (s, a)
    # μ = (2, −1, 4); population σ = |Q1 − Q2|/2 = (1, 0, 2)
    assert pessimistic(qs, 1.0).tolist() == [1.0, -1.0, 2.0]         # β = 1 is min(Q1, Q2)
    assert pessimistic(qs, 2.5).tolist() == [-0.5, -1.0, -1.0]
    assert pessimistic(qs, 0.0).tolist() == [2.0, -1.0, 4.0]
    torch.testing.assert_close(pessimistic(qs, 1.0), qs.min(0).values)
    # the code's unbiased σ: sqrt((Q1 − Q2)²/2 + 1e-6), more pessimistic than min at β = 1
    unbiased = pessimistic(qs, 1.0, "unbiased")
    expected = torch.tensor([2 - math.sqrt(2 + 1e-6), -1 - math.sqrt(1e-6), 4 - math.sqrt(8 + 1e-6)])
    torch.testing.assert_close(unbiased, expected)
    with pytest.raises(ValueError, match="population, unbiased"):
        pessimistic(qs, 1.0, "median")


def test_ensemble_std_general_and_gradient_at_zero():
    qs = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(ensemble_std(qs), qs.std(0, unbiased=False))
    q = torch.tensor([[1.0], [1.0]], requires_grad=True)
    pessimistic(q, 2.5).sum().backward()
    assert torch.isfinite(q.grad).all()


def test_architecture_a(params):
    net = QNetwork(17, 6, params.q_architectures["A"])
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(23, 256), (256, 256), (256, 1)]
    assert not any(isinstance(m, nn.LayerNorm | HighwayBlock) for m in net.modules())
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 2


def test_architecture_b_highway_layernorm_elu(params):
    torch.manual_seed(0)
    net = QNetwork(17, 6, params.q_architectures["B"])
    blocks = list(net.trunk)
    assert len(blocks) == 3 and all(isinstance(b, HighwayBlock) for b in blocks[1:])
    first = blocks[0]
    assert [type(m) for m in first] == [nn.Linear, nn.LayerNorm, nn.ELU]  # Linear → LN → ELU
    assert first[0].in_features == 23 and first[0].out_features == 512
    # the highway block computes g ⊙ h + (1 − g) ⊙ ELU(LN(W h)), g = sigmoid(W_g h)
    block, h = blocks[1], torch.randn(8, 512)
    lin, ln = block.transform[0], block.transform[1]
    g = torch.sigmoid(h @ block.gate.weight.T + block.gate.bias)
    f = nn.functional.elu(nn.functional.layer_norm(h @ lin.weight.T + lin.bias, (512,), ln.weight, ln.bias))
    torch.testing.assert_close(block(h), g * h + (1 - g) * f)
    # closing the gates (g → 1) makes the block the identity
    with torch.no_grad():
        block.gate.bias.fill_(50.0)
    torch.testing.assert_close(block(h), h)


def test_ensemble_members_are_independent(params):
    ens = QEnsemble(5, 2, params.q_architectures["A"])
    s, a = torch.randn(3, 5), torch.rand(3, 2)
    out = ens(s, a)
    assert out.shape == (2, 3)
    assert not torch.allclose(out[0], out[1])
    torch.testing.assert_close(out[1], ens.members[1](s, a))

"""Small network pieces shared by the policy optimizers and value estimators (init: original_code.md §1.1)."""

from __future__ import annotations

import math

from torch import nn

NONLINEARITIES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh,
}


def init_linear(layer: nn.Linear, nonlinearity: str) -> nn.Linear:
    """Xavier-normal weights; ReLU gets gain √2 and bias 0.1, others gain 1 and bias 0
    (original_code.md §1.1)."""
    gain = {"relu": math.sqrt(2.0), "tanh": 5.0 / 3.0}.get(nonlinearity, 1.0)
    nn.init.xavier_normal_(layer.weight, gain=gain)
    nn.init.constant_(layer.bias, 0.1 if nonlinearity == "relu" else 0.0)
    return layer


def zero_linear(n_in: int, n_out: int) -> nn.Linear:
    """A zero-initialised output head (original_code.md §1.1: policy heads start at μ = 0, raw log σ = 0)."""
    layer = nn.Linear(n_in, n_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(n_in: int, n_layers: int, n_units: int, nonlinearity: str) -> nn.Sequential:
    """Fully connected trunk (Table 2): n_layers × (Linear → nonlinearity)."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [init_linear(nn.Linear(n_in if i == 0 else n_units, n_units), nonlinearity),
                   NONLINEARITIES[nonlinearity]()]
    return nn.Sequential(*layers)

"""J that records the λ an optimizer evaluates it at (its trajectory), with some action dimensions
optionally held fixed (A.1)."""

from __future__ import annotations

import torch
from torch import Tensor

from iapo.objective import Estimate, Objective


class RecordingObjective(Objective):
    """J that records every λ it is evaluated at (an optimizer's trajectory), optionally with some
    action dimensions held fixed (A.1: 'while preventing any updates to the constant dimensions').

    An `Objective` for any optimizer. With `fixed` = (μ, log σ) given, only the dimensions in `free`
    of μ are the optimizer's to change; the other dimensions of μ, and all of log σ, are held at
    `fixed` in two places: `reset` puts them back after every iteration (pass it as the iterative
    optimizer's `constrain`, and use `reset(λ_0)` as its `init`), so the optimizer's own λ never
    drifts there, as the authors' code did; and J is always evaluated at the held values. The
    gradient ∇_λ J reaches every dimension (the held ones included, straight through), so the
    optimizer's gradient input is the true ∇_λ J at the held λ, not zeros it never saw in training.
    Every way to evaluate J goes through `__call__` (`value_and_grad` by autograd through it).
    """

    def __init__(self, base: Objective, fixed: tuple[Tensor, Tensor] | None = None,
                 free: list[int] | None = None) -> None:
        super().__init__(base.value_fn, base.obs, base.alpha, base.n_samples)
        self.fixed, self.mask = fixed, None
        if fixed is not None:
            n = fixed[0].shape[-1]
            self.mask = torch.zeros(n, dtype=torch.bool, device=fixed[0].device)
            self.mask[list(range(n)) if free is None else free] = True
        self.visited: list[tuple[Tensor, Tensor]] = []

    def restrict(self, mu: Tensor, log_sigma: Tensor) -> tuple[Tensor, Tensor]:
        """λ with the held dimensions at their fixed values; x − x.detach() is exactly 0 in value
        and 1 in derivative, so the gradient passes through to every dimension of λ."""
        if self.fixed is None:
            return mu, log_sigma
        held_mu = self.fixed[0] + (mu - mu.detach())
        return torch.where(self.mask, mu, held_mu), self.fixed[1] + (log_sigma - log_sigma.detach())

    def reset(self, mu: Tensor, log_sigma: Tensor) -> tuple[Tensor, Tensor]:
        """The held dimensions of λ back at their fixed values (A.1), detached: after every iteration."""
        if self.fixed is None:
            return mu, log_sigma
        return torch.where(self.mask, mu, self.fixed[0]).detach(), self.fixed[1].detach().clone()

    def __call__(self, mu: Tensor, log_sigma: Tensor) -> Estimate:
        mu, log_sigma = self.restrict(mu, log_sigma)
        self.visited.append((mu.detach().clone(), log_sigma.detach().clone()))
        return super().__call__(mu, log_sigma)

    def value_and_grad(self, mu: Tensor, log_sigma: Tensor) -> tuple[Estimate, Tensor, Tensor]:
        mu, log_sigma = mu.detach().requires_grad_(), log_sigma.detach().requires_grad_()
        with torch.enable_grad():
            est = self(mu, log_sigma)
            grad_mu, grad_log_sigma = torch.autograd.grad(est.J.sum(), (mu, log_sigma))
        detached = Estimate(J=est.J.detach(), q=est.q.detach(), kl=est.kl.detach(),
                            actions=est.actions.detach(), log_pi=est.log_pi.detach())
        return detached, grad_mu, grad_log_sigma

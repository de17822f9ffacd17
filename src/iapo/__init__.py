"""iapo: a reproduction of *Iterative Amortized Policy Optimization* (Marino et al., NeurIPS 2021).

A trained agent in Python (README, "Using a trained agent"; docs/trained_agents.md):

    from iapo import Agent
    agent = Agent.load("results/runs/mini/Hopper-v2/iterative/seed0")   # its newest snapshot

`Agent` is imported on first use, so that `import iapo` (and the `iapo` command) stays light.
"""

from __future__ import annotations

__all__ = ["Agent"]


def __getattr__(name: str) -> object:
    if name == "Agent":
        from iapo.agent import Agent

        return Agent
    raise AttributeError(f"module 'iapo' has no attribute {name!r}")

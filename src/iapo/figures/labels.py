"""How every figure names things: the environments (paper order, the groups the figures show), one
label and colour per curve key, and numbers as short text (3k, 1.5M)."""

from __future__ import annotations

from collections.abc import Iterable

from iapo.tables import TABLE5_ENVS, TABLE6_ENVS

ENV_ORDER = (*TABLE5_ENVS, *TABLE6_ENVS)
MAIN_ENVS = ("Hopper-v2", "HalfCheetah-v2", "Walker2d-v2", "Ant-v2")  # Figures 5, 6, 11, 22, 23
PENDULUMS = ("InvertedPendulum-v2", "InvertedDoublePendulum-v2")      # Figure 14 (B.1)
SUITE = TABLE6_ENVS                                                    # the rest: no figure in the paper

# One label and colour per thing a curve can stand for (variants of params.yaml, optimizers,
# evaluation modes, …), the same in every figure.
STYLES: dict[str, tuple[str, str]] = {
    "direct": ("direct", "#1f77b4"),
    "iterative": ("iterative", "#ff7f0e"),
    "iterative_beta1": ("iterative (β = 1)", "#d62728"),
    "iterative_k1": ("iterative (K = 1)", "#fdae6b"),
    "iterative_k2": ("iterative (K = 2)", "#e6550d"),
    "direct_flow": ("direct + NF", "#2ca02c"),
    "direct_mb": ("direct (model-based)", "#17becf"),
    "iterative_mb": ("iterative (model-based)", "#8c564b"),
    "direct + A": ("direct + A", "#1f77b4"),
    "direct + B": ("direct + B", "#9ecae1"),
    "iterative + A": ("iterative + A", "#ff7f0e"),
    "iterative + B": ("iterative + B", "#fdd0a2"),
    "iterative + 5 iters": ("iterative + 5 iterations", "#9467bd"),
    "iterative_transfer": ("iterative (another run's)", "#9467bd"),
    "init_same": ("runs from the same λ0", "#ff7f0e"),
    "init_random": ("runs from random λ0 ~ 0.3·N(0, I)", "#9467bd"),
    "adam": ("Adam", "#2ca02c"),
    "cem": ("CEM", "#7f7f7f"),
    "amortized": ("as trained", "#1f77b4"),
    "optimized": ("+ test-time optimization", "#d62728"),
    "own": ("own optimizer (MB)", "#8c564b"),
    "transfer": ("transferred optimizer (MF → MB)", "#ff7f0e"),
}


def label(key: object) -> str:
    return STYLES.get(str(key), (str(key), ""))[0]


def color(key: object, default: str = "#444444") -> str:
    return STYLES.get(str(key), ("", default))[1] or default


def order_envs(envs: Iterable[str]) -> list[str]:
    """Paper order (Tables 5-6), unknown names last."""
    envs = set(envs)
    return [e for e in ENV_ORDER if e in envs] + sorted(envs - set(ENV_ORDER))


def human(n: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:g}{suffix}"
    return f"{n:g}"

"""Tables 1-9 of the appendix (and a Table 10 of the training β, A.4), generated from `params.yaml`
as Markdown and LaTeX."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iapo.config import Params

TABLE5_ENVS = ("InvertedPendulum-v2", "InvertedDoublePendulum-v2", "Hopper-v2", "HalfCheetah-v2",
               "Walker2d-v2", "Ant-v2")
TABLE6_ENVS = ("Reacher-v2", "Swimmer-v2", "Humanoid-v2", "HumanoidStandup-v2")


@dataclass(frozen=True)
class Table:
    number: int
    title: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = [f"**Table {self.number}: {self.title}.**", "",
                 "| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        def esc(text: str) -> str:
            return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

        body = [" & ".join(esc(c) for c in self.header) + r" \\ \midrule"]
        body += [" & ".join(esc(c) for c in row) + r" \\" for row in self.rows]
        return "\n".join([
            r"\begin{table}[h]", r"\centering",
            rf"\caption{{{esc(self.title)}.}}", rf"\label{{tab:{self.number}}}",
            r"\begin{tabular}{" + "l" * len(self.header) + "}", r"\toprule", *body,
            r"\bottomrule", r"\end{tabular}", r"\end{table}", "",
        ])


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and (value < 1e-2 or value >= 1e4):
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}" if mantissa != "1" else f"1e{int(exponent)}"
    return str(value)


def _network_rows(n_layers: int, n_units: int, nonlinearity: str) -> list[list[str]]:
    names = {"relu": "ReLU", "elu": "ELU", "leaky_relu": "Leaky ReLU", "tanh": "tanh"}
    return [["Number of Layers", str(n_layers)], ["Number of Units / Layer", str(n_units)],
            ["Non-linearity", names[nonlinearity]]]


def build_tables(params: Params) -> list[Table]:
    """The nine tables of Appendix A.4-A.5 as this project's settings state them."""
    t, mb = params.training, params.model_based
    qa, qb = params.q_architectures["A"], params.q_architectures["B"]

    def q_rows(q) -> list[list[str]]:
        return [*_network_rows(q.n_layers, q.n_units, q.nonlinearity),
                ["Layer Normalization", _fmt(q.layer_norm)], ["Connectivity", q.connectivity.title()]]

    def arch_table(number: int, envs: tuple[str, ...]) -> Table:
        rows = [[family.title(), *(getattr(params.envs[e].q_arch, family) for e in envs)]
                for family in ("direct", "iterative")]
        title = "Q-value Network Architecture by Environment" + (" (Continued)" if number == 6 else "")
        return Table(number, title, ["", *envs], rows)

    return [
        Table(1, "Policy Inputs & Outputs", ["", "Inputs", "Outputs"],
              [["Direct", "s", "λ"], ["Iterative", "s, λ, ∇λJ", "δ, ω"]]),
        Table(2, "Policy Networks", ["Hyperparameter", "Value"],
              _network_rows(params.policy.n_layers, params.policy.n_units, params.policy.nonlinearity)),
        Table(3, "Q-value Network Architecture A", ["Hyperparameter", "Value"], q_rows(qa)),
        Table(4, "Q-value Network Architecture B", ["Hyperparameter", "Value"], q_rows(qb)),
        arch_table(5, TABLE5_ENVS),
        arch_table(6, TABLE6_ENVS),
        Table(7, "Training Hyperparameters", ["Hyperparameter", "Value"], [
            ["Discount Factor (γ)", _fmt(t.gamma)], ["Q-network Update Rate (τ)", _fmt(t.tau)],
            ["Network Optimizer", "Adam"], ["Learning Rate", _fmt(t.lr)],
            ["Batch Size", _fmt(t.batch_size)], ["Initial Random Steps", _fmt(t.initial_random_steps)],
            ["Replay Buffer Size", _fmt(float(t.replay_size))],
        ]),
        Table(8, "Model Network Architectures", ["Hyperparameter", "Value"],
              [*_network_rows(mb.n_layers, mb.n_units, "leaky_relu"), ["Layer Normalization", "True"]]),
        Table(9, "Model-Based Hyperparameters", ["Hyperparameter", "Value"], [
            ["Rollout Horizon, h", _fmt(mb.horizon)], ["Retrace λ", _fmt(mb.retrace_lambda)],
            ["Pre-train Model Updates", _fmt(mb.pretrain_updates)],
            ["Model-Based Value Targets", _fmt(mb.model_value_targets)],
        ]),
    ]


def pessimism_table(params: Params) -> Table:
    """A.4's value pessimism β during training, per environment and optimizer (acting uses β_acting)."""
    envs = list(params.envs)
    rows = [[family.title(), *(_fmt(getattr(params.envs[e].beta, family)) for e in envs)]
            for family in ("direct", "iterative")]
    return Table(10, f"Training pessimism β (A.4; acting β = {_fmt(params.training.beta_acting)})",
                 ["", *envs], rows)


def write_tables(params: Params, out: Path) -> list[Path]:
    """Write tables.md (all tables) and table<N>.tex for each; returns the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    tables = [*build_tables(params), pessimism_table(params)]
    written = [out / "tables.md"]
    written[0].write_text("# Hyperparameter tables (generated from params.yaml)\n\n"
                          + "\n".join(tab.markdown() for tab in tables))
    for tab in tables:
        path = out / f"table{tab.number}.tex"
        path.write_text(tab.latex())
        written.append(path)
    return written

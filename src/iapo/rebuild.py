"""`make figures` (`iapo rebuild-figures`): rebuild what a scale's run folders or summary tables allow,
never training.

With every run folder of the scale's grid finished, the summary tables are rebuilt from them (and
any missing diagnostic table computed) and everything downstream follows. With some run folders
missing, as on a fresh clone, nothing upstream of the summary tables is touched: the notebooks,
the appendix tables and the audit whose summary tables are present are rebuilt from those tables
as they are, and the command ends with exit code 0 and a note naming what it left as it was and
how to get the runs. Only when no product at all could be rebuilt (no summary tables either) is it
an error (exit code 2).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from iapo.config import Params
from iapo.figures.jobs import notebook_outputs, notebook_tables
from iapo.figures.registry import TABLE_FILES, notebooks
from iapo.layout import audit_md, audit_products, figures_dir, figures_root, summary_dir
from iapo.summary import SUMMARY_FILES, RunKey, diagnostic_tables, run_grid, unpack_tables


@dataclass
class FiguresPlan:
    """The Snakemake jobs `make figures` may run at one scale, and what it must leave out."""

    scale: str
    missing_runs: list[RunKey]
    rules: list[str]                      # the only rules allowed to run (each forced)
    targets: list[str]                    # the files asked for ("all": the whole DAG)
    skipped: dict[str, list[Path]] = field(default_factory=dict)  # product → its missing tables

    def snakemake_args(self) -> list[str]:
        forced = ["summarize"] if not self.missing_runs else self.rules
        return ["--config", f"scale={self.scale}", "--allowed-rules", *self.rules,
                "--forcerun", *forced, "--", *self.targets]

    def nothing_to_do(self) -> bool:
        """No notebook and no audit could be rebuilt: the scale has neither runs nor summary tables."""
        return bool(self.missing_runs) and self.rules == ["figures_tables"]

    def shortfall(self) -> str | None:
        """What was left as it was and why, or None when everything was rebuilt."""
        if not self.missing_runs:
            return None
        lines = [f"{len(self.missing_runs)} run folder(s) of scale {self.scale!r} are missing or "
                 f"unfinished (e.g. {self.missing_runs[0].folder(self.scale)}), so the summary tables in "
                 f"{summary_dir(self.scale)}/ were used as they are and not rebuilt."]
        lines += [f"  not rebuilt: {product}: needs {', '.join(map(str, tables))}"
                  for product, tables in self.skipped.items()]
        lines.append(f"Get the runs with `make pull SCALE={self.scale}` (a study recorded in DVC) or "
                     f"train them with `make reproduce SCALE={self.scale}`, then rerun `make figures`.")
        return "\n".join(lines)


def upstream_rules() -> list[str]:
    """Every rule of the workflow except `train`: the diagnostics, summary, notebooks, tables, audit."""
    from iapo.diagnostics import REGISTRY

    return ([f"diagnose_{name}" for name in REGISTRY] + ["summarize"]
            + [f"figures_{group}" for group in notebooks()] + ["figures_tables", "audit", "all"])


def plan_figures(params: Params, scale: str, root: Path = Path(".")) -> FiguresPlan:
    """What `make figures` runs at `scale` in the repository at `root`."""
    missing = [key for key in run_grid(params, scale)
               if not (root / key.folder(scale) / "run.json").is_file()]
    if not missing:
        return FiguresPlan(scale, [], upstream_rules(), ["all"])
    plan = FiguresPlan(scale, missing, ["figures_tables"],
                       [str(figures_root(scale) / file) for file in TABLE_FILES])
    for group in notebooks():
        absent = [path for path in notebook_tables(params, scale, group) if not _present(root / path)]
        if absent:
            plan.skipped[f"notebook {group}"] = absent
        else:
            plan.rules.append(f"figures_{group}")
            plan.targets += map(str, notebook_outputs(scale, group))
    audit_inputs = [summary_dir(scale) / name for name in SUMMARY_FILES]
    audit_inputs += [summary_dir(scale) / f"{table}.csv" for table in diagnostic_tables(params, scale)]
    absent = [path for path in audit_inputs if not _present(root / path)]
    if absent:
        plan.skipped["the audit"] = absent
    else:
        plan.rules.append("audit")
        plan.targets += [str(path) for path in audit_products(scale)]
    return plan


def _present(path: Path) -> bool:
    """A summary table is there, plain or as the committed `.csv.gz` that `unpack_tables` restores."""
    return path.is_file() or path.with_name(f"{path.name}.gz").is_file()


def rebuild_figures(params: Params, scale: str, cores: str, dry_run: bool = False) -> int:
    """Run the plan with Snakemake (from this environment). Exit code 0 when it rebuilt all that the
    scale's runs or committed tables allow (a note names what needs runs), 2 when they allow nothing."""
    plan = plan_figures(params, scale)
    if plan.nothing_to_do():
        print(f"iapo rebuild-figures: error: {plan.shortfall()}", file=sys.stderr)
        return 2
    if plan.missing_runs:  # the rules read NAME.csv: restored for a dry run too (an input, not a product)
        for path in unpack_tables(summary_dir(scale)):
            print(f"iapo rebuild-figures: unpacked {path} from its committed .csv.gz", file=sys.stderr)
    cmd = [sys.executable, "-m", "snakemake", "--cores", cores, *(["-n"] if dry_run else []),
           *plan.snakemake_args()]
    print("iapo rebuild-figures: " + " ".join(cmd[1:]), file=sys.stderr)
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        return code
    if (message := plan.shortfall()) is not None:
        print(f"iapo rebuild-figures: rebuilt what the committed tables allow. {message}", file=sys.stderr)
    print(f"iapo rebuild-figures: figures in {figures_dir(scale)}/, the audit in "
          f"{audit_md(scale).with_suffix('.html')} (and .md)", file=sys.stderr)
    return 0

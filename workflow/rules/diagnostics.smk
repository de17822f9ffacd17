# Diagnostics: one job per finished run × analysis that params.yaml `scales.<scale>.diagnostics`
# asks for: `iapo diagnose NAME <the job's arguments>` (iapo.summary.diagnose_argv: the run,
# the output CSV, the options of params.yaml, the donor run for --optimizer-from). The summary rule
# gathers the per-run tables into results/summary/<scale>/NAME.csv for the notebooks and the audit.
#
# A run is read through its run.json taken as ancient(): a finished run never reruns its
# diagnostics because its files were touched or pulled by DVC (no timestamps); a change of the
# options in params.yaml reruns the jobs (params trigger); delete a CSV to recompute one table.

import shlex
from pathlib import Path

from iapo.diagnostics import REGISTRY
from iapo.layout import DIAGNOSTICS_ROOT, table_files
from iapo.summary import DiagnosticRun, diagnose_argv, diagnostic_runs, diagnostic_tables

# results/diagnostics/{scale}/{name}/{env}/{variant}/seed{seed}.csv (extra tables: seed{seed}_T.csv)
DIAG_CSV = str(DiagnosticRun("{name}", RunKey("{env}", "{variant}", "{seed}")).out("{scale}"))


def diagnostic_job(wildcards, name):
    """The DiagnosticRun of params.yaml behind one output file."""
    key = RunKey(wildcards.env, wildcards.variant, int(wildcards.seed))
    for job in diagnostic_runs(PARAMS, wildcards.scale, name):
        if job.key == key:
            return job
    raise ValueError(f"params.yaml scales.{wildcards.scale}.diagnostics.{name} does not list {key}")


def diagnostic_outputs(scale):
    """Every per-run table the scale's diagnostics write (main and extra tables)."""
    paths = []
    for job in diagnostic_runs(PARAMS, scale):
        paths += [str(path) for path in job.outs(scale).values()]
    return paths


def summary_table(scale, table):
    """results/summary/<scale>/<table>.csv: what notebooks and the audit read."""
    return f"{summary_dir(scale)}/{table}.csv"


def diagnostic_summary_tables(scale):
    return [summary_table(scale, t) for t in diagnostic_tables(PARAMS, scale)]


for _name in REGISTRY:  # one rule per analysis: its own log folder, resources and extra tables

    rule:
        name:
            f"diagnose_{_name}"
        input:
            run=lambda wildcards, name=_name: ancient(run_done(wildcards.scale, diagnostic_job(wildcards, name).key)),
            donor=lambda wildcards, name=_name: [
                ancient(run_done(wildcards.scale, job.donor))
                for job in [diagnostic_job(wildcards, name)] if job.donor is not None],
        output:
            [str(path) for path in table_files(_name, Path(DIAG_CSV.replace("{name}", _name))).values()],
        log:
            f"logs/{{scale}}/diagnostics/{_name}/{{env}}/{{variant}}/seed{{seed}}.log",
        params:
            args=lambda wildcards, name=_name: shlex.join(diagnose_argv(diagnostic_job(wildcards, name), PARAMS, wildcards.scale)),
            name=_name,
        threads: 1
        shell:
            "iapo diagnose {params.name} {params.args} --threads {threads} > {log} 2>&1"


FINAL_TARGETS["diagnostics"] = diagnostic_summary_tables

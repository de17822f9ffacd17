# Summary tables: the finished runs of the scale and their diagnostics → small tidy tables
# (iapo.summary) that the notebooks and the audit read. Cheap, so it simply reruns whenever a
# run.json or a diagnostic table is newer.

SUMMARY = summary_dir("{scale}")


rule summarize:
    input:
        runs=lambda wildcards: all_runs_done(wildcards.scale),
        diagnostics=lambda wildcards: diagnostic_outputs(wildcards.scale),
    output:
        runs=report(f"{SUMMARY}/runs.csv", caption="../report/runs.rst", category="Summary tables"),
        eval=f"{SUMMARY}/eval.csv",
        metrics=f"{SUMMARY}/metrics.csv",
        scale=f"{SUMMARY}/scale.json",
        # the tables of the configured scale (outputs cannot depend on the wildcard's value)
        diagnostics=[f"{SUMMARY}/{table}.csv" for table in diagnostic_tables(PARAMS, SCALE)],
    log:
        "logs/{scale}/summarize.log",
    params:
        runs=RUNS_ROOT,
        diagnostics=DIAGNOSTICS_ROOT,
        out=lambda wildcards: summary_dir(wildcards.scale),
    threads: 1
    shell:
        "iapo summarize --scale {wildcards.scale} --runs {params.runs} --diagnostics {params.diagnostics} "
        "--out {params.out} > {log} 2>&1"


FINAL_TARGETS["summary"] = lambda scale: [f"{summary_dir(scale)}/{name}" for name in SUMMARY_FILES]

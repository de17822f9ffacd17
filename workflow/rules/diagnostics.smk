# Diagnostics (the diagnostics issue; no rules yet). `iapo diagnose NAME --run RUN --out CSV …`
# exists; what each scale runs (states, horizons, checkpoints) belongs in params.yaml first, so that
# a scale keeps changing only how much is run. The rules to add here, one job per run × diagnostic:
#
#   rule diagnose:
#       input:  ancient(f"{RUN_DIR}/run.json")   # the run is finished; ancient(): a `dvc pull`
#                                                 # (no timestamps) must not rerun diagnostics
#       output: "results/diagnostics/{scale}/{name}/{env}/{variant}/seed{seed}.csv"
#       shell:  "iapo diagnose {wildcards.name} --run {params.run} --out {output} … > {log} 2>&1"
#
# then FINAL_TARGETS["diagnostics"] = lambda scale: [...] (common.smk), `iapo summarize` reading
# the tables, and a `results/diagnostics/<scale>` out in the three dvc.yaml files (tests/test_dvc.py
# checks that DVC covers every Snakemake product).

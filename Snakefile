# The IAPO study as one DAG (docs/pipeline.md):
#   train (env × variant × seed of the scale) → checkpoints → diagnostics → summary tables
#   → notebooks → paper_figures/ → audit.
# Every job is one `iapo` (or papermill) command; the rules only wire files together.
#
#   snakemake --cores 2 --config scale=smoke      # local; default scale from params.yaml
#   snakemake --cores 8 --profile slurm           # a Slurm cluster (profiles/slurm/config.yaml)
#   snakemake -n --config scale=paper             # list every job of the paper's grid

configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/audit.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        final_targets(SCALE),


onstart:
    print(f"iapo pipeline: scale {SCALE!r}: {len(RUNS)} training runs "
          f"({PARAMS.scales[SCALE].describe()}); outputs under {run_root(SCALE)}/ and {summary_dir(SCALE)}/",
          file=sys.stderr)
    print("iapo pipeline: training " + ("every seed of an env and variant in one job (train_pack_<seeds>, "
          "`train: pack: 1`)" if PACK else "one job per seed (rule train)"), file=sys.stderr)


onsuccess:
    audit = layout.audit_md(SCALE).with_suffix(".html")
    print(f"iapo pipeline: done (scale {SCALE!r}). Open the audit: {audit} (verdict per claim, linked "
          f"to its figure); figures in {layout.figures_dir(SCALE)}/, executed notebooks in "
          f"{layout.notebooks_dir(SCALE)}/, tables in {summary_dir(SCALE)}/", file=sys.stderr)


onerror:
    print("iapo pipeline: a job failed; its log is named above (logs/…). Rerunning the same command "
          "resumes training from the last checkpoint.", file=sys.stderr)

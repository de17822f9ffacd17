# Figures: one job per notebook of the registry iapo.figures.FIGURES (`iapo notebook GROUP`: the
# jupytext source notebooks/<group>.py → papermill -k python3 with the scale's summary folder →
# HTML), and the appendix tables from params.yaml (`iapo tables`):
#
#   paper_figures/<scale>/figures/<name>.pdf, .png        every figure of the group (stable names)
#   paper_figures/<scale>/notebooks/<group>.ipynb, .html  the executed notebook and its rendering
#   paper_figures/<scale>/tables/                         Tables 1-9 of the appendix (+ Table 10, β)
#
# A notebook reruns when its source, the shared helpers (src/iapo/figures/) or a summary table it
# reads changes. Diagnostic tables the scale does not produce are not inputs: the notebook then
# draws a labelled "no data" panel that says why. paper_figures/README.md, the index, depends on the
# registry only: `iapo figures-index` writes it (a test keeps it current).

from pathlib import Path

from iapo.figures.jobs import notebook_outputs, notebook_tables
from iapo.figures.registry import TABLE_FILES, notebooks

FIGURES_DIR = str(layout.figures_root("{scale}"))
FIGURE_HELPERS = sorted(str(path) for path in Path("src/iapo/figures").glob("*.py"))  # every module of the package


def figure_outputs(entries):
    """PNGs go into `snakemake --report` (category Figures, captioned by the registry's descriptions),
    PDFs are plain outputs."""
    outputs = []
    for entry in entries:
        for file in entry.files:
            path = f"{FIGURES_DIR}/{file}"
            if file.endswith(".png"):
                path = report(path, caption="../report/figure.rst", category="Figures",
                              subcategory=entry.notebook,
                              labels={"figure": entry.name, "NeurIPS": entry.neurips, "v1": entry.v1})
            outputs.append(path)
    return outputs


for _group, _entries in notebooks().items():

    rule:
        name:
            f"figures_{_group}"
        input:
            source=f"notebooks/{_group}.py",
            helpers=FIGURE_HELPERS,
            tables=lambda wildcards, group=_group: notebook_tables(PARAMS, wildcards.scale, group),
        output:
            figure_outputs(_entries),
            notebook=f"{FIGURES_DIR}/notebooks/{_group}.ipynb",
            html=f"{FIGURES_DIR}/notebooks/{_group}.html",
        log:
            f"logs/{{scale}}/figures/{_group}.log",
        params:
            group=_group,
            captions={entry.name: entry.description for entry in _entries},  # the report's captions
        threads: 1
        shell:
            "iapo notebook {params.group} --scale {wildcards.scale} > {log} 2>&1"


rule figures_tables:
    input:
        "params.yaml",
    output:
        [report(f"{FIGURES_DIR}/{f}", category="Tables") if f.endswith(".md") else f"{FIGURES_DIR}/{f}"
         for f in TABLE_FILES],
    log:
        "logs/{scale}/figures/tables.log",
    params:
        out=lambda wildcards: layout.tables_dir(wildcards.scale),
    threads: 1
    shell:
        "iapo tables --out {params.out} > {log} 2>&1"


def figure_targets(scale):
    """Every file of the figures stage at a scale, for `rule all` (FINAL_TARGETS in common.smk)."""
    tables = [layout.figures_root(scale) / file for file in TABLE_FILES]
    return [str(path) for group in notebooks() for path in notebook_outputs(scale, group)] + list(map(str, tables))


FINAL_TARGETS["figures"] = figure_targets

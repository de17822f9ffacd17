# Figures: one job per notebook of the registry iapo.figures.FIGURES (`iapo notebook GROUP`: the
# jupytext source notebooks/<group>.py → papermill -k python3 with the scale's summary folder →
# HTML), and Tables 1-10 from params.yaml (`iapo tables`):
#
#   paper_figures/<scale>/figures/<name>.pdf, .png        every figure of the group (stable names)
#   paper_figures/<scale>/notebooks/<group>.ipynb, .html  the executed notebook and its rendering
#   paper_figures/<scale>/tables/                         Tables 1-9 (+10) from params.yaml
#
# A notebook reruns when its source, the shared helpers (src/iapo/figures.py) or a summary table it
# reads changes. Diagnostic tables the scale does not produce are not inputs: the notebook then
# draws a labelled "no data" panel that says why. paper_figures/README.md, the index, depends on the
# registry only: `iapo figures-index` writes it (a test keeps it current).

from iapo.figures import FIGURES, TABLE_FILES, notebook_inputs, notebooks

FIGURES_DIR = "paper_figures/{scale}"


def notebook_tables(scale, notebook):
    """The summary files a notebook reads that this scale produces (its inputs)."""
    produced = set(diagnostic_tables(PARAMS, scale))
    return [f"{summary_dir(scale)}/{file}" for file in notebook_inputs(notebook)
            if file in SUMMARY_FILES or file.removesuffix(".csv") in produced]


def figure_outputs(entries):
    """PNGs go into `snakemake --report` (category Figures), PDFs are plain outputs."""
    outputs = []
    for entry in entries:
        for file in entry.files:
            path = f"{FIGURES_DIR}/{file}"
            if file.endswith(".png"):
                path = report(path, category="Figures", subcategory=entry.notebook,
                              labels={"figure": entry.name, "NeurIPS": entry.neurips, "v1": entry.v1})
            outputs.append(path)
    return outputs


for _group, _entries in notebooks().items():

    rule:
        name:
            f"figures_{_group}"
        input:
            source=f"notebooks/{_group}.py",
            helpers="src/iapo/figures.py",
            tables=lambda wildcards, group=_group: notebook_tables(wildcards.scale, group),
        output:
            figure_outputs(_entries),
            notebook=f"{FIGURES_DIR}/notebooks/{_group}.ipynb",
            html=f"{FIGURES_DIR}/notebooks/{_group}.html",
        log:
            f"logs/{{scale}}/figures/{_group}.log",
        params:
            group=_group,
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
        out=lambda wildcards: f"paper_figures/{wildcards.scale}/tables",
    threads: 1
    shell:
        "iapo tables --out {params.out} > {log} 2>&1"


def figure_targets(scale):
    """Every file of the figures stage at a scale, for `rule all` (FINAL_TARGETS in common.smk)."""
    targets = [f"paper_figures/{scale}/{file}" for entry in FIGURES for file in entry.files]
    return targets + [f"paper_figures/{scale}/notebooks/{group}.{ext}"
                      for group in notebooks() for ext in ("ipynb", "html")]


FINAL_TARGETS["figures"] = figure_targets

# The audit: the paper's testable claims (claims.yaml) → one verdict per claim, computed from the
# summary tables only (`iapo audit`), with the scale's reductions and the deviations table.
# Reruns whenever a summary table, the claims or the deviations change.

AUDIT = layout.audit_md("{scale}")  # paper_figures/{scale}/audit.md, audit.html next to it, the overview figure


rule audit:
    input:
        tables=lambda wildcards: [f"{summary_dir(wildcards.scale)}/{name}" for name in SUMMARY_FILES],
        diagnostics=lambda wildcards: diagnostic_summary_tables(wildcards.scale),
        claims="claims.yaml",
        deviations="docs/deviations.md",
    output:
        md=str(AUDIT),
        html=report(str(AUDIT.with_suffix(".html")), caption="../report/audit.rst", category="Audit"),
        overview=report(str(layout.audit_products("{scale}")[2]), caption="../report/audit_overview.rst",
                        category="Audit"),
        overview_pdf=str(layout.audit_products("{scale}")[3]),
    log:
        "logs/{scale}/audit.log",
    params:
        summary=lambda wildcards: summary_dir(wildcards.scale),
    threads: 1
    shell:
        "iapo audit --claims {input.claims} --summary {params.summary} --deviations {input.deviations} "
        "--out {output.md} > {log} 2>&1"


FINAL_TARGETS["audit"] = lambda scale: [str(path) for path in layout.audit_products(scale)]

# Audit (the audit issue): the claims registry → verdict table, reading the summary tables and
# figures. Register its report with FINAL_TARGETS["audit"] = lambda scale: [...].

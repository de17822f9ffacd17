# Training: one job per run of the scale's grid (env × variant × seed).
#
# Only run.json is declared as output: `iapo train` writes it last, so it marks a finished run.
# The rest of the run folder (metrics.csv, eval.csv, checkpoints/, resume/) is deliberately not
# an output, so Snakemake never deletes it when a job fails or is retried: rerunning the same
# command resumes from resume/ (SIGTERM from Slurm preemption or a time limit saves first and
# exits 143). A training job has no input files, so nothing but a missing run.json ever reruns it
# (a `dvc pull` included). Downstream rules read the folder through run.json; rules reading
# checkpoints take it as ancient(), so that pulled files (DVC keeps no timestamps) never rerun them.
# `iapo train` reads params.yaml itself, so `logging.tensorboard: true` there gives every job its live
# curves in RUN/tensorboard/ (watch them all: `tensorboard --logdir results/runs/<scale>`).

#
# Several seeds per job (the Slurm profile, `train: pack: 1` in its set-resources): instead of `train`,
# one `train_pack_<n>` job per (env, variant) of the scale runs all its n seeds at once
# (`iapo train-pack`, one `iapo train` process per seed on its own cores, one GPU shared). Its outputs
# are the same run.json files, so every later rule is unchanged. Its resources are the `train` block's,
# cores and memory times n; `train: mps: 1` starts a job-local MPS daemon (iapo.pack). The pack rules
# are made for the scale of the call (`--config scale=…`, else params.yaml's), whose grid fixes n.
def literal(resource):
    """A set resource's value as typed (`'--signal=TERM@600'` → the string; `shard:1` stays text)."""
    raw = getattr(resource, "raw", resource)
    try:
        return ast.literal_eval(raw) if isinstance(raw, str) else raw
    except (ValueError, SyntaxError):
        return raw


TRAIN_SET = {k: literal(r) for k, r in workflow.resource_settings.overwrite_resources.get("train", {}).items()}
PACK = bool(TRAIN_SET.get("pack"))


def train_device(resources):
    """cuda for a job granted a GPU or a share of one (`gpu: 1`, or a `gres` of gpu, shard or mps)."""
    if int(resources.get("gpu", 0)) or any(k in str(resources.get("gres", "")) for k in ("gpu", "shard", "mps")):
        return "cuda"
    return "cpu"


def run_mem_mb(env, variant, scale):
    """The process plus copies of the replay buffer while a resume state is saved or read
    (iapo.resources: 20 GiB for the small tasks, 32 GiB for Humanoid-class ones)."""
    return train_mem_mb(resolve(PARAMS, env, variant, 0, scale))


def pack_mem_mb(n):
    """A pack's memory: n runs' (the `train` block's mem_mb, else each run's own)."""
    return lambda wildcards: n * int(TRAIN_SET.get("mem_mb") or run_mem_mb(*wildcards.run.split("/"), wildcards.scale))


if not PACK:

    rule train:
        output:
            f"{RUN_DIR}/run.json",
        log:
            "logs/{scale}/train/{env}/{variant}/seed{seed}.log",
        params:
            out=lambda wildcards, output: os.path.dirname(output[0]),
            device=lambda wildcards, resources: train_device(resources),
        threads: 1
        resources:
            mem_mb=lambda wildcards: run_mem_mb(wildcards.env, wildcards.variant, wildcards.scale),
        shell:
            "iapo train --scale {wildcards.scale} --env {wildcards.env} --variant {wildcards.variant} "
            "--seed {wildcards.seed} --out {params.out} --device {params.device} --threads {threads} "
            "> {log} 2>&1"

else:
    # one rule per seed count of the scale's grid (a rule's outputs are fixed in number); {run} is
    # "<env>/<variant>", limited to the pairs with that many seeds, so each run.json has one producer
    _packs = {}
    for _env, _variant in PARAMS.scales[SCALE].runs():
        _packs.setdefault(PARAMS.scales[SCALE].seeds_of(_env, _variant), []).append(f"{_env}/{_variant}")
    for _n, _pairs in sorted(_packs.items()):

        rule:
            name:
                f"train_pack_{_n}"
            output:
                [RUN_DIR.replace("{env}/{variant}", "{run}").replace("{seed}", str(s)) + "/run.json"
                 for s in range(_n)],
            log:
                "logs/{scale}/train_pack/{run}.log",
            wildcard_constraints:
                run="|".join(re.escape(p) for p in _pairs),
            params:
                env=lambda wildcards: wildcards.run.split("/")[0],
                variant=lambda wildcards: wildcards.run.split("/")[1],
                seeds=" ".join(str(s) for s in range(_n)),
                device=lambda wildcards, resources: train_device(resources),
                mps="--mps" if TRAIN_SET.get("mps") else "",
            threads: _n
            resources:
                **{k: v for k, v in TRAIN_SET.items() if k not in ("pack", "mps", "cpus_per_task", "mem_mb")},
                cpus_per_task=_n * int(TRAIN_SET.get("cpus_per_task", 1)),
                mem_mb=pack_mem_mb(_n),
            shell:
                "iapo train-pack --scale {wildcards.scale} --env {params.env} --variant {params.variant} "
                "--seeds {params.seeds} --device {params.device} --logs logs/{wildcards.scale}/train/{wildcards.run} "
                "{params.mps} > {log} 2>&1"

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


rule train:
    output:
        f"{RUN_DIR}/run.json",
    log:
        "logs/{scale}/train/{env}/{variant}/seed{seed}.log",
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
        # a job granted a GPU or a share of one (profiles/slurm: `gpu: 1`, or a `gres` of gpu, shard
        # or mps) trains on it
        device=lambda wildcards, resources: (
            "cuda" if int(resources.get("gpu", 0))
            or any(kind in str(resources.get("gres", "")) for kind in ("gpu", "shard", "mps")) else "cpu"
        ),
    threads: 1
    resources:
        # the process plus copies of the replay buffer while a resume state is saved or read
        # (iapo.resources: 20 GiB for the small tasks, 32 GiB for Humanoid-class ones)
        mem_mb=lambda wildcards: train_mem_mb(
            resolve(PARAMS, wildcards.env, wildcards.variant, int(wildcards.seed), wildcards.scale)
        ),
    shell:
        "iapo train --scale {wildcards.scale} --env {wildcards.env} --variant {wildcards.variant} "
        "--seed {wildcards.seed} --out {params.out} --device {params.device} --threads {threads} "
        "> {log} 2>&1"

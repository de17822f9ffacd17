"""The `iapo` command line: every job of the study (training, benchmarks, …) is one subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iapo import layout
from iapo.config import Training, describe_settings, load_params, resolve
from iapo.errors import ConfigError, IapoError
from iapo.evaluation import COLUMNS
from iapo.layout import REGISTRY
from iapo.options import add_options, option, options_from_args

if TYPE_CHECKING:
    import torch

    from iapo.config import Params

# Each subcommand's options are a dataclass (`TrainArgs`, …; the mechanism: `iapo.options`) that its
# function (`cmd_train`, …) takes; the options several share are bases: `Scaled` (--scale, resolved
# in `Scaled.scale_of`) and `OnDevice` (--device, a torch.device resolved once, `device_option`).
SCALE = "<scale>"  # how a default path that depends on --scale is shown in --help

TRAIN_HELP = """Train one agent (env × variant × seed) and write into OUT:
  metrics.csv          one row per log interval (env step, updates, train return, Q losses,
                       Q values, σ_Q, α, entropy, J and, for iterative agents, J at each iteration)
  eval.csv             one row per deterministic evaluation episode
  checkpoints/step_N.pt  agent snapshots at the steps the scale lists (read by diagnostics)
  resume/step_N.pt     full training state (newest two) for exact resume
  run.json             provenance; written last, so its presence marks a finished run
  tensorboard/         with --tensorboard (or params.yaml logging.tensorboard): live curves, the
                       rows of metrics.csv (metrics/<column>) and eval.csv (eval/return, eval/length)
                       by env step; watch with `tensorboard --logdir OUT`
Rerunning the same command after a crash or SIGTERM resumes from the newest valid checkpoint.
The progress bar shows the return of the last episode that ended (last_return) and the mean
return of the last evaluation (eval_return).

How it trains comes from params.yaml; its `training` section (every section: `iapo schema`):
""" + describe_settings(Training, "training")

EVALUATE_HELP = """Evaluate a trained agent: the snapshot RUN/checkpoints/step_N.pt (the newest unless
--checkpoint names one) plays --episodes episodes of its task, episode i from the environment seed
--seed + i, acting with tanh(μ), the policy's mode, as the training loop's evaluations do (or with
sampled actions: --stochastic); torch is seeded with --seed, so a rerun repeats every return.
Prints each episode's return and their mean, and writes one row per episode to --out (default
RUN/evaluate/step_N_<E>ep_seed<S>.csv, step_N_stochastic_… with --stochastic) with the columns
""" + "\n".join(f"  {c:<11} {d}" for c, d in COLUMNS.items()) + """
--video FILE films the first episode (MuJoCo offscreen rendering): .mp4 (H.264) or .gif. MUJOCO_GL
picks the OpenGL backend: egl (GPU), osmesa (software; Debian/Ubuntu: apt-get install libosmesa6) or
glfw (desktop); unset, the first that works here. Bad input (no such run folder or checkpoint, a
damaged snapshot, no rendering) is a one-paragraph error, exit code 2, and nothing is written."""

SUMMARIZE_HELP = """Aggregate the finished runs of one scale (its env × variant × seed grid, params.yaml).
Reads RUNS/<scale>/<env>/<variant>/seed<k>/{run.json,metrics.csv,eval.csv} and writes into OUT:
  runs.csv             one row per run: settings, final evaluation return, wall time, provenance
  eval.csv             one row per evaluation episode (env, variant, seed, env_step, return, …)
  metrics.csv          one row per training log interval (env, variant, seed, then metrics.csv)
  scale.json           the scale preset, the paper preset and the keys reduced at this scale
  NAME.csv             per diagnostic NAME of params.yaml scales.<scale>.diagnostics: its per-run tables
                       DIAGNOSTICS/<scale>/NAME/<env>/<variant>/seed<k>.csv concatenated (extra
                       tables: NAME_<table>.csv); columns in docs/diagnostics.md
A missing or unfinished run is an error (exit 2) and leaves the previous tables in place."""


BENCH_HELP = """Time the agent's operations against their GEMM floor; print a table (and JSON).
In one process, HalfCheetah sizes (17-dim states, 6-dim actions), batch 256, N = 10 action samples,
K = 5 iterations, for the direct and the iterative agent with Q architectures A and B:
  update         one Agent.update: Bellman target, critic step, policy step, α, target networks
  policy_update  the policy optimizer's loss, backward and Adam step alone
  act            one stochastic Agent.act for one state, interleaved with the agent's other timed calls
                 (cold caches, as in training, where each action follows an update)
  act_warm       the same, median of 4 back-to-back calls after a first one (warm caches)
each on the fast path (training.fused: true, what training runs) and, with --reference, on the
reference path too (training.fused: false, plain autograd; architecture B's reference updates take
seconds each). Columns: median / min / max wall ms and median thread-CPU ms over the repeats; GFLOP:
the analytic count of the matrix products the operation needs (forward, and the backward products
actually needed; elementwise work not counted); floor ms: the same products as bare torch.mm calls
on preallocated operands, timed interleaved with the agent's operations, on the same threads; eff =
floor / median time; eff(min) = fastest floor / fastest time; eff(cpu) = ratio of the median thread
CPU times (steadier on a loaded machine). Each agent's rows are printed as they end. Reads
params.yaml (variants, Q architectures). --json FILE writes {"machine": {...}, "ops": [one object
per table row]}, after every agent. Wall times on the 2-core AMD EPYC: see docs/testing.md.

--loop ENV:VARIANT ... times the whole training loop instead: the `--scale`
training run of each pair (seed 0, in a temporary folder) with timers around Agent.update,
Agent.act and the environment's step. overhead = wall / (time inside them, evaluation steps
included) - 1: what logging, replay sampling, checkpointing and the loop itself add. "separate"
repeats the comparison with update, act and env step timed apart after the run (--repeats calls).
--json FILE then writes {"loop": [one object per pair]}.

--device cuda (or cuda:N) times one Agent.update and one Agent.act of the fast fp32 path on that GPU
instead, for each variant and architecture on two agents: eager (path `eager`) and with
training.graphs: on (path `captured`: CUDA graphs, after their warm-up calls and capture). Columns:
median / min / max wall ms of a call between two torch.cuda.synchronize calls; device ms: the
median time between CUDA events recorded around it; speed-up: eager ms / ms. A missing device is
an error (exit 2)."""

REBUILD_HELP = """Rebuild a scale's figures, appendix tables and audit through Snakemake, never training.
Every run folder of the scale finished: the summary tables are rebuilt from the runs (missing
diagnostic tables computed) and everything downstream follows. Some run folders missing (a fresh
clone): the summary tables are used as they are; what they allow is rebuilt, and the command then
exits 2 naming what it could not rebuild and how to get the runs."""


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1 (else a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def device_of(name: str) -> torch.device:
    """`--device`'s conversion, `iapo.devices.resolve_device`, imported when a command runs: torch is
    slow to import, and `iapo --help` and the commands without a device never load it."""
    from iapo.devices import resolve_device

    return resolve_device(name)


def device_option(default: str = "cpu", help: str = "cpu | cuda | cuda:N (checked: exit 2 if absent)") -> Any:
    """`--device`: the name given (else `default`) resolved once, when the command runs, into the
    torch.device it names; a device this machine lacks is an input error (one paragraph, exit 2)."""
    return option(default, help, type=str, convert=device_of)


# ------------------------------------------------------------------ the options of each subcommand
# The help texts say their defaults themselves (`add_options(..., show_defaults=False)`).
@dataclass(kw_only=True)
class Args:
    """The options before the subcommand's name, which every subcommand gets."""

    params: Path = option(Path("params.yaml"), "hyperparameter file (default: %(default)s)")


@dataclass(kw_only=True)
class Scaled(Args):
    """A subcommand of one scale: --scale, else params.yaml `scale`."""

    scale: str | None = option(None, "scale preset (default: params.yaml `scale`)")

    def scale_of(self, params: Params | None = None) -> str:
        """The scale: --scale, else params.yaml `scale` (of `params`; read from --params if not given)."""
        if self.scale:
            return self.scale
        return (params if params is not None else load_params(self.params)).scale


@dataclass(kw_only=True)
class OnDevice(Args):
    """A subcommand that computes on one device: --device, a torch.device in the built options."""

    device: torch.device = device_option()


@dataclass(kw_only=True)
class OneDiagnostic(Args):
    """A subcommand of one diagnostic of the registry, named by position."""

    name: str = option(help="which diagnostic", choices=REGISTRY, positional=True, metavar="NAME")


@dataclass(kw_only=True)
class TrainArgs(OnDevice, Scaled):
    """The options of `iapo train`."""

    env: str = option(help="paper environment name, e.g. Hopper-v2, or its gymnasium ID, e.g. Hopper-v5 "
                      "(`iapo envs` lists both)")
    variant: str = option(help="agent variant from params.yaml, e.g. direct")
    seed: int = option(0)
    out: Path | None = option(None, "run folder (default: the pipeline's, "
                              f"{layout.RUNS_ROOT}/{SCALE}/<env>/<variant>/seed<k>)")
    steps: int | None = option(None, "override the scale's env steps")
    threads: int = option(1, "torch CPU threads (default 1)")
    deterministic: bool = option(False, "deterministic kernels (torch.use_deterministic_algorithms; on CUDA "
                                 "also CUBLAS_WORKSPACE_CONFIG): bit-repeatable CUDA runs, at some speed",
                                 store_true=True)
    tensorboard: bool | None = option(None, "write live curves into OUT/tensorboard/ (default: params.yaml "
                                      "logging.tensorboard); changes nothing of the training, a run resumes "
                                      "either way")


@dataclass(kw_only=True)
class TrainPackArgs(OnDevice, Scaled):
    """The options of `iapo train-pack`."""

    env: str = option(help="paper environment name, e.g. Hopper-v2")
    variant: str = option(help="agent variant from params.yaml, e.g. iterative")
    seeds: list[int] | None = option(None, "the seeds to train (default: every seed the scale's grid "
                                     "gives this env and variant)", nargs="+", type=int)
    threads: int = option(1, "torch CPU threads of each seed's training (default 1)")
    logs: Path | None = option(None, "folder of the seeds' logs, seed<k>.log (default: this command's "
                               "output)")
    mps: bool = option(False, "run the seeds under a CUDA MPS control daemon started for this job (their "
                       "kernels then run at once; without it they time-slice the GPU)", store_true=True)


@dataclass(kw_only=True)
class EvaluateArgs(OnDevice):
    """The options of `iapo evaluate`."""

    run: Path = option(help="run folder written by `iapo train` (or one of its checkpoints/step_N.pt)")
    checkpoint: str | None = option(None, "snapshot to evaluate: step_N, step_N.pt or N "
                                    "(default: the newest)")
    episodes: int = option(10, "episodes (default %(default)s)", type=positive_int)
    stochastic: bool = option(False, "sample actions a ~ π(·|s) instead of acting with tanh(μ)",
                              store_true=True)
    seed: int = option(0, "environment seed of the first episode and torch's seed (default %(default)s)")
    out: Path | None = option(None, "CSV to write "
                              "(default: RUN/evaluate/step_N[_stochastic]_<E>ep_seed<S>.csv)")
    video: Path | None = option(None, "film the first episode into FILE: .mp4 or .gif", metavar="FILE")
    video_size: int = option(480, "width and height of the video's frames (default %(default)s)",
                             type=positive_int, metavar="PIXELS")
    threads: int = option(1, "torch CPU threads (default 1)", type=positive_int)


@dataclass(kw_only=True)
class BenchArgs(Args):
    """The options of `iapo bench`."""

    json: Path | None = option(None, "also write the results here (JSON)")
    repeats: int = option(15, "timed rounds (default %(default)s)")
    warmup: int = option(2, "untimed rounds first (default %(default)s)")
    threads: int = option(1, "torch CPU threads (default %(default)s)")
    quick: bool = option(False, "3 timed rounds after 1 warm-up round", store_true=True)
    variants: list[str] = option(["direct", "iterative"], "agents to time (default: both)",
                                 choices=["direct", "iterative"], nargs="+")
    archs: list[str] = option(["A", "B"], "Q architectures (Tables 3-4; default: both)", choices=["A", "B"],
                              nargs="+")
    reference: bool = option(False, "also time the reference path (training.fused: false)", store_true=True)
    no_compile: bool = option(False, store_true=True, hidden=True)  # older command lines
    loop: list[str] | None = option(None, "time whole training runs instead, e.g. Hopper-v2:direct "
                                    "Hopper-v2:iterative", nargs="+", metavar="ENV:VARIANT")
    scale: str = option("smoke", "scale of the --loop training runs (default %(default)s)")
    device: torch.device = device_option(help="cpu (default: the benchmark above) | cuda | cuda:N: update "
                                         "and act of the fast fp32 path timed on that device, eagerly and "
                                         "as CUDA graphs (training.graphs: on)")


@dataclass(kw_only=True)
class GpuCheckArgs(Args):
    """The options of `iapo gpu-check`."""

    device: torch.device = device_option("cuda", "cuda (default) | cuda:N | cpu")
    out: Path = option(Path("results/gpu_check"), "default: %(default)s")
    budget_s: float | None = option(None, "skip the steps that would not end within this many seconds "
                                    "(default: run every step)")
    mps: bool = option(False, "also measure the pack under a CUDA MPS control daemon started for it (needs "
                       "nvidia-cuda-mps-control; changes no GPU setting)", store_true=True)


@dataclass(kw_only=True)
class TablesArgs(Scaled):
    """The options of `iapo tables`."""

    scale: str | None = option(None, "scale whose folder gets the tables (default: params.yaml `scale`)")
    out: Path | None = option(None, f"default: {layout.tables_dir(SCALE)}")


@dataclass(kw_only=True)
class SummarizeArgs(Scaled):
    """The options of `iapo summarize`."""

    runs: Path = option(layout.RUNS_ROOT, "root of the run folders RUNS/<scale>/<env>/<variant>/seed<k> "
                        "(default: %(default)s)")
    out: Path | None = option(None, f"output folder (default: {layout.summary_dir(SCALE)})")
    diagnostics: Path = option(layout.DIAGNOSTICS_ROOT, "root of the per-run diagnostic tables "
                               "DIAGNOSTICS/<scale>/NAME/<env>/<variant>/seed<k>.csv (default: %(default)s)")
    no_diagnostics: bool = option(False, "summarize the runs only (before the diagnostics have run)",
                                  store_true=True)


@dataclass(kw_only=True)
class SchemaArgs(Args):
    """The options of `iapo schema`."""

    out: Path | None = option(None, "write here instead of stdout")


@dataclass(kw_only=True)
class AuditArgs(Scaled):
    """The options of `iapo audit`."""

    claims: Path = option(Path("claims.yaml"))
    summary: Path | None = option(None, f"default: {layout.summary_dir(SCALE)}")
    out: Path | None = option(None, f"default: {layout.audit_md(SCALE)}")
    deviations: Path = option(Path("docs/deviations.md"))
    across_scales: bool = option(False, "also tabulate every claim's verdict at each scale whose summary "
                                 "sits next to SUMMARY (off by default: the report of one scale depends on "
                                 "its tables alone)", store_true=True)


@dataclass(kw_only=True)
class DiagnoseArgs(OneDiagnostic):
    """The options of `iapo diagnose`."""

    options: list[str] = option([], "its options (iapo diagnose NAME --help)", positional=True,
                                nargs=argparse.REMAINDER)


@dataclass(kw_only=True)
class DiagnoseScaleArgs(Scaled, OneDiagnostic):
    """The options of `iapo diagnose-scale`."""


@dataclass(kw_only=True)
class FiguresIndexArgs(Args):
    """The options of `iapo figures-index`."""

    scale: str = option("mini", "scale whose figures the thumbnails show (default: %(default)s, the "
                        "committed study)")
    out: Path = option(layout.PAPER_FIGURES / "README.md")


@dataclass(kw_only=True)
class NotebookArgs(Scaled):
    """The options of `iapo notebook`."""

    groups: list[str] = option([], "notebook name(s), e.g. performance", positional=True, nargs="*",
                               metavar="GROUP")
    summary: Path | None = option(None, "summary tables folder")


@dataclass(kw_only=True)
class RebuildFiguresArgs(Scaled):
    """The options of `iapo rebuild-figures`."""

    cores: str = option("all", "Snakemake --cores (default: %(default)s)")
    dry_run: bool = option(False, "list the jobs, run nothing", flags=("-n",), store_true=True)


@dataclass(kw_only=True)
class ScalesArgs(Args):
    """The options of `iapo scales`."""

    default: bool = option(False, "print the default scale's name only", store_true=True)


# ------------------------------------------------------------------ what each subcommand does
def cmd_train(args: TrainArgs) -> int:
    from iapo.envs import paper_name
    from iapo.train import train

    params = load_params(args.params)
    cfg = resolve(params, paper_name(args.env), args.variant, args.seed, args.scale_of(params), args.steps)
    out = args.out or layout.RunKey(cfg.env, cfg.variant, cfg.seed).folder(cfg.scale)
    tensorboard = params.logging.tensorboard if args.tensorboard is None else args.tensorboard
    train(cfg, out, device=args.device, threads=args.threads, deterministic=args.deterministic,
          tensorboard=tensorboard)
    return 0


def cmd_train_pack(args: TrainPackArgs) -> int:
    from iapo.envs import paper_name
    from iapo.pack import train_argv, train_pack

    params = load_params(args.params)
    env, scale = paper_name(args.env), args.scale_of(params)
    resolve(params, env, args.variant, 0, scale)  # a bad env or variant: one paragraph, exit 2
    seeds = args.seeds if args.seeds is not None else range(params.scales[scale].seeds_of(env, args.variant))
    commands = [train_argv(args.params, scale, env, args.variant, seed, str(args.device), args.threads)
                for seed in seeds]
    logs = None if args.logs is None else [args.logs / f"seed{seed}.log" for seed in seeds]
    return train_pack(commands, logs, mps=args.mps)


def cmd_evaluate(args: EvaluateArgs) -> int:
    import torch

    from iapo.evaluation import evaluate

    torch.set_num_threads(args.threads)
    evaluate(args.run, args.checkpoint, episodes=args.episodes, seed=args.seed,
             deterministic=not args.stochastic, out=args.out, video=args.video,
             video_size=args.video_size, device=args.device)
    return 0


def cmd_bench(args: BenchArgs) -> int:
    if args.device.type != "cpu":
        return _bench_device(args)
    if args.loop:
        return _bench_loop(args)
    from iapo.tools.bench import TABLE_HEADER, format_table, run_bench, table_row

    def progress(row: dict) -> None:
        print("  ".join(f"{k}={v}" for k, v in zip(TABLE_HEADER, table_row(row), strict=True)),
              file=sys.stderr, flush=True)

    result = run_bench(args.params, repeats=args.repeats, warmup=args.warmup, json_path=args.json,
                       threads=args.threads, quick=args.quick, variants=tuple(args.variants),
                       archs=tuple(args.archs), reference=args.reference, progress=progress)
    print(format_table(result))
    if args.json:
        print(f"written: {args.json}", file=sys.stderr)
    return 0


def _bench_device(args: BenchArgs) -> int:
    import torch

    from iapo.tools.bench import format_device_table, run_device_bench

    if args.loop:
        raise ConfigError(f"--loop with --device {args.device}: the loop benchmark times CPU training runs; "
                          "drop --device, or drop --loop to time update and act on the device")
    torch.set_num_threads(args.threads)
    repeats, warmup = (3, 1) if args.quick else (args.repeats, args.warmup)
    result = run_device_bench(args.params, device=args.device, repeats=repeats, warmup=warmup,
                              json_path=args.json, variants=tuple(args.variants), archs=tuple(args.archs))
    print(format_device_table(result))
    if args.json:
        print(f"written: {args.json}", file=sys.stderr)
    return 0


def _bench_loop(args: BenchArgs) -> int:
    from iapo import atomic
    from iapo.envs import paper_name
    from iapo.tools.bench import format_loop, loop_overhead

    loop = args.loop or []
    pairs = [item.partition(":") for item in loop]
    bad = [item for item, (env, sep, variant) in zip(loop, pairs, strict=True)
           if not (env and sep and variant)]
    if bad:
        raise ConfigError(f"--loop {' '.join(bad)}: expected ENV:VARIANT, e.g. Hopper-v2:iterative")
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for env, _, variant in pairs:
        print(f"timing the {args.scale} training run of {env} / {variant} (seed 0) ...", file=sys.stderr)
        rows.append(loop_overhead(args.params, env=paper_name(env), variant=variant, scale=args.scale,
                                  repeats=args.repeats))
    print(format_loop(rows))
    if args.json:
        atomic.write_json(args.json, {"loop": rows})
        print(f"written: {args.json}", file=sys.stderr)
    return 0


def cmd_gpu_check(args: GpuCheckArgs) -> int:
    from iapo.tools.gpucheck import format_markdown, gpu_check

    result = gpu_check(args.device, args.out, args.params, args.budget_s, args.mps)
    print(format_markdown(result))
    failed = any(s["status"] == "failed" for s in result["steps"].values())
    return 1 if failed or any(t["pass"] is False for t in result["targets"]) else 0


def cmd_tables(args: TablesArgs) -> int:
    from iapo.tables import write_tables

    params = load_params(args.params)
    out = args.out or layout.tables_dir(args.scale_of(params))
    written = write_tables(params, out)
    print(f"wrote {len(written)} files to {out}/", file=sys.stderr)
    return 0


def cmd_summarize(args: SummarizeArgs) -> int:
    from iapo.summary import summarize

    params = load_params(args.params)
    diagnostics = None if args.no_diagnostics else args.diagnostics
    written = summarize(params, args.scale_of(params), args.runs, args.out, diagnostics)
    print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def cmd_schema(args: SchemaArgs) -> int:
    import json

    from iapo.config import Params

    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$comment": "params.yaml of the IAPO study, generated by `iapo schema` from "
              "iapo.config.Params: do not edit by hand, run `make schema`."}
    text = json.dumps(schema | Params.model_json_schema(), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


def cmd_audit(args: AuditArgs) -> int:
    from iapo.audit import run_audit
    from iapo.audit_report import write_report

    scale = args.scale_of()
    summary = args.summary or layout.summary_dir(scale)
    results = run_audit(args.claims, summary)
    md, page = write_report(results, summary, args.out or layout.audit_md(scale), args.deviations,
                            claims_path=args.claims, across_scales=args.across_scales)
    counts = {v: sum(r.verdict == v for r in results) for v in ("supported", "contradicted", "inconclusive")}
    print(f"{len(results)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
          + f"; wrote {md} and {page}", file=sys.stderr)
    return 0


def cmd_diagnose(args: DiagnoseArgs) -> int:
    from iapo.diagnostics.runner import main as diagnose

    return diagnose(args.name, args.options)


def cmd_diagnose_scale(args: DiagnoseScaleArgs) -> int:
    from iapo.diagnostics.runner import main as diagnose
    from iapo.summary import diagnose_argv, diagnostic_runs

    params = load_params(args.params)
    scale = args.scale_of(params)
    jobs = diagnostic_runs(params, scale, args.name)
    if not jobs:
        print(f"iapo diagnose-scale: scales.{scale}.diagnostics lists no run for {args.name}",
              file=sys.stderr)
    for job in jobs:
        if (code := diagnose(args.name, diagnose_argv(job, params, scale))) != 0:
            return code
    return 0


def cmd_figures_index(args: FiguresIndexArgs) -> int:
    from iapo.figures import write_index

    print(f"wrote {write_index(args.out, args.scale)}", file=sys.stderr)
    return 0


def cmd_notebook(args: NotebookArgs) -> int:
    from iapo.figures import notebooks
    from iapo.notebooks import run_notebook

    known = list(notebooks())
    if unknown := [group for group in args.groups if group not in known]:
        raise ConfigError(f"no notebook {', '.join(map(repr, unknown))} in the registry "
                          f"iapo.figures.FIGURES; known: {', '.join(known)}")
    scale = args.scale_of()
    for group in args.groups or known:
        run_notebook(group, scale, args.summary)
    return 0


def cmd_rebuild_figures(args: RebuildFiguresArgs) -> int:
    from iapo.rebuild import rebuild_figures

    params = load_params(args.params)
    return rebuild_figures(params, args.scale_of(params), args.cores, args.dry_run)


def cmd_scales(args: ScalesArgs) -> int:
    params = load_params(args.params)
    if args.default:
        print(params.scale)
        return 0
    width = max(len(name) for name in params.scales)
    for name, scale in params.scales.items():
        mark = "  (default)" if name == params.scale else ""
        print(f"{name:<{width}}  {scale.describe()}{mark}")
    return 0


def cmd_envs(args: Args) -> int:
    from iapo.envs import PAPER_ENVS

    rows = [("paper name", "gymnasium ID", "differences from the paper's task")]
    rows += [(spec.paper_name, spec.gym_id, spec.note) for spec in PAPER_ENVS.values()]
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, gym_id, note in rows:
        print(f"{name:<{width[0]}}  {gym_id:<{width[1]}}  {note}")
    return 0


# ------------------------------------------------------------------ the parser and the entry point
@dataclass(frozen=True)
class Subcommand:
    """One subcommand: its options, what runs it, its line in `iapo --help` and its own --help."""

    args: type[Args]
    run: Callable[[Any], int]
    help: str
    description: str
    raw: bool = False  # the description's line breaks kept as written


COMMANDS: dict[str, Subcommand] = {
    "train": Subcommand(TrainArgs, cmd_train, "train one agent", TRAIN_HELP, raw=True),
    "train-pack": Subcommand(
        TrainPackArgs, cmd_train_pack, "train several seeds of one env and variant at once, in one job",
        "Every seed of one env and variant (or --seeds) trained at once, one `iapo train` process per seed, "
        "each on its own share of this process's cores (taskset), each writing the run folder `iapo train` "
        "writes. SIGTERM and SIGINT are passed on to every seed; the exit code is 143 if any seed was "
        "stopped (it saved its resume state: rerunning the same command resumes every seed), else the "
        "first failure's, else 0. The Slurm profile trains this way, one job (one GPU) per env and "
        "variant (`train: pack: 1` in profiles/slurm/config.yaml)."),
    "evaluate": Subcommand(EvaluateArgs, cmd_evaluate, "evaluate a trained agent's snapshot, optionally "
                           "with a video", EVALUATE_HELP, raw=True),
    "bench": Subcommand(BenchArgs, cmd_bench, "time updates and action selection against their GEMM floor",
                        BENCH_HELP, raw=True),
    "gpu-check": Subcommand(
        GpuCheckArgs, cmd_gpu_check, "every GPU check at once: training eager and captured, resume, "
        "snapshots across devices, bench, loop and packed env steps/s, the paper grid's cost",
        "One prepared run of every check that needs a GPU (`make gpu-check`), sized for one large GPU; "
        "--device cpu runs it at small sizes (the test suite does). Correctness first (kill and resume, "
        "snapshots across devices), then the costs. Writes OUT/gpu_check-<cpu|cuda>.json and .md after "
        "every step (a failed step is recorded and the next one runs), then prints each target with pass or "
        "FAIL (the exit code is 1 if a step or a target failed); run folders "
        "and their logs go to OUT/work-<cpu|cuda>/. On a bare GPU machine (a Python with torch and "
        "nothing else, no network): tools/gpu-check-bare, with the wheels of `make device-wheels`."),
    "tables": Subcommand(
        TablesArgs, cmd_tables, "write Tables 1-9 of the appendix (+ Table 10, the training β) "
        "from params.yaml",
        "Writes OUT/tables.md (all tables, Markdown) and OUT/table<N>.tex (LaTeX) from params.yaml, to diff "
        "against the paper's Appendix A.4-A.5."),
    "summarize": Subcommand(SummarizeArgs, cmd_summarize,
                            "aggregate a scale's finished runs into tidy tables", SUMMARIZE_HELP, raw=True),
    "schema": Subcommand(
        SchemaArgs, cmd_schema, "print the JSON schema of params.yaml",
        "Prints the JSON schema of params.yaml generated from the typed models in iapo.config (the pipeline "
        "validates its config against it; `make schema` writes it to workflow/schemas/params.schema.json)."),
    "audit": Subcommand(
        AuditArgs, cmd_audit, "evaluate the paper's claims on the summary tables",
        "Reads CLAIMS (the registry of the paper's testable claims) and the tidy tables in "
        "SUMMARY/<table>.csv; writes OUT (Markdown) and OUT with .html: per claim, on the environments of "
        "its figure, the statistic per seed of one environment (paired where the design is), its Student-t "
        "95% interval, and a verdict (supported / contradicted / inconclusive, with the reason); for each "
        "open claim where it is heading and the seeds per arm that would decide it; the statements of the "
        "paper no table can test; with --across-scales, the verdicts at every scale whose summary sits next "
        "to SUMMARY; the scale the results come from and the deviations table. How it decides: "
        "docs/audit.md."),
    "diagnose": Subcommand(
        DiagnoseArgs, cmd_diagnose, "run one analysis of the paper on a run's checkpoints",
        "Reads RUN/checkpoints/step_N.pt (and RUN/metrics.csv) and writes one tidy CSV (schemas: "
        "docs/diagnostics.md). Diagnostics:\n" + "\n".join(f"  {n:<21} {s}" for n, s in REGISTRY.items())
        + "\nOptions of one: iapo diagnose NAME --help", raw=True),
    "diagnose-scale": Subcommand(
        DiagnoseScaleArgs, cmd_diagnose_scale, "run a diagnostic on every run a scale lists for it",
        "Runs `iapo diagnose NAME` on each finished run that params.yaml scales.<scale>.diagnostics.NAME "
        "lists, one after the other, with the arguments the Snakemake jobs use (the DVC stages call this). "
        "Writes results/diagnostics/<scale>/NAME/<env>/<variant>/seed<k>.csv."),
    "figures-index": Subcommand(
        FiguresIndexArgs, cmd_figures_index, "write paper_figures/README.md, the index of the figures",
        "Writes OUT (Markdown) from the registry iapo.figures.FIGURES: one row per figure/table with its "
        "number in both versions of the paper, the notebook that draws it, the summary tables it reads, and "
        "a thumbnail of paper_figures/SCALE/. Reads nothing else."),
    "notebook": Subcommand(
        NotebookArgs, cmd_notebook, "execute figure notebooks (jupytext → papermill → HTML)",
        f"Executes notebooks/GROUP.py (jupytext source) with papermill on SUMMARY (default "
        f"{layout.summary_dir(SCALE)}): figures go to {layout.figures_dir(SCALE)}/, the executed notebook "
        f"and its HTML to {layout.notebooks_dir(SCALE)}/. No GROUP: every notebook of the registry "
        "iapo.figures.FIGURES. Missing summary tables are an error (exit 2)."),
    "rebuild-figures": Subcommand(
        RebuildFiguresArgs, cmd_rebuild_figures,
        "rebuild the figures, tables and audit of a scale without training (`make figures`)", REBUILD_HELP,
        raw=True),
    "scales": Subcommand(
        ScalesArgs, cmd_scales, "list the scales of params.yaml: what each trains",
        "Prints one line per scale preset of params.yaml: its name, what it trains (pairs, groups, seeds, "
        "runs, env steps), and which one is the default (params.yaml `scale`, what --scale means when it is "
        "left out)."),
    "envs": Subcommand(
        Args, cmd_envs, "list the paper's environments and the gymnasium IDs they run on",
        "Prints one row per environment of the paper: its name (what params.yaml and the run folders use), "
        "the gymnasium ID it is built from (accepted by --env as an alias of the paper name) and how it "
        "differs from the paper's -v2 task."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iapo", description=__doc__)
    add_options(parser, Args, show_defaults=False)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        formatter = argparse.RawDescriptionHelpFormatter if command.raw else argparse.HelpFormatter
        subparser = sub.add_parser(name, help=command.help, description=command.description,
                                   formatter_class=formatter)
        add_options(subparser, command.args, exclude=Args, show_defaults=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    try:  # the options are built here: a device this machine lacks is reported as any input error
        return command.run(options_from_args(command.args, args))
    except IapoError as err:  # the input's fault: one paragraph naming it and the fix
        print(f"iapo {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())

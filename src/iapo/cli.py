"""The `iapo` command line: every job of the study (training, benchmarks, …) is one subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iapo.checkpoint import CheckpointError
from iapo.config import ConfigError, load_params, resolve

TRAIN_HELP = """Train one agent (env × variant × seed) and write into OUT:
  metrics.csv          one row per log interval (env step, updates, train return, Q losses,
                       Q values, σ_Q, α, entropy, J and, for iterative agents, J at each iteration)
  eval.csv             one row per deterministic evaluation episode
  checkpoints/step_N.pt  agent snapshots at the steps the scale lists (read by diagnostics)
  resume/step_N.pt     full training state (newest two) for exact resume
  run.json             provenance; written last, so its presence marks a finished run
Rerunning the same command after a crash or SIGTERM resumes from the newest valid checkpoint."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iapo", description=__doc__)
    parser.add_argument("--params", default="params.yaml", type=Path,
                        help="hyperparameter file (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train one agent", description=TRAIN_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--env", required=True, help="paper environment name, e.g. Hopper-v2")
    tr.add_argument("--variant", required=True, help="agent variant from params.yaml, e.g. direct")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--scale", default=None, help="scale preset (default: params.yaml `scale`)")
    tr.add_argument("--out", required=True, type=Path, help="run folder")
    tr.add_argument("--steps", type=int, default=None, help="override the scale's env steps")
    tr.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    tr.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")

    be = sub.add_parser("bench", help="time one update and one action selection",
                        description="Times update/act for direct and iterative agents (HalfCheetah "
                        "sizes, batch 256, N=10, K=5, Q architectures A and B) in one process.")
    be.add_argument("--json", type=Path, default=None, help="also write the results here")
    be.add_argument("--repeats", type=int, default=20)
    be.add_argument("--threads", type=int, default=1)

    ta = sub.add_parser("tables", help="write Tables 1-9 of the appendix from params.yaml",
                        description="Writes OUT/tables.md (all tables, Markdown) and OUT/table<N>.tex "
                        "(LaTeX) from params.yaml, to diff against the paper's Appendix A.4-A.5.")
    ta.add_argument("--out", type=Path, default=Path("paper_figures/tables"))
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from iapo.train import train

    params = load_params(args.params)
    cfg = resolve(params, args.env, args.variant, args.seed, args.scale, args.steps)
    train(cfg, args.out, device=args.device, threads=args.threads)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from iapo.bench import format_table, run_bench

    result = run_bench(args.params, repeats=args.repeats, json_path=args.json,
                       threads=args.threads)
    print(format_table(result))
    if args.json:
        print(f"written: {args.json}", file=sys.stderr)
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from iapo.tables import write_tables

    written = write_tables(load_params(args.params), args.out)
    print(f"wrote {len(written)} files to {args.out}/", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from iapo.train import TrainingError

    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "bench": cmd_bench, "tables": cmd_tables}
    try:
        return commands[args.command](args)
    except (ConfigError, CheckpointError, TrainingError) as err:
        print(f"iapo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

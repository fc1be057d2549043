"""`metabo collect`: generate PD1-style tuning data by training real networks.

Examples:
  metabo collect --out runs/pd1_mini                      # the default 14 tasks, 250 + 150 each
  metabo collect --out runs/pd1_mini --bundle data        # ... and write the bundled files
  metabo collect --out /tmp/tiny --tasks wine-mlp_small-bs16:2 --matched 4 --unmatched 2 --chunk 4

Rerunning the same command resumes: finished shards are skipped.
"""

from __future__ import annotations

import shlex

HELP = "train real networks over PD1's search space and write a PD1-style tuning dataset"


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output folder for shards, plan and run records")
    parser.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help="tasks as dataset-model-bsN[:epochs] (default: the 14 bundled tasks; see --list-tasks)",
    )
    parser.add_argument(
        "--task-set",
        choices=("pd1_mini", "pd1_scale"),
        help="a named set of tasks instead of --tasks: pd1_mini (14 tasks, the default) or pd1_scale (24 tasks)",
    )
    parser.add_argument("--list-tasks", action="store_true", help="print the default tasks, datasets and models, then exit")
    parser.add_argument("--matched", type=int, default=250, help="Halton configurations shared by all tasks (default 250)")
    parser.add_argument("--unmatched", type=int, default=150, help="random configurations per task (default 150)")
    parser.add_argument("--epochs", type=int, help="epochs for every task without its own ':epochs' (default: per task)")
    parser.add_argument("--seed", type=int, default=0, help="collection seed (default 0)")
    parser.add_argument("--chunk", type=int, default=50, help="configurations trained together per shard (default 50)")
    parser.add_argument("--evals", type=int, default=10, help="validation evaluations per run (default 10)")
    parser.add_argument("--valid-fraction", type=float, default=0.2, help="share held out for validation (default 0.2)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="where shards run (default local)")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes; 0 = this process (default 1)")
    parser.add_argument("--ray-address", help="Ray cluster address (default: a local Ray instance)")
    parser.add_argument("--bundle", metavar="DIR", help="also write the bundled files (Parquet, PD1 JSON lines, summary, data card) to DIR")
    parser.add_argument("--bundle-name", default="pd1_mini", help="base name of the bundled files (default pd1_mini)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _command_line(args) -> str:
    """The command, spelled out with every setting, as recorded in the data card."""
    parts = ["metabo", "collect", "--out", args.out]
    if args.tasks:
        parts += ["--tasks", *args.tasks]
    if args.task_set:
        parts += ["--task-set", args.task_set]
    parts += ["--matched", str(args.matched), "--unmatched", str(args.unmatched)]
    if args.epochs is not None:
        parts += ["--epochs", str(args.epochs)]
    parts += ["--seed", str(args.seed), "--chunk", str(args.chunk), "--evals", str(args.evals)]
    parts += ["--valid-fraction", str(args.valid_fraction), "--engine", args.engine, "--workers", str(args.workers)]
    if args.bundle:
        parts += ["--bundle", args.bundle, "--bundle-name", args.bundle_name]
    return shlex.join(parts)


def run(args) -> int:
    import os
    import sys

    from metabo.bench.report import plural
    from metabo.collect.runner import CollectionPlan, collect, load_results, summarize
    from metabo.collect.tasks import DATASET_INFO, DEFAULT_TASKS, MODELS, TASK_SETS, parse_task
    from metabo.commands.common import UserError

    if args.tasks and args.task_set:
        raise UserError("give --tasks or --task-set, not both")
    base_tasks = TASK_SETS[args.task_set] if args.task_set else DEFAULT_TASKS
    if args.list_tasks:
        for task in base_tasks:
            print(f"{task.name:<32} epochs={task.epochs}")
        print("datasets: " + ", ".join(f"{k} ({v['kind']})" for k, v in DATASET_INFO.items()))
        print("models:   " + ", ".join(MODELS))
        return 0

    try:
        if args.tasks:
            tasks = tuple(parse_task(t, args.epochs) for t in args.tasks)
        elif args.epochs is not None:
            tasks = tuple(parse_task(t.name, args.epochs) for t in base_tasks)
        else:
            tasks = base_tasks
        plan = CollectionPlan(
            tasks,
            n_matched=args.matched,
            n_unmatched=args.unmatched,
            seed=args.seed,
            chunk=args.chunk,
            num_evals=args.evals,
            valid_fraction=args.valid_fraction,
        )
    except ValueError as err:
        raise UserError(str(err)) from err

    # Networks train in float32; the CLI's float64 default is for GP work. Spawned workers
    # inherit the environment variable.
    os.environ["JAX_ENABLE_X64"] = "0"
    import jax

    jax.config.update("jax_enable_x64", False)

    command = _command_line(args)
    try:
        report = collect(
            plan,
            args.out,
            engine=args.engine,
            workers=args.workers,
            progress=False if args.quiet else None,
            ray_address=args.ray_address,
            command=command,
        )
    except ImportError as err:
        raise UserError(str(err)) from err
    print(
        f"{plural(report.shards_total, 'shard')}: {report.shards_run} run, {report.shards_skipped} already done; "
        f"{report.elapsed_s:.1f} s",
        file=sys.stderr,
    )
    frame = load_results(args.out, plan)
    summary = summarize(frame)
    print(f"{'task':<32} {'trials':>6} {'diverged':>8} {'best err':>8} {'train s':>8}")
    for t in summary["tasks"]:
        best = "nan" if t["best_error"] is None else f"{t['best_error']:.4f}"
        print(f"{t['task']:<32} {t['trials']:>6} {t['diverged_share']:>8.1%} {best:>8} {t['train_s']:>8.1f}")
    if args.bundle:
        from metabo.bench.saturation import part_saturation
        from metabo.collect.bundle import LOG_COLUMNS, write_bundle
        from metabo.space import pd1_space

        print("checking saturation (random search, zero-shot portfolio) ...", file=sys.stderr)
        # The float32 setting above is for training; run_unit runs the GP work in float64.
        saturation = part_saturation(frame[LOG_COLUMNS], pd1_space())
        written = write_bundle(
            frame, plan, args.out, args.bundle, name=args.bundle_name, command=command, saturation=saturation
        )
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0

"""`metabo reproduce`: the configured experiments on the bundled data, and their efficiency table."""

from __future__ import annotations

HELP = "run the configured experiments (experiments/configs.py) on the bundled data and print the efficiency table"


def add_arguments(parser) -> None:
    from metabo.commands.benchmark_cmd import add_common_run_arguments

    parser.add_argument("--quick", action="store_true", help="the QUICK set: fewer tasks and seeds (minutes instead of an hour)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/reproduce or runs/reproduce-quick); reruns resume")
    parser.add_argument("--configs", default=None, metavar="PATH", help="experiment configs file (default: experiments/configs.py)")
    parser.add_argument("--data-dir", default=None, help="folder with the data sets (default: $METABO_DATA_DIR, ./data or the checkout's data/)")
    parser.add_argument("--only", default=None, metavar="NAMES", help="comma-separated experiment names to run (default: all of the set)")
    add_common_run_arguments(parser)


def run(args) -> int:
    import os
    import sys

    from metabo.bench.experiments import ExperimentConfig, load_config_sets, run_experiments
    from metabo.bench.report import efficiency_markdown, plural
    from metabo.bench.runner import BenchmarkError
    from metabo.bench.stopping import CostExperiment, cost_markdown
    from metabo.commands.common import UserError

    out = args.out or ("runs/reproduce-quick" if args.quick else "runs/reproduce")
    try:
        sets = load_config_sets(args.configs)
        configs = sets["QUICK" if args.quick else "FULL"]
        if args.only:
            wanted = [n.strip() for n in args.only.split(",") if n.strip()]
            unknown = sorted(set(wanted) - {c.name for c in configs})
            if unknown:
                raise UserError(f"--only: unknown experiment(s) {unknown}; this set has {[c.name for c in configs]}")
            configs = tuple(c for c in configs if c.name in wanted)
        if args.imports:
            from dataclasses import replace

            configs = tuple(
                replace(c, imports=tuple(c.imports) + tuple(args.imports)) if isinstance(c, ExperimentConfig) else c
                for c in configs
            )
        failures = 0

        def show(config, result) -> None:
            nonlocal failures
            if isinstance(config, CostExperiment):
                print(f"## {config.name}: {config.data} ({config.part}), regret against training cost")
                print()
                print(cost_markdown(result))
                return
            failures += len(result.failures)
            summary = result.summary
            print(f"## {config.name}: {config.data} ({config.part}), {plural(len(summary['tasks']), 'task')} x {plural(summary['seeds'], 'seed')}, budget {summary['budget']}")
            print()
            print(efficiency_markdown(summary))
            if result.failures:
                print(f"{len(result.failures)} unit(s) failed; see {os.path.join(out, config.name, 'report.md')}")
                print()

        run_experiments(
            configs,
            out,
            data_dir=args.data_dir,
            workers=args.workers,
            engine=args.engine,
            ray_address=args.ray_address,
            on_result=show,
            notify=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except BenchmarkError as err:
        raise UserError(str(err)) from err
    print(f"tables: {os.path.join(out, 'efficiency.md')}  index: {os.path.join(out, 'reproduce.json')}")
    return 1 if failures else 0

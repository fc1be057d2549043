"""`metabo benchmark`: leave-one-task-out comparison of BO methods on any tuning log.

Tells a user, on their own tasks, how many evaluations pre-training would have saved: each task
in turn is the target, the methods learn from the other tasks and tune the target over the
configurations it already has, and the regret curves and efficiency ratio are reported.
"""

from __future__ import annotations

import argparse
import json

HELP = "leave-one-task-out benchmark on a tuning log: regret curves, ranks, and how many evaluations pre-training saves"


def _method_help() -> str:
    """Method names for --help; the registry imports method modules, so only when help is shown."""
    from metabo.baselines import available_methods

    return ", ".join(available_methods())


class _LazyHelpFormatter(argparse.HelpFormatter):
    """Fills the list of methods into --methods' help only when the help is printed."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action)
        if "{available}" in (text or ""):
            try:
                names = _method_help()
            except Exception as err:  # a broken method module must not break --help
                names = f"(could not list methods: {err})"
            text = text.replace("{available}", names)
        return text

    def _split_lines(self, text, width):
        # Never break a method name such as bbox-stbo at its hyphen.
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


def add_common_run_arguments(parser) -> None:
    """Execution options shared with `metabo reproduce`."""
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel local processes (default: the CPUs available, capped by the work chunks); 1 runs in this process",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local processes, or a Ray cluster (needs the extra metabo[ray])",
    )
    parser.add_argument("--ray-address", default=None, help="address of a running Ray cluster (default: start a local one)")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (in every worker) so the methods it registers can be named; repeatable",
    )


def add_arguments(parser) -> None:
    parser.formatter_class = _LazyHelpFormatter
    parser.add_argument("log", help="tuning log (.parquet or .csv): task, parameter columns, objective, optional status")
    parser.add_argument("--space", required=True, help="search-space JSON file (or a preset name such as pd1)")
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods to compare (default: all). Available: {available}",
    )
    parser.add_argument(
        "--reference",
        default="hyperbo",
        help="the pre-trained method the speedup is computed for; it must be among --methods; 'none' for no speedup (default: hyperbo)",
    )
    parser.add_argument("--budget", type=int, default=100, help="BO steps per run, capped at each task's number of trials (default: 100)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per (method, task) (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="root seed every run's seed derives from (default: 0)")
    parser.add_argument("--tasks", default=None, help="comma-separated target tasks (default: every task); training always uses all others")
    parser.add_argument(
        "--exclude-related",
        action="store_true",
        help="leave tasks related to the target out of its training set (same text before the first '-', or --groups)",
    )
    parser.add_argument("--groups", default=None, metavar="FILE.json", help="JSON object task -> group name for --exclude-related")
    parser.add_argument(
        "--failures",
        choices=("drop", "impute_worst"),
        default="drop",
        help="failed or diverged trials: leave them out, or give them the task's worst score (default: drop)",
    )
    parser.add_argument(
        "--duplicates",
        choices=("error", "mean", "keep"),
        default="error",
        help="repeated configurations within a task with different objectives (default: error)",
    )
    parser.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="an option for one method (VALUE is parsed as JSON when it can be), e.g. hyperbo.steps=200; repeatable",
    )
    parser.add_argument(
        "--curves",
        default=None,
        metavar="PATH",
        help="learning curves of the log's trials (a Curves file: metabo import ... --curves, or Curves.save): adds the "
        "cost view, regret against training cost for the reference method and random search under each stopping rule "
        "(none, median, ASHA, the curve model pre-trained on the other tasks), written to OUT/cost/",
    )
    parser.add_argument("--cost-budget", type=float, default=50.0, help="training runs each cost-view search may spend (default: 50)")
    parser.add_argument("--out", default="runs/benchmark", help="output directory; rerunning into it resumes (default: runs/benchmark)")
    add_common_run_arguments(parser)


def parse_options(items) -> dict:
    """['m.key=value', ...] -> {m: {key: value}} (values as JSON when they parse)."""
    from metabo.commands.common import UserError

    options: dict = {}
    for item in items:
        head, sep, raw = item.partition("=")
        method, dot, key = head.partition(".")
        if not sep or not dot or not method or not key:
            raise UserError(f"--option {item!r}: expected METHOD.KEY=VALUE, e.g. hyperbo.steps=200")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(method, {})[key] = value
    return options


def split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


def run(args) -> int:
    import os
    import sys

    from metabo.baselines import available_methods
    from metabo.bench.report import efficiency_markdown, plural
    from metabo.bench.runner import BenchmarkConfig, BenchmarkError, import_plugins, run_benchmark
    from metabo.commands.common import UserError
    from metabo.data import LogValidationError, read_log
    from metabo.space import SpaceError, load_space

    try:
        space = load_space(args.space)
    except (SpaceError, OSError) as err:
        raise UserError(f"--space: {err}") from err
    if not os.path.exists(args.log):
        raise UserError(f"log file {args.log!r} does not exist")
    try:
        log = read_log(args.log, space, duplicates=args.duplicates)
    except LogValidationError as err:
        raise UserError(f"{args.log}: {err}") from err

    groups = None
    if args.groups is not None:
        try:
            with open(args.groups, encoding="utf-8") as fh:
                groups = json.load(fh)
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"--groups: cannot read {args.groups!r}: {err}") from err
        if not isinstance(groups, dict):
            raise UserError("--groups must hold a JSON object mapping task names to group names")

    try:
        import_plugins(args.imports)
        methods = split_names(args.methods) or available_methods()
        reference = None if args.reference.lower() == "none" else args.reference
        options = parse_options(args.options)
        unknown = sorted(set(options) - set(methods))
        if unknown:
            raise UserError(f"--option names method(s) {unknown} that are not compared (methods: {', '.join(methods)})")
        config = BenchmarkConfig(
            methods=tuple(methods),
            budget=args.budget,
            seeds=args.seeds,
            seed=args.seed,
            tasks=tuple(split_names(args.tasks)) if args.tasks else None,
            exclude_related=args.exclude_related,
            groups=groups,
            failures=args.failures,
            method_options=options,
            reference=reference,
            imports=tuple(args.imports),
        )
        result = run_benchmark(
            log,
            config,
            args.out,
            workers=args.workers,
            engine=args.engine,
            ray_address=args.ray_address,
            notify=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except BenchmarkError as err:
        raise UserError(str(err)) from err

    summary = result.summary
    print(
        f"{plural(len(summary['tasks']), 'task')} x {plural(len(config.methods), 'method')} x "
        f"{plural(config.seeds, 'seed')}, budget {summary['budget']}: "
        f"{plural(result.ran, 'unit')} run, {result.skipped} already done"
    )
    print()
    print(efficiency_markdown(summary))
    print(f"report: {os.path.join(args.out, 'report.md')}  summary: {os.path.join(args.out, 'summary.json')}")
    if args.curves is not None:
        print()
        print(cost_view(args, log, summary["tasks"], reference or "hyperbo", options))
    if result.failures:
        print(f"{plural(len(result.failures), 'unit')} failed (rerun to retry); first: {result.failures[0].error}")
        return 1
    return 0


def cost_view(args, log, tasks, reference: str, options) -> str:
    """Regret against training cost on the log's curves (``metabo.bench.stopping``), into
    OUT/cost/; returns the table."""
    import os
    import sys

    from metabo.bench.experiments import cost_preamble
    from metabo.bench.stopping import cost_benchmark, read_cost_rows, write_cost_outputs
    from metabo.commands.common import UserError
    from metabo.curves import CurveError, Curves

    out = os.path.join(args.out, "cost")
    rows = read_cost_rows(out)
    if rows is None:
        if not os.path.exists(args.curves):
            raise UserError(f"--curves: file {args.curves!r} does not exist")
        try:
            curves = Curves.load(args.curves, log.space)
        except (CurveError, OSError, KeyError, ValueError) as err:
            raise UserError(f"--curves {args.curves}: {err}") from err
        targets = [t for t in tasks if t in set(curves.tasks)]
        if not targets:
            raise UserError(f"--curves {args.curves}: no curves for the benchmark's target tasks {list(tasks)[:5]}")
        try:
            rows = cost_benchmark(
                log, curves, targets, methods=tuple(dict.fromkeys((reference, "random"))), budget=args.cost_budget, seeds=args.seeds,
                seed=args.seed, method_options=options, progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
        except ValueError as err:
            raise UserError(f"--curves {args.curves}: {err}") from err
    table = write_cost_outputs(rows, out, f"# Regret against training cost\n\n{cost_preamble(args.log, 'all', reference)}", reference)
    return f"{table}cost view: {os.path.join(out, 'table.md')}  plot: {os.path.join(out, 'cost.png')}"

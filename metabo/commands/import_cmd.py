"""`metabo import`: build a tuning log from Optuna studies or per-trial CSV exports.

Rows that do not fit the search space are not silently dropped: the kept rows are written and
every dropped row is printed with its location and the reason, or, with ``--strict``, nothing is
written and the command fails.
"""

HELP = "build a metabo tuning log from Optuna studies or CSV exports (Ray Tune, experiment trackers)"


def add_arguments(parser) -> None:
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)

    optuna = sources.add_parser(
        "optuna",
        help="one task per study of an Optuna storage",
        description="Import Optuna studies, one study = one task. COMPLETE trials are kept, FAIL and "
        "PRUNED trials are imported as failed, RUNNING and WAITING ones are skipped and listed.",
    )
    optuna.add_argument("--storage", required=True, help="Optuna storage URL, e.g. sqlite:///studies.db")
    optuna.add_argument("--studies", help="comma-separated study names (default: every study in the storage)")
    optuna.add_argument(
        "--task-name",
        action="append",
        default=[],
        metavar="STUDY=TASK",
        help="name the task of a study differently (repeatable; default: the study name)",
    )
    optuna.add_argument(
        "--curves",
        metavar="PATH",
        help="also write the trials' intermediate values (trial.report) as learning curves (metabo.curves; "
        "Parquet: PATH and PATH's .trials.parquet)",
    )
    _common(optuna, "OPTUNA_PARAM=NAME", "an Optuna parameter name to a space parameter name")

    csv = sources.add_parser(
        "csv",
        help="CSV files with one row per trial (Ray Tune, MLflow, W&B exports)",
        description="Import CSV files with one row per trial. Columns named like the space's parameters, "
        "'task', the objective column or 'status' are used as they are; map others with --map, e.g. "
        "--map config/lr=initial_learning_rate --map val_error=objective --map trial_group=task. "
        "Without a task column, --task names the task of every row; without either, each file is one "
        "task named after the file.",
    )
    csv.add_argument("paths", nargs="+", metavar="CSV", help="CSV file(s) (.csv, .csv.gz, .tsv)")
    csv.add_argument("--task", help="task name for every row when no column maps to 'task'")
    csv.add_argument(
        "--status-map",
        action="append",
        default=[],
        metavar="WORD=STATUS",
        help="how to read a status word (STATUS: ok, failed, diverged, skipped); common words of Optuna, "
        "Ray Tune, MLflow and W&B are known (repeatable)",
    )
    csv.add_argument("--sep", help="field separator (default ',' or tab for .tsv)")
    _common(csv, "COLUMN=NAME", "a CSV column to a space parameter name, 'task', 'objective' or 'status'")


def _common(parser, map_metavar: str, map_help: str) -> None:
    parser.add_argument(
        "--space", required=True, help="search space: a JSON file or a preset name (pd1); names the objective column"
    )
    parser.add_argument("--out", required=True, help="the tuning log to write (.parquet or .csv)")
    parser.add_argument("--map", action="append", default=[], metavar=map_metavar, help=f"map {map_help} (repeatable)")
    parser.add_argument(
        "--transform",
        action="append",
        default=[],
        metavar="NAME=EXPR",
        help="transform a source value into the space's quantity before checking it, keyed by space name or "
        "'objective' (repeatable); EXPR is one of x, 1-x, -x, 100-x, x/100, 100x, log, log10, exp, 10^x; "
        "e.g. one_minus_momentum=1-x for a column that records the momentum",
    )
    parser.add_argument(
        "--duplicates",
        choices=("mean", "keep", "error"),
        default="mean",
        help="a task that repeats a configuration: average the values (default), keep all, or fail",
    )
    parser.add_argument("--strict", action="store_true", help="fail, writing nothing, if any row does not fit the space")
    parser.add_argument("--report", metavar="JSON", help="also write the import report as JSON")
    parser.add_argument(
        "--limit",
        type=int,
        default=5,
        help="dropped rows are listed one line per problem, with its count and at most this many of its rows "
        "(default 5; 0: all)",
    )


def run(args) -> int:
    import json
    import sys

    from metabo.commands.common import UserError
    from metabo.curves import CurveError
    from metabo.data import LogValidationError
    from metabo.importers import ImportDataError, import_csv, import_optuna, parse_pairs
    from metabo.io import atomic_write_text
    from metabo.space import SpaceError, load_space

    try:
        space = load_space(args.space)
        mapping = parse_pairs(args.map, "--map")
        transforms = parse_pairs(args.transform, "--transform")
        if args.source == "optuna":
            task_names = parse_pairs(args.task_name, "--task-name")
            log, report = import_optuna(
                args.storage,
                args.studies,
                space,
                mapping=mapping,
                transforms=transforms,
                task_names=task_names,
                duplicates=args.duplicates,
                strict=args.strict,
            )
        else:
            log, report = import_csv(
                args.paths,
                space,
                mapping,
                task=args.task,
                transforms=transforms,
                status_map=parse_pairs(args.status_map, "--status-map"),
                duplicates=args.duplicates,
                strict=args.strict,
                sep=args.sep,
            )
        log.save(args.out)
        curves = None
        if args.source == "optuna" and args.curves:
            from metabo.curves import curves_from_optuna

            curves = curves_from_optuna(
                args.storage, args.studies, space, mapping=mapping, task_names=task_names
            )
            curves.save(args.curves)
    except (ImportDataError, SpaceError, LogValidationError, CurveError) as err:
        raise UserError(str(err)) from err
    except Exception as err:
        # Optuna raises its own errors for unreachable storages; say which input was wrong.
        if args.source == "optuna" and type(err).__module__.split(".")[0] in ("optuna", "sqlalchemy"):
            raise UserError(f"cannot read the Optuna storage {args.storage!r}: {err}") from err
        raise
    print(report.format(limit=args.limit or None))
    print(f"wrote {args.out}: {_count(len(log), 'row')}, {_count(len(log.tasks), 'task')}")
    if curves is not None:
        print(f"wrote {args.curves}: curves of {_count(len(curves.trials), 'trial')}, {_count(len(curves.points), 'point')}")
    if args.report:
        atomic_write_text(args.report, json.dumps(report.to_dict(), indent=2) + "\n")
    if report.dropped:
        print(f"warning: {_count(len(report.dropped), 'row')} were not imported (listed above)", file=sys.stderr)
    return 0


def _count(count: int, word: str) -> str:
    return f"{count} {word if count == 1 else word + 's'}"

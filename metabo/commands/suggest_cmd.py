"""`metabo suggest`: the next configuration(s) to try, from a space and a trial history."""

HELP = "suggest the next configuration(s) to evaluate, as JSON lines in user units"

# A best point within this fraction of the range of a bound (on the model's unit scale, i.e.
# after the log map for log parameters) counts as sitting on the border.
BORDER_TOLERANCE = 0.01


def add_arguments(parser) -> None:
    parser.add_argument(
        "--space", required=True, metavar="SPACE", help="search space: a JSON file or a preset (pd1)"
    )
    parser.add_argument(
        "--history",
        metavar="TRIALS.csv",
        help="trials so far (CSV or Parquet): the parameter columns, the objective column and an optional "
        "status column (ok | diverged | failed); a task column is allowed if it names one task. "
        "Omit it for a first suggestion.",
    )
    parser.add_argument("--prior", metavar="PRIOR", help="a pre-trained prior (from `metabo pretrain`)")
    parser.add_argument("--n", type=int, default=1, metavar="K", help="number of suggestions (default 1)")
    parser.add_argument(
        "--acquisition",
        default="ei",
        choices=("ei", "pi", "ucb", "gp-ucb", "ts"),
        help="acquisition function (default ei)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args) -> int:
    import json
    import sys

    from metabo.commands.common import UserError
    from metabo.space import SpaceError, load_space

    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    try:
        space = load_space(args.space)
    except (SpaceError, OSError) as err:
        raise UserError(f"cannot load the space {args.space!r}: {err}") from err

    history = _read_history(args.history, space) if args.history else None
    prior = _load_prior(args.prior) if args.prior else None

    from metabo.bo.optimizer import Optimizer, TellError

    try:
        optimizer = Optimizer(space, prior=prior, acquisition=args.acquisition, seed=args.seed)
    except ValueError as err:
        raise UserError(str(err)) from err
    if history is not None:
        column = space.objective.column
        for row, record in enumerate(history.to_dict("records")):
            config = {name: record[name] for name in space.names}
            value = record[column]
            value = None if value != value else float(value)  # NaN -> None
            try:
                optimizer.tell(config, value, status=record["status"])
            except TellError as err:
                raise UserError(f"{args.history}: row {row}: {err}") from err
        _warn_border(optimizer, space)

    from metabo.bo.maximize import AllObservedError

    try:
        configs = optimizer.ask(args.n)
    except AllObservedError as err:
        raise UserError(str(err)) from err
    for config in configs:
        print(json.dumps(config))
    sys.stdout.flush()
    return 0


def _read_history(path, space):
    """The history as a validated one-task frame (parameters, objective, status)."""
    import numpy as np
    import pandas as pd

    from metabo.commands.common import UserError
    from metabo.data import STATUS_COLUMN, TASK_COLUMN, LogValidationError, read_log, read_table

    try:
        raw = read_table(path)
    except LogValidationError as err:
        raise UserError(str(err)) from err
    if TASK_COLUMN in raw.columns:
        tasks = raw[TASK_COLUMN].dropna().astype(str).unique()
        if len(tasks) > 1:
            raise UserError(
                f"{path}: the history has {len(tasks)} tasks ({list(tasks)[:5]}); give one task's trials"
            )
        raw = raw.assign(**{TASK_COLUMN: "history"})
    else:
        raw = raw.assign(**{TASK_COLUMN: "history"})
    if len(raw) == 0:
        return None
    column = space.objective.column
    # read_log validates columns, numbers, bounds and statuses with row/column messages. It also
    # rejects a task without any successful trial, which for a running tuning job is legitimate
    # (every run so far diverged): validate such a history with a dummy successful row.
    valid_row = None
    if column in raw.columns:
        values = pd.to_numeric(raw[column], errors="coerce")
        status = (
            raw[STATUS_COLUMN].astype(str).str.strip().str.lower() if STATUS_COLUMN in raw.columns else "ok"
        )
        ok = np.isfinite(values.to_numpy(dtype=float)) & np.asarray(status == "ok")
        if not ok.any():
            valid_row = {name: space[name].low for name in space.names}
            valid_row.update({column: _some_valid_value(space), TASK_COLUMN: "history"})
            if STATUS_COLUMN in raw.columns:
                valid_row[STATUS_COLUMN] = "ok"
    frame = raw if valid_row is None else pd.concat([raw, pd.DataFrame([valid_row])], ignore_index=True)
    try:
        log = read_log(frame, space, duplicates="keep")
    except LogValidationError as err:
        raise UserError(f"{path}: {err}") from err
    result = log.frame
    if valid_row is not None:
        result = result.iloc[:-1]
    return result.reset_index(drop=True)


def _some_valid_value(space) -> float:
    return 0.5 if space.objective.transform == "neg_log" else 0.0


def _load_prior(path):
    from metabo.commands.common import UserError

    try:
        from metabo.pretrain.prior import Prior
    except ImportError as err:
        raise UserError(f"cannot load priors: metabo.pretrain is not available ({err})") from err
    try:
        return Prior.load(path)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the prior {path!r}: {err}") from err


def _warn_border(optimizer, space) -> None:
    """Warn on stderr when the best trial sits on a bound: the range may be too narrow."""
    import sys

    import numpy as np

    best = optimizer.best
    if best is None:
        return
    unit = space.to_unit(space.config_matrix([best.config]))[0]
    for p, u in zip(space.parameters, unit, strict=True):
        side = "lower" if u <= BORDER_TOLERANCE else "upper" if u >= 1 - BORDER_TOLERANCE else None
        if side is None or not np.isfinite(u):
            continue
        bound = p.low if side == "lower" else p.high
        print(
            f"metabo suggest: warning: the best trial so far has {p.name}={best.config[p.name]!r}, on the {side} "
            f"bound ({bound}) of its range: the optimum may lie outside; consider widening the range",
            file=sys.stderr,
        )

"""`metabo suggest`: the next configuration(s) to try, from a space and a trial history."""

HELP = "suggest the next configuration(s) to evaluate, as JSON lines in user units"

# A best point within this fraction of the range of a bound (on the model's unit scale, i.e.
# after the log map for log parameters) counts as sitting on the border.
BORDER_TOLERANCE = 0.01
# Printed suggestions are rounded to this many significant digits (0.00010000000000000009 ->
# 0.0001), unless rounding would leave the space.
PRINT_DIGITS = 12
# Optuna's study.trials_dataframe(): trial state -> status; unfinished trials are left out.
OPTUNA_STATES = {"COMPLETE": "ok", "FAIL": "failed", "PRUNED": "failed"}
OPTUNA_UNFINISHED = ("RUNNING", "WAITING")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--space", required=True, metavar="SPACE", help="search space: a JSON file or a preset (pd1)"
    )
    parser.add_argument(
        "--history",
        metavar="TRIALS.csv",
        help="trials so far (CSV or Parquet): the parameter columns, the objective column and an optional "
        "status column (ok | diverged | failed); a task column is allowed if it names one task. "
        "An Optuna export (study.trials_dataframe(): params_<name>, value, state) is read as it is. "
        "Omit it for a first suggestion.",
    )
    parser.add_argument(
        "--prior",
        action="append",
        metavar="PRIOR",
        help="a pre-trained prior (from `metabo pretrain`). Multi-objective spaces (\"objectives\", "
        "\"constraints\"): repeat it as --prior COLUMN=PRIOR, one per objective or constrained metric",
    )
    parser.add_argument("--n", type=int, default=1, metavar="K", help="number of suggestions (default 1)")
    parser.add_argument(
        "--acquisition",
        default="ei",
        choices=("ei", "pi", "ucb", "gp-ucb", "ts", "hedge", "ehvi", "parego"),
        help="acquisition function (default ei; multi-objective: ehvi for two objectives, parego beyond); hedge: "
        "GP-Hedge over UCB and PI, whose weights need each trial's nomination, which a history file does not "
        "carry, so here it picks a member uniformly at random (use metabo.Optimizer with a state file for the "
        "learned weights)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--failure-model",
        action="store_true",
        help="weight EI / PI by the prior's failure model (its probability of no failure, updated with the "
        "history's failed and diverged trials); off by default",
    )


def run(args) -> int:

    from metabo.commands.common import UserError
    from metabo.space import SpaceError, load_space

    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    try:
        space = load_space(args.space)
    except (SpaceError, OSError) as err:
        raise UserError(f"cannot load the space {args.space!r}: {err}") from err

    from metabo.commands.common import load_prior

    if space.is_multi:
        return _run_multi(args, space)
    if args.prior and len(args.prior) > 1:
        raise UserError("--prior is given once for a single-objective space")
    if args.acquisition in ("ehvi", "parego"):
        raise UserError(f"--acquisition {args.acquisition} is for multi-objective spaces (several \"objectives\")")
    history, history_rows = _read_history(args.history, space) if args.history else (None, None)
    prior = load_prior(args.prior[0]) if args.prior else None

    from metabo.bo.optimizer import Optimizer, TellError

    try:
        optimizer = Optimizer(
            space, prior=prior, acquisition=args.acquisition, seed=args.seed, failure_model=args.failure_model
        )
    except ValueError as err:
        raise UserError(str(err)) from err
    if history is not None:
        from metabo.data import LogValidationError

        column = space.objective.column
        for row, record in enumerate(history.to_dict("records")):
            config = {name: record[name] for name in space.names}
            value = record[column]
            value = None if value != value else float(value)  # NaN -> None
            try:
                optimizer.tell(config, value, status=record["status"])
            except TellError as err:
                where = LogValidationError(str(err), row=int(history_rows[row]), source=args.history)
                raise UserError(f"{args.history}: {where}") from err
        _warn_border(optimizer, space)

    return _print_suggestions(optimizer, args.n, space)


def _run_multi(args, space) -> int:
    """A multi-objective (or constrained) space: priors per column, a history with a column per
    objective and constrained metric, suggestions from the multi-objective core."""

    import numpy as np

    from metabo.bo.optimizer import Optimizer, TellError
    from metabo.commands.common import UserError, load_prior
    from metabo.data import STATUS_COLUMN, LogValidationError, read_table

    columns = list(dict.fromkeys([o.column for o in space.objectives] + [c.column for c in space.constraints]))
    priors = {}
    for entry in args.prior or []:
        column, sep, path = entry.partition("=")
        if not sep or column not in columns:
            raise UserError(f"--prior {entry!r}: a multi-objective space takes --prior COLUMN=PRIOR with COLUMN in {columns}")
        priors[column] = load_prior(path)
    acquisition = args.acquisition if args.acquisition in ("ehvi", "parego") else None
    if args.acquisition not in ("ei", "ehvi", "parego"):
        raise UserError(f"--acquisition {args.acquisition} is single-objective; use ehvi or parego")
    try:
        optimizer = Optimizer(space, prior=priors or None, seed=args.seed, multi_acquisition=acquisition)
    except ValueError as err:
        raise UserError(str(err)) from err
    if args.history:
        try:
            raw = read_table(args.history)
        except LogValidationError as err:
            raise UserError(str(err)) from err
        missing = [c for c in (*space.names, *columns) if c not in raw.columns]
        if missing:
            raise UserError(
                f"{args.history}: missing column(s) {missing}; a multi-objective history needs the parameters "
                f"{list(space.names)}, the columns {columns} and optionally status"
            )
        for row, record in enumerate(raw.to_dict("records")):
            status = str(record.get(STATUS_COLUMN, "ok")).strip().lower() if STATUS_COLUMN in raw.columns else "ok"
            values = {c: float(record[c]) for c in columns if np.isfinite(float(record[c]))}
            try:
                optimizer.tell({n: record[n] for n in space.names}, values or None, status=status)
            except (TellError, TypeError, ValueError) as err:
                where = LogValidationError(str(err), row=row, source=args.history)
                raise UserError(f"{args.history}: {where}") from err
    return _print_suggestions(optimizer, args.n, space)


def _print_suggestions(optimizer, count: int, space) -> int:
    """Ask for ``count`` configurations and print them as JSON lines."""
    import json
    import sys

    from metabo.bo.maximize import AllObservedError
    from metabo.commands.common import UserError

    try:
        configs = optimizer.ask(count)
    except AllObservedError as err:
        raise UserError(str(err)) from err
    for config in configs:
        print(json.dumps(_rounded(config, space)))
    sys.stdout.flush()
    return 0


def _rounded(config, space) -> dict:
    """A configuration for printing: floats to PRINT_DIGITS significant digits, unless the rounded
    value would fall outside the parameter's [low, high] (no tolerance)."""
    out = {}
    for name, value in config.items():
        if isinstance(value, float):
            short = float(f"{value:.{PRINT_DIGITS}g}")
            value = short if space[name].low <= short <= space[name].high else value
        out[name] = value
    return out


def _read_history(path, space):
    """The history as a validated one-task frame (parameters, objective, status), and for each of its
    rows the 0-based data row of the file it came from (None, None for an empty history)."""
    import numpy as np
    import pandas as pd

    from metabo.commands.common import UserError
    from metabo.data import STATUS_COLUMN, TASK_COLUMN, LogValidationError, read_log, read_table

    try:
        raw = read_table(path)
    except LogValidationError as err:
        raise UserError(str(err)) from err
    file_columns = list(map(str, raw.columns))
    rows = np.arange(len(raw))
    optuna = _is_optuna_export(raw)
    if optuna:
        raw, rows = _from_optuna_export(raw, space, path)
    column = space.objective.column
    missing = [name for name in (*space.names, column) if name not in raw.columns]
    if missing:
        if optuna:
            wanted = [f"params_{name}" for name in missing if name != column]
            raise UserError(
                f"{path}: this Optuna export has no column {wanted} for the space's parameter(s) "
                f"{[name for name in missing if name != column]}; it has {file_columns}"
            )
        raise UserError(
            f"{path}: missing column(s) {missing}; the history has {file_columns}. It needs one column per "
            f"parameter {list(space.names)}, the objective column {column!r} and optionally a status column "
            "(ok | diverged | failed)"
        )
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
        return None, None
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
            valid_row = {p.name: p.config_value(p.low) for p in space.parameters}
            valid_row.update({column: _some_valid_value(space), TASK_COLUMN: "history"})
            if STATUS_COLUMN in raw.columns:
                valid_row[STATUS_COLUMN] = "ok"
    frame = raw if valid_row is None else pd.concat([raw, pd.DataFrame([valid_row])], ignore_index=True)
    try:
        log = read_log(frame, space, duplicates="keep")
    except LogValidationError as err:
        if err.row is not None and err.row < len(rows):
            err = err.located(path, row=int(rows[err.row]))
        raise UserError(f"{path}: {err}") from err
    result = log.frame
    if valid_row is not None:
        result = result.iloc[:-1]
    return result.reset_index(drop=True), rows


def _is_optuna_export(raw) -> bool:
    """Columns of Optuna's study.trials_dataframe(): params_<name>..., value and state."""
    columns = [str(c) for c in raw.columns]
    return "value" in columns and "state" in columns and any(c.startswith("params_") for c in columns)


def _from_optuna_export(raw, space, path):
    """An Optuna trials_dataframe() table -> (history columns, data rows kept).

    params_X -> X, value -> the space's objective column, state COMPLETE -> ok, FAIL and PRUNED ->
    failed; RUNNING and WAITING trials (not finished) are left out.
    """
    import numpy as np
    import pandas as pd

    from metabo.commands.common import UserError
    from metabo.data import STATUS_COLUMN, LogValidationError

    state = raw["state"].astype(str).str.strip().str.upper().str.replace("TRIALSTATE.", "", regex=False)
    unfinished = state.isin(OPTUNA_UNFINISHED).to_numpy()
    unknown = ~state.isin(list(OPTUNA_STATES)).to_numpy() & ~unfinished
    if unknown.any():
        row = int(np.argmax(unknown))
        where = LogValidationError(
            f"unknown Optuna trial state {str(raw['state'].iloc[row])!r}; expected one of "
            f"{[*OPTUNA_STATES, *OPTUNA_UNFINISHED]}",
            row=row,
            column="state",
            source=path,
        )
        raise UserError(f"{path}: {where}")
    keep = ~unfinished
    frame = pd.DataFrame(
        {str(c)[len("params_") :]: raw[c].to_numpy() for c in raw.columns if str(c).startswith("params_")}
    )
    frame[space.objective.column] = raw["value"].to_numpy()
    frame[STATUS_COLUMN] = state.map(OPTUNA_STATES).to_numpy()
    return frame[keep].reset_index(drop=True), np.flatnonzero(keep)


def _some_valid_value(space) -> float:
    return 0.5 if space.objective.transform == "neg_log" else 0.0


def _warn_border(optimizer, space) -> None:
    """Warn on stderr when the best trial sits on a bound: the range may be too narrow."""
    import sys

    import numpy as np

    best = optimizer.best
    if best is None:
        return
    user = space.config_matrix([best.config])[0]
    for p, value in zip(space.parameters, user, strict=True):
        if p.is_categorical:
            continue  # choices have no bounds to widen
        u = p.to_unit(np.asarray([value]))[0]
        side = "lower" if u <= BORDER_TOLERANCE else "upper" if u >= 1 - BORDER_TOLERANCE else None
        if side is None or not np.isfinite(u):
            continue
        bound = p.low if side == "lower" else p.high
        print(
            f"metabo suggest: warning: the best trial so far has {p.name}={best.config[p.name]!r}, on the {side} "
            f"bound ({bound}) of its range: the optimum may lie outside; consider widening the range",
            file=sys.stderr,
        )

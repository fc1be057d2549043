"""`metabo pretrain`: fit a GP prior to a tuning log and write the Prior file."""

HELP = "pre-train a GP prior (HyperBO) on a tuning log and save it as a Prior file"

STOP_NOTES = {
    "early_stopping": "; stopped early: held-out NLL no longer improving, best parameters kept",
    "nonfinite": "; stopped: the loss turned non-finite, last finite parameters kept",
    "converged": "; L-BFGS converged",
    "interrupted": "; interrupted: the parameters reached so far are saved (continue with --resume)",
}


def add_arguments(parser) -> None:
    import metabo.defaults as defaults
    from metabo.warp import WARPS

    parser.add_argument(
        "log", metavar="LOG", help="tuning log (.parquet or .csv): task, parameters, objective, status"
    )
    parser.add_argument(
        "--space", required=True, metavar="SPACE", help="search-space JSON file, or a preset name (pd1)"
    )
    parser.add_argument(
        "--out", required=True, metavar="PRIOR", help="where to write the prior (.npz archive)"
    )
    parser.add_argument(
        "--column",
        metavar="COLUMN",
        help="multi-objective spaces (\"objectives\", \"constraints\"): the objective or constrained metric to "
        "pre-train this prior on (one prior per column)",
    )
    parser.add_argument(
        "--objective",
        default=defaults.OBJECTIVE,
        choices=("nll", "ekl", "nll+ekl"),
        help=f"pre-training loss (default {defaults.OBJECTIVE})",
    )
    parser.add_argument(
        "--mean",
        default=defaults.MEAN,
        choices=("zero", "constant", "linear", "mlp"),
        help=f"prior mean (default {defaults.MEAN})",
    )
    parser.add_argument(
        "--kernel",
        default=defaults.KERNEL,
        choices=("se", "matern32", "matern52", "dot"),
        help=f"kernel with ARD lengthscales (default {defaults.KERNEL})",
    )
    parser.add_argument(
        "--features",
        default="",
        metavar="W1,W2",
        help="hidden widths of a feature MLP for a deep kernel, e.g. 32,16 (default: none)",
    )
    parser.add_argument(
        "--mean-hidden",
        default=",".join(map(str, defaults.MEAN_HIDDEN)),
        metavar="W1,W2",
        help=f"hidden widths of the MLP mean (default {','.join(map(str, defaults.MEAN_HIDDEN))})",
    )
    parser.add_argument("--steps", type=int, default=defaults.STEPS, help=f"optimizer steps (default {defaults.STEPS})")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "lbfgs"), help="default adam")
    parser.add_argument(
        "--learning-rate", type=float, default=None, help=f"Adam step size (default {defaults.LEARNING_RATE})"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.BATCH_SIZE,
        help=f"random subset of at most this many points per task per step (default {defaults.BATCH_SIZE}; "
        "0: every point at every step)",
    )
    parser.add_argument(
        "--warp",
        default=defaults.WARP,
        choices=WARPS,
        help=f"output warp of each task's scores, stored in the prior (default {defaults.WARP})",
    )
    parser.add_argument("--ekl-weight", type=float, default=1.0, help="weight of EKL in nll+ekl (default 1)")
    parser.add_argument(
        "--heldout", nargs="+", default=None, metavar="TASK", help="tasks held out for early stopping"
    )
    parser.add_argument(
        "--failures",
        default=defaults.FAILURES,
        choices=("drop", "impute_worst"),
        help=f"diverged/failed trials (default {defaults.FAILURES})",
    )
    parser.add_argument(
        "--duplicates",
        default="error",
        choices=("error", "mean", "keep"),
        help="a task that repeats a configuration with different values: fail (default), average the "
        "values (mean) or keep every row (keep)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--checkpoint",
        metavar="PRIOR",
        help="save the prior reached so far to this file about every minute (kept if the run is killed)",
    )
    parser.add_argument(
        "--resume",
        metavar="PRIOR",
        help="start from this prior's parameters (a checkpoint, or an interrupted run's --out) instead of afresh",
    )
    parser.add_argument(
        "--no-failure-model",
        action="store_true",
        help="do not pre-train the failure model on the log's statuses (built by default when some trials "
        "failed or diverged; the BO core weights EI by its probability of no failure)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, progress lines or summary")


def _parse_widths(text: str, flag: str) -> tuple[int, ...]:
    from metabo.commands.common import UserError

    if not text.strip():
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise UserError(f"{flag} must be comma-separated integers such as 32,16, got {text!r}") from err
    if any(w < 1 for w in widths):
        raise UserError(f"{flag} widths must be positive, got {text!r}")
    return widths


def run(args) -> int:
    import time

    from metabo.commands.common import UserError
    from metabo.data import LogValidationError, read_log
    from metabo.space import SpaceError, load_space

    start = time.perf_counter()
    try:
        space = _column_space(load_space(args.space), args.column)
        log = read_log(args.log, space, duplicates=args.duplicates)
    except (SpaceError, LogValidationError) as err:
        raise UserError(str(err)) from err
    except OSError as err:
        raise UserError(f"cannot read input: {err}") from err

    import signal

    from metabo.gp import GPModel
    from metabo.pretrain import PretrainError, pretrain

    start_from = None
    if args.resume:
        from metabo.pretrain.prior import Prior, PriorFileError

        try:
            start_from = Prior.load(args.resume)
        except PriorFileError as err:
            raise UserError(f"--resume: {err}") from err

    # SIGTERM (a scheduler, `kill`) stops the run like Ctrl-C: the fit returns what it reached,
    # and that prior is saved below instead of being lost.
    def terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        model = GPModel(
            mean=args.mean,
            kernel=args.kernel,
            feature_sizes=_parse_widths(args.features, "--features"),
            mean_hidden=_parse_widths(args.mean_hidden, "--mean-hidden"),
        )
        prior = pretrain(
            log,
            model=model,
            objective=args.objective,
            steps=args.steps,
            optimizer=args.optimizer,
            learning_rate=args.learning_rate,
            seed=args.seed,
            failures=args.failures,
            batch_size=args.batch_size if args.batch_size else None,
            warp=args.warp,
            heldout=args.heldout,
            ekl_weight=args.ekl_weight,
            progress=not args.quiet,
            checkpoint=args.checkpoint,
            init=start_from,
            failure_model=not args.no_failure_model,
        )
    except (PretrainError, LogValidationError) as err:
        raise UserError(str(err)) from err
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        prior.save(args.out)
    except OSError as err:
        raise UserError(f"cannot write {args.out!r}: {err}") from err

    if not args.quiet:
        info, losses = prior.info, prior.losses
        print(
            f"tasks:          {len(prior.tasks)}"
            + (f" (+{len(info['heldout_tasks'])} held out)" if info["heldout_tasks"] else "")
        )
        print(f"points:         {info['points']}")
        print(
            f"matched blocks: {info['matched_blocks']}"
            + (f" ({info['matched_points']} values)" if info["matched_blocks"] else "")
            + (
                " (not used by the nll objective)"
                if info["matched_blocks"] and info["objective"] == "nll"
                else ""
            )
        )
        print(
            f"objective:      {info['objective']} ({info['optimizer']}, {info['steps_run']} of {info['steps']} steps"
            f"{STOP_NOTES.get(info['stop_reason'], '')})"
        )
        print(
            f"final loss:     {losses['train']:.6g} per point"
            + (f"; held-out NLL {losses['heldout_nll']:.6g}" if "heldout_nll" in losses else "")
        )
        hyper = prior.hyperparameters()
        lengthscales = hyper.pop("lengthscale")
        parts = [
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}=[{', '.join(f'{x:.3g}' for x in v)}]"
            for k, v in hyper.items()
        ]
        print(f"prior:          {', '.join(parts)}")
        if not model.feature_sizes and len(lengthscales) == space.dim:
            named = ", ".join(f"{name}: {x:.3g}" if "=" in name else f"{name}={x:.3g}" for name, x in zip(space.unit_names, lengthscales, strict=True))
            print(f"lengthscale:    {named} (fractions of each parameter's range)")
        else:
            print(f"lengthscale:    [{', '.join(f'{x:.3g}' for x in lengthscales)}] (of the learned features)")
        if "failure_model" in info:
            record = info["failure_model"]
            print(
                f"failure model:  logistic on {record['features']} features, {record['points']} trials "
                f"({100 * record['failure_rate']:.1f}% failed), task scale {record['scale']:g}"
            )
        print(f"time:           {time.perf_counter() - start:.1f} s")
        print(f"wrote:          {args.out}")
    return 0


def _column_space(space, column):
    """The single-objective space a prior is pre-trained in: the space itself, or for a
    multi-objective space the objective (or constrained metric) named by ``--column``."""
    from metabo.commands.common import UserError
    from metabo.space import Space

    if column is None:
        if space.is_multi:
            columns = [o.column for o in space.objectives] + [c.column for c in space.constraints]
            raise UserError(
                f"the space has several objectives / constrained metrics {list(dict.fromkeys(columns))}: pre-train "
                "one prior per column with --column COLUMN"
            )
        return space
    from metabo.bo.multi import constraint_objective

    chosen = {o.column: o for o in space.objectives}
    for c in space.constraints:
        chosen.setdefault(c.column, constraint_objective(c))
    if column not in chosen:
        raise UserError(f"--column {column!r} is not an objective or constrained metric of the space: {list(chosen)}")
    return Space(space.parameters, chosen[column])

"""`metabo pretrain`: fit a GP prior to a tuning log and write the Prior file."""

HELP = "pre-train a GP prior (HyperBO) on a tuning log and save it as a Prior file"

STOP_NOTES = {
    "early_stopping": "; stopped early: held-out NLL no longer improving, best parameters kept",
    "nonfinite": "; stopped: the loss turned non-finite, last finite parameters kept",
    "converged": "; L-BFGS converged",
}


def add_arguments(parser) -> None:
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
        "--objective",
        default="nll",
        choices=("nll", "ekl", "nll+ekl"),
        help="pre-training loss (default nll)",
    )
    parser.add_argument(
        "--mean",
        default="constant",
        choices=("zero", "constant", "linear", "mlp"),
        help="prior mean (default constant)",
    )
    parser.add_argument(
        "--kernel",
        default="matern52",
        choices=("se", "matern32", "matern52", "dot"),
        help="kernel with ARD lengthscales (default matern52)",
    )
    parser.add_argument(
        "--features",
        default="",
        metavar="W1,W2",
        help="hidden widths of a feature MLP for a deep kernel, e.g. 32,16 (default: none)",
    )
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "lbfgs"), help="default adam")
    parser.add_argument("--learning-rate", type=float, default=None, help="Adam step size (default 0.02)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="random subset of at most this many points per task per step",
    )
    parser.add_argument("--ekl-weight", type=float, default=1.0, help="weight of EKL in nll+ekl (default 1)")
    parser.add_argument(
        "--heldout", nargs="+", default=None, metavar="TASK", help="tasks held out for early stopping"
    )
    parser.add_argument(
        "--failures",
        default="drop",
        choices=("drop", "impute_worst"),
        help="diverged/failed trials (default drop)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _parse_widths(text: str) -> tuple[int, ...]:
    from metabo.commands.common import UserError

    if not text.strip():
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise UserError(f"--features must be comma-separated integers such as 32,16, got {text!r}") from err
    if any(w < 1 for w in widths):
        raise UserError(f"--features widths must be positive, got {text!r}")
    return widths


def run(args) -> int:
    import time

    from metabo.commands.common import UserError
    from metabo.data import LogValidationError, read_log
    from metabo.space import SpaceError, load_space

    start = time.perf_counter()
    try:
        space = load_space(args.space)
        log = read_log(args.log, space)
    except (SpaceError, LogValidationError) as err:
        raise UserError(str(err)) from err
    except OSError as err:
        raise UserError(f"cannot read input: {err}") from err

    import jax

    jax.config.update("jax_enable_x64", True)

    from metabo.gp import GPModel
    from metabo.pretrain import PretrainError, pretrain

    try:
        model = GPModel(mean=args.mean, kernel=args.kernel, feature_sizes=_parse_widths(args.features))
        prior = pretrain(
            log,
            model=model,
            objective=args.objective,
            steps=args.steps,
            optimizer=args.optimizer,
            learning_rate=args.learning_rate,
            seed=args.seed,
            failures=args.failures,
            batch_size=args.batch_size,
            heldout=args.heldout,
            ekl_weight=args.ekl_weight,
            progress=None if not args.quiet else False,
        )
    except (PretrainError, LogValidationError) as err:
        raise UserError(str(err)) from err
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
        parts = [
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}=[{', '.join(f'{x:.3g}' for x in v)}]"
            for k, v in hyper.items()
        ]
        print(f"prior:          {', '.join(parts)}")
        print(f"time:           {time.perf_counter() - start:.1f} s")
        print(f"wrote:          {args.out}")
    return 0

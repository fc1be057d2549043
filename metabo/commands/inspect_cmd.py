"""`metabo inspect PRIOR [--log LOG]`: what a pre-trained prior learned, and how well it predicts.

Without a log: the model, the mean and kernel parameters, the noise, and each parameter's
lengthscale in user units. With a log: held-out calibration on the log's tasks (see
``metabo.integrations.diagnostics``): per-task NLL, coverage of the central 50% and 90%
predictive intervals, and a PNG plot with ``--out-plot``.
"""

HELP = "show what a pre-trained prior learned and, given a log, how calibrated its predictions are"


def add_arguments(parser) -> None:
    parser.add_argument("prior", metavar="PRIOR", help="a prior file written by `metabo pretrain`")
    parser.add_argument("--log", help="a tuning log (.parquet or .csv) in the prior's space: check predictions on its tasks")
    parser.add_argument(
        "--fraction",
        type=float,
        default=0.5,
        help="share of each task's points the prior is conditioned on; the rest are predicted (default 0.5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random context / held-out split (default 0)")
    parser.add_argument(
        "--failures",
        choices=("drop", "impute_worst"),
        default="drop",
        help="failed trials in the log: leave out (default) or give the task's worst score",
    )
    parser.add_argument(
        "--refit-steps",
        type=int,
        default=0,
        metavar="N",
        help="honest leave-one-task-out: re-pre-train the prior's model without each task for N steps "
        "(one pre-training per task: slow) and check each task with the prior that never saw it",
    )
    parser.add_argument("--out-plot", metavar="PNG", help="write a calibration plot (needs --log)")
    parser.add_argument("--json", metavar="PATH", help="also write everything as JSON")


def run(args) -> int:
    import json
    import os

    from metabo.commands.common import UserError
    from metabo.data import LogValidationError, read_log
    from metabo.io import atomic_write_text
    from metabo.space import SpaceError

    if args.out_plot and not args.log:
        raise UserError("--out-plot needs --log: the plot shows predictions on the log's tasks")
    if not 0.0 < args.fraction < 1.0:
        raise UserError(f"--fraction must be between 0 and 1 (exclusive), got {args.fraction}")
    if args.refit_steps < 0:
        raise UserError("--refit-steps must be >= 0")
    if not os.path.exists(args.prior):
        raise UserError(f"prior file {args.prior!r} does not exist")

    from metabo.integrations import diagnostics
    from metabo.pretrain.prior import Prior

    try:
        prior = Prior.load(args.prior)
    except (ValueError, OSError, KeyError) as err:
        raise UserError(f"cannot read the prior {args.prior!r}: {err}") from err

    print(f"prior: {args.prior}")
    tasks = list(getattr(prior, "tasks", None) or [])
    if tasks:
        shown = ", ".join(map(str, tasks[:10])) + (f", ... ({len(tasks)} in all)" if len(tasks) > 10 else "")
        from metabo.bench.report import plural

        print(f"pre-trained on {plural(len(tasks), 'task')}: {shown}")
    losses = dict(getattr(prior, "losses", None) or {})
    if losses:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if isinstance(v, (int, float)))
        print(f"final losses (per point): {shown}")
    info = dict(getattr(prior, "info", None) or {})
    if info.get("objective"):
        print(
            f"pre-training: {info.get('objective')} objective, {info.get('optimizer', '?')}, "
            f"{info.get('steps_run', '?')} of {info.get('steps', '?')} steps ({info.get('stop_reason', '?')})"
        )
    summary = diagnostics.summarize_prior(prior.model, prior.params, prior.space)
    print(summary.format())
    report = {"prior": args.prior, "tasks": [str(t) for t in tasks], "summary": summary.to_dict()}

    if args.log:
        try:
            log = read_log(args.log, prior.space, duplicates="mean")
        except (LogValidationError, SpaceError) as err:
            raise UserError(f"{args.log}: {err}") from err
        from metabo.pretrain.train import warp_log

        options = dict(seed=args.seed, fraction=args.fraction, failures=args.failures)
        # The prior predicts warped scores: check it on the log's scores warped the same way.
        warped = warp_log(log, prior.warp)
        try:
            if args.refit_steps:
                params, method = _leave_one_task_out(prior, log, args)
                calibration = diagnostics.calibrate(prior.model, params, warped, per_task=True, method=method, **options)
            else:
                calibration = diagnostics.calibrate(
                    prior.model, prior.params, warped, seen_tasks=tasks or None, **options
                )
        except (ValueError, LogValidationError) as err:
            raise UserError(str(err)) from err
        print()
        print(calibration.format())
        report["calibration"] = calibration.to_dict()
        if args.out_plot:
            title = f"{os.path.basename(args.prior)} on {os.path.basename(args.log)}: {calibration.method}"
            diagnostics.plot_calibration(calibration, args.out_plot, title=title)
            print(f"wrote {args.out_plot}")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2, default=_jsonable) + "\n")
        print(f"wrote {args.json}")
    return 0


def _leave_one_task_out(prior, log, args):
    """Per-task params [T, ...]: the prior's model re-pre-trained without each task of ``log``."""
    import sys

    import jax
    import numpy as np
    from tqdm import tqdm

    from metabo.commands.common import UserError
    from metabo.pretrain import pretrain

    tasks = log.tasks
    if len(tasks) < 2:
        raise UserError("leave-one-task-out needs a log with at least 2 tasks")
    fitted = []
    for i, task in enumerate(tqdm(tasks, desc="re-pre-training", disable=not sys.stderr.isatty())):
        refit = pretrain(
            log.without(task),
            model=prior.model,
            steps=args.refit_steps,
            seed=args.seed + i,
            failures=args.failures,
            progress=False,
            warp=prior.warp,
        )
        fitted.append(refit.params)
    params = jax.tree_util.tree_map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *fitted)
    method = (
        f"leave-one-task-out: the prior's model re-pre-trained for {args.refit_steps} steps without each task, "
        f"conditioned on a random {args.fraction:.0%} of that task's points (seed {args.seed}), predicting the rest"
    )
    return params, method


def _jsonable(value):
    import numpy as np

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)

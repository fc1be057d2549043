"""`metabo run`: run a training command once per trial, with N workers, on a shared Optuna study."""

HELP = "run a training command once per trial with N workers on a shared Optuna study (master and workers)"

EPILOG = """\
The command comes after --, with {name} for each parameter of the space (also {trial} and
{trial_dir}). It prints intermediate values as JSON lines ({"step": 3, "loss": 0.41}) and the
objective on its last stdout line (a number or JSON with the objective's column or "value"), or
writes it to --objective-file. Rerun the same command to resume; run it on several machines with
one --storage to share the search. Example:

  metabo run --storage sqlite:///tune.db --study wide-resnet --workers 4 --trials 50 \\
      --prior prior.npz -- python train.py --lr {initial_learning_rate} --out {trial_dir}
"""


def add_arguments(parser) -> None:
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="Optuna storage shared by all workers and masters: sqlite:///tune.db, postgresql://..., or journal:PATH",
    )
    parser.add_argument("--study", required=True, metavar="NAME", help="study name (created if missing)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="commands running at once here (default 1)")
    parser.add_argument(
        "--trials",
        type=int,
        required=True,
        metavar="T",
        help="stop once the study has T finished trials (complete, pruned or failed; all masters together)",
    )
    parser.add_argument("--prior", metavar="PRIOR", help="a pre-trained prior (from `metabo pretrain`); its space is searched")
    parser.add_argument("--space", metavar="SPACE", help="search-space JSON file or preset, for BO without a prior")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="stop a trial's command after this long: a failed trial")
    parser.add_argument(
        "--objective-file",
        metavar="FILE",
        help="read the objective from this file after the command exits (relative to the trial's folder; may use {trial})",
    )
    parser.add_argument(
        "--pruner",
        choices=("none", "median", "curve"),
        default="none",
        help="stop runs whose intermediate values lag: Optuna's MedianPruner, or 'curve': a pre-trained "
        "learning-curve model (--curve-model) stops a run once beating the best finished one is unlikely "
        "(default none)",
    )
    parser.add_argument(
        "--curve-model",
        metavar="PATH",
        help="the curve model for --pruner curve (metabo.stopping.model.save_curve_model); the command must "
        "report once per evaluation, as many times as the curves it was pre-trained on",
    )
    parser.add_argument("--workdir", default="runs", metavar="DIR", help="trial folders with stdout and stderr (default runs/)")
    parser.add_argument(
        "--max-failures", type=int, default=5, metavar="K", help="stop after K failed trials in a row (default 5)"
    )
    parser.add_argument("--acquisition", default="ei", choices=("ei", "pi", "ucb", "gp-ucb", "ts"), help="default ei")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampler (default 0)")
    parser.add_argument("command", nargs="*", metavar="-- COMMAND", help="the training command and its arguments")


def run(args) -> int:
    import signal
    from pathlib import Path

    from metabo.commands.common import UserError, load_prior

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UserError("no command to run: put it after --, e.g. -- python train.py --lr {initial_learning_rate}")
    if bool(args.prior) == bool(args.space):
        raise UserError("give --prior (BO with a pre-trained prior) or --space (BO without one), not both or neither")
    try:
        import optuna
    except ImportError as err:
        raise UserError("metabo run needs optuna: pip install 'metabo[optuna]'") from err

    from metabo.integrations.optuna import IncompatibleStudyError, PretrainedGPSampler
    from metabo.integrations.runner import RunError, Runner, open_storage

    if args.prior:
        prior = load_prior(args.prior)
        space = prior.space
        sampler = PretrainedGPSampler(prior, seed=args.seed, acquisition=args.acquisition)
    else:
        from metabo.space import SpaceError, load_space

        try:
            space = load_space(args.space)
        except (SpaceError, OSError) as err:
            raise UserError(f"cannot load the space {args.space!r}: {err}") from err
        sampler = PretrainedGPSampler(None, space=space, seed=args.seed, acquisition=args.acquisition)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.pruner == "curve":
        from metabo.integrations.pruner import CurvePruner
        from metabo.stopping.model import load_curve_model

        if not args.curve_model:
            raise UserError("--pruner curve needs --curve-model PATH")
        try:
            curve_model = load_curve_model(args.curve_model)
            pruner = CurvePruner(space, "curve", model=curve_model)
        except ValueError as err:
            raise UserError(str(err)) from err
        sampler.curve_model = curve_model  # stopped runs count with their predicted final
    else:
        pruner = optuna.pruners.MedianPruner() if args.pruner == "median" else optuna.pruners.NopPruner()
    try:
        storage = open_storage(args.storage)
        study = optuna.create_study(
            study_name=args.study,
            storage=storage,
            direction=space.objective.direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        sampler.check_study(study)
        runner = Runner(
            study,
            space,
            tuple(command),
            trials=args.trials,
            workers=args.workers,
            workdir=Path(args.workdir) / args.study,
            timeout=args.timeout,
            objective_file=args.objective_file,
            max_failures=args.max_failures,
        )
    except (RunError, IncompatibleStudyError) as err:
        raise UserError(str(err)) from err

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # stop the commands and fail their trials, as Ctrl-C does
    return runner.run()

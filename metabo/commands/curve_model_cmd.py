"""`metabo curve-model`: pre-train the learning-curve model on past curves, check its
calibration on held-out tasks, and save it for `metabo run --pruner curve`."""

HELP = "pre-train the learning-curve model for early stopping on past curves, with its held-out calibration"


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--curves", help="curves saved by metabo (`metabo import optuna --curves`, Curves.save)")
    source.add_argument(
        "--log",
        help="a log with list columns valid_error_curve and eval_steps (metabo's collection shards, a PD1 frame)",
    )
    parser.add_argument("--space", required=True, help="search space: a JSON file or a preset name (pd1)")
    parser.add_argument("--out", required=True, help="the model file to write (.npz)")
    parser.add_argument(
        "--folds", type=int, default=2, help="held-out calibration: tasks dealt into this many folds (default 2; 0: skip)"
    )


def run(args) -> int:
    from metabo.commands.common import UserError
    from metabo.curves import CurveError, Curves, curves_from_lists
    from metabo.data import LogValidationError, read_table
    from metabo.space import SpaceError, load_space
    from metabo.stopping.model import cross_task_coverage, fit_curve_model, save_curve_model

    try:
        space = load_space(args.space)
        curves = Curves.load(args.curves, space) if args.curves else curves_from_lists(read_table(args.log), space)
        model = fit_curve_model(curves)
        rows = cross_task_coverage(curves, folds=args.folds) if args.folds and len(curves.tasks) >= args.folds else []
    except (SpaceError, LogValidationError, CurveError, ValueError, OSError) as err:
        raise UserError(str(err)) from err
    save_curve_model(model, args.out)
    print(f"curve model: {len(curves.trials)} trials of {len(curves.tasks)} task(s), curves of {model.length} evaluations")
    if rows:
        print(f"held-out calibration ({args.folds} folds by task): checkpoint, share inside the 50% / 90% intervals")
        for fraction in model.fractions:
            mine = [r for r in rows if r["fraction"] == fraction]
            cover50 = sum(r["cover50"] for r in mine) / len(mine)
            cover90 = sum(r["cover90"] for r in mine) / len(mine)
            print(f"  after {fraction:.0%} of the evaluations: {cover50:.2f} / {cover90:.2f}")
    print(f"wrote {args.out}")
    return 0

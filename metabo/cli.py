"""The ``metabo`` command.

Each subcommand is one module in ``metabo/commands/`` that defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Adding a subcommand means adding the module
and its name to ``COMMANDS``. Modules import JAX inside ``run`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from metabo.commands.common import UserError  # re-exported: metabo.cli.UserError
from metabo.runtime import configure_jax, freeze_imported_objects, start_jax

COMMANDS = (
    "info",
    "demo",
    "pretrain",
    "suggest",
    "run",
    "collect",
    "benchmark",
    "reproduce",
    "import",
    "inspect",
    "curve-model",
)


def load_command(name: str):
    """The module of subcommand ``name`` (``metabo/commands/<name>_cmd.py``)."""
    return importlib.import_module(f"metabo.commands.{name.replace('-', '_')}_cmd")


def build_parser() -> argparse.ArgumentParser:
    from metabo.version import __version__

    parser = argparse.ArgumentParser(
        prog="metabo",
        description="Meta-learned transfer Bayesian optimization: pre-train a GP prior on past "
        "tuning logs, then use it to tune new tasks.",
    )
    parser.add_argument("--version", action="version", version=f"metabo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = load_command(name)
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("metabo.commands"):
                continue  # not built yet
            raise
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_jax()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    start_jax()
    if argv is None:  # this process is the command (not a caller running it in-process)
        freeze_imported_objects()
    try:
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"metabo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"metabo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

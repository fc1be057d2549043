"""Subcommands of the ``metabo`` CLI, one module each (``<name>_cmd.py``); see ``metabo.cli``."""

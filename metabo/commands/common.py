"""What the subcommands share with the ``metabo`` entry point, kept apart from ``metabo.cli`` so
that the commands never import the module that imports them."""


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback, exit code 2."""

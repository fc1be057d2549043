"""What the subcommands share with the ``metabo`` entry point, kept apart from ``metabo.cli`` so
that the commands never import the module that imports them."""


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback, exit code 2."""


def load_prior(path):
    """``Prior.load(path)``, with a one-line ``UserError`` for a missing or bad file."""
    try:
        from metabo.pretrain.prior import Prior
    except ImportError as err:
        raise UserError(f"cannot load priors: metabo.pretrain is not available ({err})") from err
    try:
        return Prior.load(path)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the prior {path!r}: {err}") from err

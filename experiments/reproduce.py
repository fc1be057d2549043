"""Reproduce the comparisons: ``python experiments/reproduce.py [--quick] [--out DIR] ...``.

The same as ``metabo reproduce``: runs the experiments of ``experiments/configs.py`` on the
bundled data and prints the efficiency table. Arguments are those of ``metabo reproduce``.
"""

import sys
from pathlib import Path


def main(argv=None) -> int:
    from metabo.cli import main as cli_main  # sets up float64 and the CPU backend itself

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--configs" not in argv:
        argv += ["--configs", str(Path(__file__).with_name("configs.py"))]
    return cli_main(["reproduce", *argv])


if __name__ == "__main__":
    sys.exit(main())

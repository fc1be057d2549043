"""metabo: meta-learned transfer Bayesian optimization (HyperBO) in JAX.

Light to import: submodules that need JAX load it when they are used.
"""

__version__ = "0.1.0"

from metabo.data import TuningLog, read_log  # noqa: E402
from metabo.space import Objective, Parameter, Space, load_space, pd1_space  # noqa: E402


def __getattr__(name):
    # Heavy pieces (JAX) load on first use, so `import metabo` and the CLI start fast.
    if name == "Prior":
        from metabo.pretrain.prior import Prior

        return Prior
    if name == "Optimizer":
        from metabo.bo.optimizer import Optimizer

        return Optimizer
    raise AttributeError(f"module 'metabo' has no attribute {name!r}")


__all__ = [
    "__version__",
    "Objective",
    "Parameter",
    "Space",
    "load_space",
    "pd1_space",
    "TuningLog",
    "read_log",
    "Prior",
    "Optimizer",
]

"""`metabo info`: version, JAX backend and devices, float64 status."""

HELP = "show the metabo version, the JAX backend and devices, and whether float64 is on"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run(args) -> int:
    import json

    import jax
    import jax.numpy as jnp

    from metabo.version import __version__

    info = {
        "metabo": __version__,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "float64": bool(jax.config.jax_enable_x64) and jnp.zeros(()).dtype == jnp.float64,
    }
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key:>8}: {value}")
    return 0

"""Meeting users where they are: an Optuna sampler (``metabo.integrations.optuna``, needs the
``metabo[optuna]`` extra) and prior diagnostics (``metabo.integrations.diagnostics``).

Importers for other tools' logs live in ``metabo.importers``. Submodules are imported on use,
so importing this package pulls in neither Optuna nor JAX.
"""

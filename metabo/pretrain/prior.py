"""The pre-trained prior and its file.

A ``Prior`` is everything needed to start BO on a new task: the GP structure (``GPModel``), its
raw parameters (``GPParams``), the search space with the objective and its transform, the
training tasks, final losses and provenance.

File format (``FORMAT_VERSION`` 1): a NumPy ``.npz`` archive (a plain zip of ``.npy`` arrays, no
pickles), readable with ``numpy.load(path, allow_pickle=False)`` from any language with a zip and
npy reader:

- ``header``: a 0-d string array holding JSON: ``format`` (``"metabo-prior"``),
  ``format_version``, ``metabo_version``, ``model`` (``GPModel.to_dict``), ``space``
  (``Space.to_dict``, which includes the objective column, direction and transform), ``tasks``,
  ``losses``, ``info`` and ``params`` (the parameter array names, in pytree order).
- ``param/<path>``: one float64 array per parameter leaf, ``<path>`` its position in
  ``GPParams`` (``mean_constant``, ``raw_lengthscale``, ``features/0/0`` for the first layer's
  weights, ...).
- optional, the failure model (``metabo.failure``, pre-trained on the training tasks'
  statuses): ``failure/weights`` [p] and ``failure/scale`` [], with ``failure`` in the header
  (``{"features": "quadratic"}``). Files without it load with ``failure=None``; readers that
  predate it ignore these entries.

Zip entries carry CRC-32 checksums, so corruption is detected on load; the file is written to a
temporary name and renamed into place (``metabo.io``), so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metabo.failure import FEATURES as FAILURE_FEATURES
from metabo.failure import FailureParams, num_features
from metabo.gp.model import GPModel, GPParams
from metabo.precision import float64
from metabo.space import Space, SpaceError
from metabo.version import __version__
from metabo.warp import OutputWarp

FORMAT_NAME = "metabo-prior"
FORMAT_VERSION = 1
HEADER_KEY = "header"
PARAM_PREFIX = "param/"
FAILURE_PREFIX = "failure/"
REQUIRED_HEADER_KEYS = (
    "format",
    "format_version",
    "metabo_version",
    "model",
    "space",
    "tasks",
    "losses",
    "info",
    "params",
)

# The uninformed prior (``Prior.default``): scores are taken as roughly standardized.
DEFAULT_MEAN = 0.0
DEFAULT_SIGNAL = 1.0
DEFAULT_NOISE = 0.01
DEFAULT_LENGTHSCALE = 0.5


class PriorFileError(ValueError):
    """A prior file is missing, truncated, corrupted or incompatible with this metabo."""


@dataclass(frozen=True, eq=False)
class Prior:
    """A GP prior for BO on the unit cube of ``space``, with scores (maximized) as outputs.

    Attributes:
      model: GP structure (mean, kernel, feature sizes, floors).
      params: raw parameters (``GPParams`` with float64 NumPy leaves; pass them with ``model`` to
        ``metabo.gp`` functions).
      space: search space, objective and objective transform.
      tasks: names of the training tasks.
      losses: final losses (per point), e.g. ``{"train": ..., "train_nll": ..., "heldout_nll": ...}``.
      info: provenance: objective, optimizer, steps, seed, time, metabo version, ...
      warp: the output warp the training tasks' scores went through (``metabo.warp``); a new
        task's scores are warped the same way before conditioning (``predict``, the BO core).
        The model's outputs are warped scores.
      failure: the failure model pre-trained on the training tasks' statuses
        (``metabo.failure.FailureParams``), or None (no failures in the log, or an older file).
    """

    model: GPModel
    params: GPParams
    space: Space
    tasks: tuple[str, ...] = ()
    losses: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    warp: OutputWarp = OutputWarp("none")
    failure: FailureParams | None = None

    def __post_init__(self):
        if not isinstance(self.model, GPModel):
            raise TypeError(f"model must be a GPModel, got {type(self.model).__name__}")
        if not isinstance(self.space, Space):
            raise TypeError(f"space must be a Space, got {type(self.space).__name__}")
        template = _template(self.model, self.space.dim)
        params = _check_params(self.params, template, where="Prior")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "tasks", tuple(str(t) for t in self.tasks))
        object.__setattr__(self, "losses", dict(self.losses))
        object.__setattr__(self, "info", dict(self.info))
        object.__setattr__(self, "warp", OutputWarp.from_dict(self.warp))
        if self.failure is not None:
            object.__setattr__(self, "failure", _check_failure(self.failure, self.space.dim, where="Prior"))

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    @float64
    def default(cls, space: Space, model: GPModel | None = None, seed: int = 0) -> Prior:
        """The uninformed prior used when nothing has been learned.

        Constant mean 0, signal variance 1, noise variance 0.01 and lengthscale 0.5 on every
        unit-cube axis (1 for the dot-product kernel), on scores warped by the default warp
        (``metabo.defaults.WARP``), which makes them roughly standardized.
        MLP weights (if any) are drawn from ``seed``.
        """
        import jax

        model = GPModel() if model is None else model
        params = model.init(jax.random.PRNGKey(int(seed)), space.dim, y_mean=DEFAULT_MEAN)
        lengthscale = np.full(
            np.shape(params.raw_lengthscale), 1.0 if model.kernel == "dot" else DEFAULT_LENGTHSCALE
        )
        params = model.with_hyper(params, lengthscale=lengthscale, signal=DEFAULT_SIGNAL, noise=DEFAULT_NOISE)
        params = params._replace(mean_constant=np.asarray(DEFAULT_MEAN))
        from metabo.defaults import WARP

        return cls(model, params, space, (), {}, {"kind": "default", "seed": int(seed)}, warp=OutputWarp(WARP))

    # ---- use ------------------------------------------------------------------------------
    @float64
    def hyperparameters(self) -> dict[str, Any]:
        """Constrained values as plain Python numbers: mean constant, lengthscales, signal, noise."""
        h = self.model.hyper(self.params)
        out = {
            "lengthscale": [float(v) for v in np.asarray(h.lengthscale)],
            "signal": float(h.signal),
            "noise": float(h.noise),
        }
        if self.model.mean != "zero":
            out["mean_constant"] = float(np.asarray(self.params.mean_constant))
        if self.model.kernel == "dot":
            out["bias"] = float(h.bias)
        return out

    @float64
    def condition(self, x_unit, y_score):
        """Condition on a task's observations: x_unit [n, d], y_score [n] (scores, warped here
        with ``warp``) -> ``metabo.gp.Conditioned``."""
        from metabo.gp import warn_jitter

        x, y = self._check_x(x_unit, "x_unit"), self.warp(self._check_y(y_score, x_unit))
        state = _condition_jit(self.model)(self.params, x, y)
        warn_jitter(state.jitter, where="Prior.condition")
        return state

    @float64
    def predict(self, x_unit, y_score, xq_unit, include_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance at xq_unit [m, d] given (x_unit [n, d], y_score [n]).

        -> (mean [m], var [m]) as NumPy arrays, in warped units (the scores are warped with
        ``warp`` first, as the BO core does); ``include_noise`` adds the observation noise.
        With no observations (n = 0) this is the prior.
        """
        xq = self._check_x(xq_unit, "xq_unit")
        x = self._check_x(x_unit, "x_unit")
        if x.shape[0] == 0:
            mean = self.mean(xq)
            var = np.asarray(self.model.cov_diag(self.params, xq))
            if include_noise:
                var = var + float(self.model.noise(self.params))
            return mean, var
        state = self.condition(x, y_score)
        mean, var = _predict_jit(self.model, bool(include_noise))(self.params, state, xq)
        return np.asarray(mean), np.asarray(var)

    @float64
    def mean(self, xq_unit) -> np.ndarray:
        """Prior mean at xq_unit [m, d] -> [m]."""
        return np.asarray(self.model.mean_fn(self.params, self._check_x(xq_unit, "xq_unit")))

    @float64
    def cov(self, x1_unit, x2_unit=None) -> np.ndarray:
        """Prior covariance (without noise): x1 [n, d], x2 [m, d] (default x1) -> [n, m]."""
        x1 = self._check_x(x1_unit, "x1_unit")
        x2 = x1 if x2_unit is None else self._check_x(x2_unit, "x2_unit")
        return np.asarray(self.model.cov(self.params, x1, x2))

    def _check_x(self, x, name: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and x.size == 0:
            x = x.reshape(0, self.space.dim)
        if x.ndim != 2 or x.shape[1] != self.space.dim:
            raise ValueError(
                f"{name} must have shape [n, {self.space.dim}] (unit-cube points of this space), got {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} has non-finite values")
        return x

    def _check_y(self, y, x) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.shape[0] != np.shape(x)[0]:
            raise ValueError(f"y_score has {y.shape[0]} values for {np.shape(x)[0]} points")
        if not np.all(np.isfinite(y)):
            raise ValueError("y_score has non-finite values; leave failed trials out or impute them")
        return y

    @property
    def digest(self) -> str:
        """A short fingerprint (SHA-256, 16 hex digits) of what the prior predicts: model,
        space, warp and parameter values. Saving and loading keep it; another pre-training
        changes it. State files record it so a resumed search knows which prior it ran with."""
        import hashlib

        h = hashlib.sha256()
        identity = {"model": self.model.to_dict(), "space": self.space.to_dict(), "warp": self.warp.to_dict()}
        h.update(json.dumps(identity, sort_keys=True).encode("utf-8"))
        for name, leaf in _flatten(self.params):
            h.update(name.encode("utf-8"))
            h.update(np.ascontiguousarray(leaf, dtype=np.float64).tobytes())
        # Only when present, so priors without a failure model keep the digest they had.
        for name, leaf in _failure_arrays(self.failure).items():
            h.update(name.encode("utf-8"))
            h.update(np.ascontiguousarray(leaf, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        kind = self.info.get("kind", "pre-trained")
        return (
            f"Prior({kind}, {self.model.mean} mean, {self.model.kernel} kernel, {self.space.dim}-D space "
            f"{list(self.space.names)}, {len(self.tasks)} training task(s), warp {self.warp.kind!r}, "
            f"digest {self.digest})"
        )

    # ---- file -----------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "metabo_version": __version__,
            "model": self.model.to_dict(),
            "space": self.space.to_dict(),
            "tasks": list(self.tasks),
            "losses": _jsonable(self.losses),
            "info": _jsonable(self.info),
            "params": [name for name, _ in _flatten(self.params)],
            "warp": self.warp.to_dict(),
            **({"failure": {"features": FAILURE_FEATURES}} if self.failure is not None else {}),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the prior to ``path`` (a ``.npz`` archive, see the module docstring), atomically."""
        from metabo.io import atomic_write_with

        arrays = {HEADER_KEY: np.asarray(json.dumps(self.header(), allow_nan=False))}
        for name, leaf in _flatten(self.params):
            arrays[PARAM_PREFIX + name] = np.asarray(leaf, dtype=np.float64)
        arrays.update(_failure_arrays(self.failure))

        def write(tmp: str) -> None:
            # A file object, not a name: np.savez would append ".npz" to the temporary name.
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write_with(path, write)

    @classmethod
    @float64
    def load(cls, path: str | os.PathLike) -> Prior:
        """Read a prior written by ``save``.

        Raises ``PriorFileError`` if the file is missing, not a metabo prior, truncated or
        corrupted, from a newer format version, or inconsistent (model, space, parameter shapes).
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise PriorFileError(f"prior file {path!r} does not exist")
        header_text, arrays, failure_arrays = _read_archive(path)
        try:
            header = json.loads(header_text)
        except json.JSONDecodeError as err:
            raise PriorFileError(
                f"{path}: the prior header is not valid JSON ({err}); the file is corrupted"
            ) from err
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise PriorFileError(f"{path}: not a metabo prior file (no '{FORMAT_NAME}' header)")
        missing = [k for k in REQUIRED_HEADER_KEYS if k not in header]
        if missing:
            raise PriorFileError(
                f"{path}: the prior header lacks {missing}; the file is corrupted or not a metabo prior"
            )
        version = header["format_version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise PriorFileError(f"{path}: invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            raise PriorFileError(
                f"{path}: written by metabo {header.get('metabo_version')} in prior format {version}; this metabo "
                f"reads format {FORMAT_VERSION} and older: upgrade metabo to load it"
            )
        try:
            model = GPModel.from_dict(header["model"])
        except (TypeError, ValueError, AttributeError) as err:
            raise PriorFileError(
                f"{path}: model structure {header['model']!r} is not supported by this metabo: {err}"
            ) from err
        try:
            space = Space.from_dict(header["space"])
        except (SpaceError, TypeError, ValueError) as err:
            raise PriorFileError(f"{path}: invalid search space in the prior: {err}") from err
        if (
            not isinstance(header["tasks"], list)
            or not isinstance(header["losses"], dict)
            or not isinstance(header["info"], dict)
        ):
            raise PriorFileError(f"{path}: 'tasks' must be a list and 'losses', 'info' objects")
        listed = header["params"]
        if not isinstance(listed, list) or sorted(listed) != sorted(arrays):
            raise PriorFileError(
                f"{path}: the header lists parameters {listed} but the archive holds {sorted(arrays)}; the file is corrupted"
            )
        template = _template(model, space.dim)
        expected = [name for name, _ in _flatten(template)]
        if sorted(expected) != sorted(arrays):
            raise PriorFileError(
                f"{path}: parameters {sorted(arrays)} do not fit model {model.to_dict()} on {space.dim} inputs "
                f"(expected {expected})"
            )
        import jax

        leaves = []
        for name, leaf in _flatten(template):
            value = arrays[name]
            if value.shape != np.shape(leaf):
                raise PriorFileError(
                    f"{path}: parameter {name!r} has shape {value.shape}, the model needs {np.shape(leaf)}"
                )
            if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
                raise PriorFileError(f"{path}: parameter {name!r} is not a finite float array")
            leaves.append(value.astype(np.float64))
        params = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)
        try:
            # Files written before warps existed were trained on the scores themselves.
            warp = OutputWarp.from_dict(header.get("warp", {"kind": "none"}))
        except ValueError as err:
            raise PriorFileError(f"{path}: {err}; this metabo cannot apply that warp") from err
        failure = _read_failure(path, header, failure_arrays, space.dim)
        return cls(
            model, params, space, tuple(header["tasks"]), header["losses"], header["info"], warp=warp, failure=failure
        )


# ---- helpers ----------------------------------------------------------------------------------
def _read_archive(path: str) -> tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The header text, ``param/`` arrays and ``failure/`` arrays (full names) of an archive; any
    read failure is a PriorFileError."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"PK\x03\x04":
            raise PriorFileError(f"{path}: not a metabo prior file (not a zip/.npz archive)")
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if HEADER_KEY not in names:
                raise PriorFileError(f"{path}: not a metabo prior file (no header entry)")
            header = archive[HEADER_KEY]
            if header.shape != () or header.dtype.kind != "U":
                raise PriorFileError(f"{path}: the header entry is not a string")
            arrays = {
                n[len(PARAM_PREFIX) :]: np.array(archive[n]) for n in names if n.startswith(PARAM_PREFIX)
            }
            failure = {n: np.array(archive[n]) for n in names if n.startswith(FAILURE_PREFIX)}
            return str(header[()]), arrays, failure
    except PriorFileError:
        raise
    except Exception as err:  # noqa: BLE001 - zip/npy parsing fails in many ways; all mean "unreadable"
        raise PriorFileError(
            f"{path}: cannot read the prior file; it is truncated or corrupted ({type(err).__name__}: {err})"
        ) from err


def _failure_arrays(failure: FailureParams | None) -> dict[str, np.ndarray]:
    """The archive entries of a failure model (none without one)."""
    if failure is None:
        return {}
    return {FAILURE_PREFIX + name: np.asarray(value, dtype=np.float64) for name, value in failure._asdict().items()}


def _check_failure(failure, dim: int, where: str) -> FailureParams:
    if not isinstance(failure, FailureParams):
        raise TypeError(f"{where}: failure must be metabo.failure.FailureParams, got {type(failure).__name__}")
    weights = np.array(failure.weights, dtype=np.float64)
    scale = np.array(failure.scale, dtype=np.float64)
    if weights.shape != (num_features(dim),) or scale.shape != ():
        raise ValueError(
            f"{where}: the failure model needs weights [{num_features(dim)}] and a scalar scale for {dim} inputs, "
            f"got {weights.shape} and {scale.shape}"
        )
    if not (np.all(np.isfinite(weights)) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"{where}: the failure model's weights must be finite and its scale positive")
    return FailureParams(weights, scale)


def _read_failure(path: str, header: dict, arrays: dict[str, np.ndarray], dim: int) -> FailureParams | None:
    spec = header.get("failure")
    if spec is None:
        if arrays:
            raise PriorFileError(f"{path}: the archive holds {sorted(arrays)} but the header has no failure model")
        return None
    if not isinstance(spec, dict) or spec.get("features") != FAILURE_FEATURES:
        raise PriorFileError(f"{path}: failure model {spec!r} is not supported by this metabo")
    expected = sorted(FAILURE_PREFIX + name for name in FailureParams._fields)
    if sorted(arrays) != expected:
        raise PriorFileError(f"{path}: the failure model needs {expected}, the archive holds {sorted(arrays)}")
    try:
        return _check_failure(
            FailureParams(*(arrays[FAILURE_PREFIX + name] for name in FailureParams._fields)), dim, where=path
        )
    except ValueError as err:
        raise PriorFileError(str(err)) from err


def _template(model: GPModel, dim: int) -> GPParams:
    import jax

    # Only the structure and shapes matter here.
    return model.init(jax.random.PRNGKey(0), dim)


def _key_name(entry) -> str:
    for attr in ("name", "idx", "key"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _flatten(params) -> list[tuple[str, Any]]:
    """[(path like ``features/0/1``, leaf)] in pytree order."""
    import jax

    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return [("/".join(_key_name(k) for k in path), leaf) for path, leaf in flat]


def _check_params(params, template: GPParams, where: str) -> GPParams:
    import jax

    if not isinstance(params, GPParams):
        raise TypeError(f"{where}: params must be GPParams, got {type(params).__name__}")
    expected = jax.tree_util.tree_structure(template)
    if jax.tree_util.tree_structure(params) != expected:
        raise ValueError(f"{where}: params do not match the model's structure ({expected})")
    leaves = []
    for (name, want), have in zip(_flatten(template), jax.tree_util.tree_leaves(params), strict=True):
        value = np.array(have, dtype=np.float64)
        if value.shape != np.shape(want):
            raise ValueError(
                f"{where}: parameter {name!r} has shape {value.shape}, the model needs {np.shape(want)}"
            )
        leaves.append(value)
    return jax.tree_util.tree_unflatten(expected, leaves)


def _jsonable(value):
    """Plain JSON types (non-finite floats become None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


_JIT_CACHE: dict = {}


def _condition_jit(model: GPModel):
    # One compiled function per model structure, reused by every Prior with that structure.
    key = ("condition", model)
    if key not in _JIT_CACHE:
        import jax

        from metabo.gp import condition

        _JIT_CACHE[key] = jax.jit(lambda params, x, y: condition(model, params, x, y))
    return _JIT_CACHE[key]


def _predict_jit(model: GPModel, include_noise: bool):
    key = ("predict", model, include_noise)
    if key not in _JIT_CACHE:
        import jax

        from metabo.gp import predict

        _JIT_CACHE[key] = jax.jit(lambda params, state, xq: predict(model, params, state, xq, include_noise))
    return _JIT_CACHE[key]


__all__ = ["Prior", "PriorFileError", "FORMAT_NAME", "FORMAT_VERSION"]

"""GP model structure and parameters.

``GPModel`` is the static structure (hashable, usable as a ``jit`` static argument): which mean,
which kernel, MLP sizes. ``GPParams`` is the pytree of *raw* (unconstrained) values the optimizer
sees; positivity is applied with softplus plus a floor when the model is evaluated, never stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabo.gp import kernels

MEANS = ("zero", "constant", "linear", "mlp")
KERNELS = tuple(kernels.KERNELS)

Layer = tuple[jax.Array, jax.Array]  # (W [in, out], b [out])


class GPParams(NamedTuple):
    """Raw GP parameters. Unused pieces are empty arrays / tuples, so one type fits all models.

    mean_constant: [] constant mean (the output bias of linear and MLP means).
    mean_weights: [p] linear-mean weights (p = input or feature width), or [0].
    mean_mlp: layers of the MLP mean (last layer has width 1), or ().
    raw_lengthscale: [p] ARD lengthscales before softplus.
    raw_signal: [] signal variance before softplus.
    raw_noise: [] observation noise variance before softplus.
    raw_bias: [] dot-product kernel bias variance before softplus.
    features: layers of the deep-kernel feature MLP, or ().
    """

    mean_constant: jax.Array
    mean_weights: jax.Array
    mean_mlp: tuple[Layer, ...]
    raw_lengthscale: jax.Array
    raw_signal: jax.Array
    raw_noise: jax.Array
    raw_bias: jax.Array
    features: tuple[Layer, ...]


class Hyper(NamedTuple):
    """Constrained kernel hyperparameters: lengthscale [p], signal [], noise [], bias []."""

    lengthscale: jax.Array
    signal: jax.Array
    noise: jax.Array
    bias: jax.Array


def softplus(raw):
    return jax.nn.softplus(raw)


def inverse_softplus(value):
    """raw with softplus(raw) == value, for value > 0 (stable for large values)."""
    value = jnp.asarray(value)
    return value + jnp.log(-jnp.expm1(-value))


def _above_floor(value, floor: float, name: str):
    """value - floor, checked to be positive when ``value`` is concrete."""
    value = jnp.asarray(value)
    if not isinstance(value, jax.core.Tracer):
        low = float(jnp.min(value))
        if not low > floor:  # also catches NaN
            raise ValueError(f"{name} must be above its floor {floor:g}, got {low:g}")
    return value - floor


@dataclass(frozen=True)
class GPModel:
    """The structure of a GP prior.

    Attributes:
      mean: ``zero | constant | linear | mlp``.
      kernel: ``se | matern32 | matern52 | dot`` (ARD lengthscales; ``dot`` is a linear kernel).
      feature_sizes: hidden widths of a feature MLP the kernel is applied to (deep kernel);
        ``()`` for a kernel on the inputs. The last width is the feature dimension.
      mean_hidden: hidden widths of the MLP mean.
      share_features: linear / MLP means read the kernel's MLP features instead of the inputs.
      lengthscale_floor, signal_floor, noise_floor: lower bounds added after softplus; a GP that
        collapses to zero noise or zero lengthscale fails later, far from the cause.
    """

    mean: str = "constant"
    kernel: str = "matern52"
    feature_sizes: tuple[int, ...] = ()
    mean_hidden: tuple[int, ...] = (32, 32)
    share_features: bool = False
    lengthscale_floor: float = 1e-3
    signal_floor: float = 1e-6
    noise_floor: float = 1e-6

    def __post_init__(self):
        if self.mean not in MEANS:
            raise ValueError(f"unknown mean {self.mean!r}; expected one of {MEANS}")
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; expected one of {KERNELS}")
        object.__setattr__(self, "feature_sizes", tuple(int(s) for s in self.feature_sizes))
        object.__setattr__(self, "mean_hidden", tuple(int(s) for s in self.mean_hidden))
        if any(s < 1 for s in self.feature_sizes + self.mean_hidden):
            raise ValueError("MLP widths must be positive")
        if self.share_features and not self.feature_sizes:
            raise ValueError("share_features needs feature_sizes")

    # ---- structure ------------------------------------------------------------------------
    def feature_dim(self, dim: int) -> int:
        return self.feature_sizes[-1] if self.feature_sizes else dim

    def to_dict(self) -> dict:
        return {
            "mean": self.mean,
            "kernel": self.kernel,
            "feature_sizes": list(self.feature_sizes),
            "mean_hidden": list(self.mean_hidden),
            "share_features": self.share_features,
            "lengthscale_floor": self.lengthscale_floor,
            "signal_floor": self.signal_floor,
            "noise_floor": self.noise_floor,
        }

    @classmethod
    def from_dict(cls, spec: dict) -> GPModel:
        spec = dict(spec)
        spec["feature_sizes"] = tuple(spec.get("feature_sizes", ()))
        spec["mean_hidden"] = tuple(spec.get("mean_hidden", (32, 32)))
        return cls(**spec)

    # ---- parameters -----------------------------------------------------------------------
    def init(
        self,
        key: jax.Array,
        dim: int,
        y_mean: float = 0.0,
        y_var: float = 1.0,
        lengthscale: float = 0.5,
        noise_fraction: float = 0.1,
    ) -> GPParams:
        """Initial raw parameters from data statistics.

        The constant mean starts at ``y_mean``; the signal variance at ``y_var`` of which
        ``noise_fraction`` is assigned to noise; lengthscales at ``lengthscale`` (unit cube).
        """
        # Constants by NumPy and the MLP draws by one compiled function: op-by-op JAX here
        # compiled a dozen tiny programs, about 1.8 s of a cold pre-training run.
        p = self.feature_dim(dim)
        mean_in = p if self.share_features else dim
        y_var = max(float(y_var), 10 * self.signal_floor)
        mean_sizes = self.mean_hidden + (1,) if self.mean == "mlp" else ()
        features, mean_mlp = (), ()
        if self.feature_sizes or mean_sizes:
            features, mean_mlp = _init_layers(key, dim, self.feature_sizes, mean_in, mean_sizes)
        width = mean_in if self.mean == "linear" else 0
        ls = np.full((p,), 1.0 if self.kernel == "dot" else float(lengthscale))
        dtype = jnp.zeros(()).dtype
        return GPParams(
            mean_constant=jnp.asarray(float(y_mean) if self.mean != "zero" else 0.0, dtype=dtype),
            mean_weights=jnp.zeros((width,), dtype=dtype),
            mean_mlp=mean_mlp,
            raw_lengthscale=_constant_raw(np.maximum(ls - self.lengthscale_floor, 1e-6), dtype),
            raw_signal=_constant_raw((1 - noise_fraction) * y_var, dtype),
            raw_noise=_constant_raw(max(noise_fraction * y_var, 2 * self.noise_floor), dtype),
            raw_bias=_constant_raw(0.1 * y_var, dtype),
            features=features,
        )

    def hyper(self, params: GPParams) -> Hyper:
        """Constrained hyperparameters (softplus + floor)."""
        return Hyper(
            lengthscale=softplus(params.raw_lengthscale) + self.lengthscale_floor,
            signal=softplus(params.raw_signal) + self.signal_floor,
            noise=softplus(params.raw_noise) + self.noise_floor,
            bias=softplus(params.raw_bias),
        )

    def with_hyper(self, params: GPParams, lengthscale=None, signal=None, noise=None, bias=None) -> GPParams:
        """Params with some constrained values replaced (inverse of ``hyper``).

        Values must lie above their floors (``lengthscale_floor`` etc.); concrete values that do
        not raise ValueError (traced ones cannot be checked and would give NaN).
        """
        updates = {}
        if lengthscale is not None:
            updates["raw_lengthscale"] = inverse_softplus(_above_floor(lengthscale, self.lengthscale_floor, "lengthscale"))
        if signal is not None:
            updates["raw_signal"] = inverse_softplus(_above_floor(signal, self.signal_floor, "signal"))
        if noise is not None:
            updates["raw_noise"] = inverse_softplus(_above_floor(noise, self.noise_floor, "noise"))
        if bias is not None:
            updates["raw_bias"] = inverse_softplus(jnp.asarray(bias))
        return params._replace(**updates)

    def rescaled(self, params: GPParams, scale: float) -> tuple[GPModel, GPParams]:
        """The same GP for scores multiplied by ``scale`` > 0: exactly, floors included.

        Means are multiplied by ``scale``; signal, noise and dot-product bias variances (and their
        floors) by ``scale**2``; lengthscales and features are unchanged. Returns (model, params).
        """
        scale = float(scale)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be finite and positive, got {scale}")
        square = scale * scale
        model = dataclasses.replace(
            self, signal_floor=self.signal_floor * square, noise_floor=self.noise_floor * square
        )
        mean_mlp = params.mean_mlp
        if mean_mlp:
            w, b = mean_mlp[-1]
            mean_mlp = (*mean_mlp[:-1], (w * scale, b * scale))

        def variance(raw):
            return inverse_softplus(square * softplus(raw))

        return model, params._replace(
            mean_constant=params.mean_constant * scale,
            mean_weights=params.mean_weights * scale,
            mean_mlp=mean_mlp,
            raw_signal=variance(params.raw_signal),
            raw_noise=variance(params.raw_noise),
            raw_bias=variance(params.raw_bias),
        )

    # ---- evaluation -----------------------------------------------------------------------
    def features(self, params: GPParams, x: jax.Array) -> jax.Array:
        """x: [n, d] -> [n, p] (the identity without a feature MLP)."""
        return _apply_mlp(params.features, x, final_linear=False) if self.feature_sizes else x

    def mean_fn(self, params: GPParams, x: jax.Array) -> jax.Array:
        """Prior mean. x: [n, d] -> [n]."""
        if self.mean == "zero":
            return jnp.zeros(x.shape[:-1], dtype=x.dtype)
        if self.mean == "constant":
            return jnp.broadcast_to(params.mean_constant, x.shape[:-1]).astype(x.dtype)
        inputs = self.features(params, x) if self.share_features else x
        if self.mean == "linear":
            return params.mean_constant + inputs @ params.mean_weights
        return params.mean_constant + _apply_mlp(params.mean_mlp, inputs, final_linear=True)[..., 0]

    def cov(self, params: GPParams, x1: jax.Array, x2: jax.Array) -> jax.Array:
        """Prior covariance without noise. x1: [n, d], x2: [m, d] -> [n, m]."""
        h = self.hyper(params)
        f1, f2 = self.features(params, x1), self.features(params, x2)
        return kernels.KERNELS[self.kernel](f1 / h.lengthscale, f2 / h.lengthscale, h.signal, h.bias)

    def cov_diag(self, params: GPParams, x: jax.Array) -> jax.Array:
        """Prior variances without noise. x: [n, d] -> [n]."""
        h = self.hyper(params)
        f = self.features(params, x) / h.lengthscale
        if self.kernel == "dot":
            return h.bias + h.signal * jnp.sum(f * f, axis=-1)
        return jnp.broadcast_to(h.signal, x.shape[:-1]).astype(x.dtype)

    def noise(self, params: GPParams) -> jax.Array:
        """Observation noise variance []."""
        return self.hyper(params).noise


def _constant_raw(value, dtype) -> jax.Array:
    """``inverse_softplus`` of a concrete positive value, computed by NumPy."""
    value = np.asarray(value, dtype=np.float64)
    return jnp.asarray(value + np.log(-np.expm1(-value)), dtype=dtype)


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _init_layers(key, dim: int, feature_sizes: tuple[int, ...], mean_in: int, mean_sizes: tuple[int, ...]):
    """(feature MLP, mean MLP) layers; an empty size tuple gives no layers."""
    key_features, key_mean = jax.random.split(key)
    features = _init_mlp(key_features, dim, feature_sizes, final_linear=False) if feature_sizes else ()
    mean_mlp = _init_mlp(key_mean, mean_in, mean_sizes, final_linear=True) if mean_sizes else ()
    return features, mean_mlp


def _init_mlp(key, in_dim: int, sizes: tuple[int, ...], final_linear: bool) -> tuple[Layer, ...]:
    layers = []
    width = in_dim
    keys = jax.random.split(key, max(len(sizes), 1))
    for i, size in enumerate(sizes):
        last = final_linear and i == len(sizes) - 1
        scale = np.sqrt((1.0 if last else 2.0) / (width + size)) * (0.1 if last else 1.0)
        w = scale * jax.random.normal(keys[i], (width, size))
        layers.append((w, jnp.zeros((size,))))
        width = size
    return tuple(layers)


def _apply_mlp(layers: tuple[Layer, ...], x: jax.Array, final_linear: bool) -> jax.Array:
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if not (final_linear and i == len(layers) - 1):
            h = jnp.tanh(h)
    return h

"""Zero-shot portfolio transfer (Wistuba, Schilling, Schmidt-Thieme 2015, "Sequential model-free
hyperparameter tuning"; Syne Tune's ``ZeroShotTransfer``).

Before seeing the target task, order the candidates greedily so that every prefix of the order
minimizes the training tasks' summed normalized regret: with R[t, c] the normalized regret of
candidate c on training task t,

    pick_k = argmin_c  sum_t min(best_t(k-1), R[t, c]),   best_t(k) = min over the first k picks,

ties broken by sum_t R[t, c] (the candidate's own quality, i.e. average-rank-like order), so
once every training task is solved the order continues by average quality. The target task is
then evaluated in that order, skipping what it has already observed. Its own observations never
change the order: that is what "zero-shot" means.

R comes from the training tasks' values at the candidates:
- where a training task observed the candidate itself (exact unit-cube match within 1e-12, the
  matched case), its observed score; a candidate that *failed* on that task (diverged, NaN) gets
  the task's worst score, whatever the failure policy, because a known failure is evidence;
- elsewhere (unmatched data), the posterior mean of a GP fitted to that task alone.
Per task, R = (max - value) / (max - min) over the candidates (0 for a constant task).

``propose_box`` uses the distinct configurations of the training tasks as the candidate set.

Options: ``portfolio_size`` (greedy picks before the order continues by average quality,
default 100); for the unmatched case's GPs, ``surrogate_points`` (at most this many points per
task, a random subset drawn with a fixed seed, default 400), ``surrogate_steps`` (Adam steps of
the maximum-likelihood fit, default 100) and ``surrogate_restarts`` (default 2). The GPs are
fitted once per process and training log (``cached_setup``), whatever the seed.
"""

from __future__ import annotations

import numpy as np

from metabo.baselines.base import Method, cached_setup, register
from metabo.baselines.common import array_digest, content_key, match_rows
from metabo.data import STATUS_COLUMN, TASK_COLUMN, pad_arrays


def normalized_regret(values: np.ndarray) -> np.ndarray:
    """values: [tasks, m] (larger is better) -> [tasks, m] in [0, 1], 0 at each task's best."""
    values = np.asarray(values, dtype=np.float64)
    high = values.max(axis=1, keepdims=True)
    span = high - values.min(axis=1, keepdims=True)
    return np.where(span > 0, (high - values) / np.where(span > 0, span, 1.0), 0.0)


def greedy_portfolio(regret: np.ndarray, size: int | None = None) -> np.ndarray:
    """The greedy portfolio order of all candidates.

    regret: [tasks, m] normalized regrets. The first ``size`` picks (all if None) minimize the
    summed regret of the portfolio so far (ties: smaller summed own regret, then lower index);
    the remaining candidates follow by summed own regret. Returns a permutation of range(m).
    """
    regret = np.asarray(regret, dtype=np.float64)
    tasks, m = regret.shape
    size = m if size is None else min(int(size), m)
    own = regret.sum(axis=0)  # [m]
    chosen = np.zeros(m, dtype=bool)
    order = []
    current = np.ones(tasks)  # regret of the empty portfolio: the worst, 1, on every task
    for _ in range(size):
        total = np.minimum(current[:, None], regret).sum(axis=0)  # [m]
        total = np.where(chosen, np.inf, total)
        # lexsort keys: last is primary. Index order breaks the remaining ties (stable sort).
        pick = int(np.lexsort((own, total))[0])
        order.append(pick)
        chosen[pick] = True
        current = np.minimum(current, regret[:, pick])
    rest = np.flatnonzero(~chosen)
    rest = rest[np.argsort(own[rest], kind="stable")]
    return np.concatenate([np.asarray(order, dtype=np.int64), rest.astype(np.int64)])


class TaskSurrogates:
    """One GP per training task (posterior mean only), fitted once, for unmatched candidates.

    Hyperparameters by maximum likelihood (``metabo.bo.single_task.fit_single_task``, constant
    mean, Matern 5/2 ARD) on at most ``max_points`` points per task (a random subset).
    """

    def __init__(self, xs: list[np.ndarray], ys: list[np.ndarray], seed: int = 0, max_points: int = 400,
                 steps: int = 100, restarts: int = 2):
        import jax
        import jax.numpy as jnp

        from metabo.bo.single_task import DEFAULT_MODEL, fit_single_task
        from metabo.gp import condition
        from metabo.pretrain.fit import blas_thread_limit

        rng = np.random.default_rng(seed)
        keys = jax.random.split(jax.random.key(seed), len(xs))
        subsets = []
        for x, y in zip(xs, ys, strict=True):
            if len(y) > max_points:
                keep = np.sort(rng.choice(len(y), size=max_points, replace=False))
                x, y = x[keep], y[keep]
            subsets.append((np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)))
        self.model = model = DEFAULT_MODEL
        # Many small fits in a row: one BLAS thread avoids the spinning-thread contention that
        # made them ~20x slower on a shared 2-core machine (see metabo.pretrain.fit).
        with blas_thread_limit(1):
            params = [fit_single_task(x, y, k, model=model, steps=steps, restarts=restarts)
                      for (x, y), k in zip(subsets, keys, strict=True)]
            self.params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
            padded = pad_arrays([x for x, _ in subsets], [y for _, y in subsets], bucket=16)
            self.state = jax.jit(jax.vmap(lambda p, x, y, m: condition(model, p, x, y, m)))(
                self.params, jnp.asarray(padded.x), jnp.asarray(padded.y), jnp.asarray(padded.mask)
            )
            # Finish the (asynchronously dispatched) work before the thread limit is lifted.
            jax.block_until_ready((self.params, self.state))

    def mean(self, candidates: np.ndarray) -> np.ndarray:
        """candidates: [m, d] -> [tasks, m] posterior means."""
        import jax
        import jax.numpy as jnp

        from metabo.gp import predict

        model = self.model
        fn = jax.jit(jax.vmap(lambda p, s, q: predict(model, p, s, q)[0], in_axes=(0, 0, None)))
        return np.asarray(fn(self.params, self.state, jnp.asarray(candidates, dtype=jnp.float64)))


@register("zeroshot")
class ZeroShot(Method):
    """Evaluate a portfolio chosen on the training tasks, in order (see the module docstring)."""

    supports_box = True

    def setup(self) -> None:
        if self.train is None:
            raise ValueError("zeroshot needs training tasks to choose its portfolio from")
        self._orders: dict[str, np.ndarray] = {}

    # ---- training data ----------------------------------------------------------------------
    def _task_data(self):
        """Per training task: (valid x [n, d], valid y [n], failed x [f, d]) on the unit cube."""

        def build():
            scored = self.train.scored(self.failures)
            columns = [f"u{j}" for j in range(self.space.dim)]
            raw = self.train.frame
            unit = self.space.to_unit(raw)
            failed_rows = (raw[STATUS_COLUMN].to_numpy() != "ok") | ~np.isfinite(
                self.space.objective.to_score(raw[self.space.objective.column].to_numpy())
            )
            data = []
            for task in self.train.tasks:
                rows = scored[TASK_COLUMN].to_numpy() == task
                if self.failures == "impute_worst":
                    rows &= scored[STATUS_COLUMN].to_numpy() == "ok"
                x = scored.loc[rows, columns].to_numpy()
                y = scored.loc[rows, "score"].to_numpy()
                failed = unit[(raw[TASK_COLUMN].to_numpy() == task) & failed_rows]
                data.append((x, y, failed))
            return data

        return cached_setup(content_key(self, part="zeroshot-data"), build)

    def _surrogates(self) -> TaskSurrogates:
        def build():
            data = self._task_data()
            return TaskSurrogates(
                [x for x, _, _ in data],
                [y for _, y, _ in data],
                seed=0,  # fixed: the surrogates are shared by every seed of a target task
                max_points=int(self.options.get("surrogate_points", 400)),
                steps=int(self.options.get("surrogate_steps", 100)),
                restarts=int(self.options.get("surrogate_restarts", 2)),
            )

        return cached_setup(content_key(self, part="zeroshot-surrogates"), build)

    def task_values(self, candidates: np.ndarray) -> np.ndarray:
        """The training tasks' values at the candidates: [tasks, m] (see the module docstring)."""
        candidates = np.asarray(candidates, dtype=np.float64)
        data = self._task_data()
        values = np.empty((len(data), candidates.shape[0]))
        unknown = np.zeros_like(values, dtype=bool)
        for t, (x, y, failed) in enumerate(data):
            hit = match_rows(candidates, x)
            values[t] = np.where(hit >= 0, y[np.maximum(hit, 0)], np.nan)
            worst = float(y.min())
            failed_hit = (match_rows(candidates, failed) >= 0) & (hit < 0)
            values[t, failed_hit] = worst
            unknown[t] = np.isnan(values[t])
        if unknown.any():
            means = self._surrogates().mean(candidates)
            values = np.where(unknown, means, values)
        return values

    def order(self, candidates: np.ndarray) -> np.ndarray:
        """The portfolio order of ``candidates`` [m, d]: a permutation of range(m) (cached)."""
        if not hasattr(self, "_orders"):
            self.setup()
        key = array_digest(candidates)
        if key not in self._orders:
            regret = normalized_regret(self.task_values(candidates))
            size = self.options.get("portfolio_size", 100)
            self._orders[key] = greedy_portfolio(regret, None if size is None else int(size))
        return self._orders[key]

    # ---- proposals --------------------------------------------------------------------------
    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        observed = np.asarray(observed, dtype=bool)
        if observed.all():
            raise ValueError("every candidate has been observed")
        order = self.order(candidates)
        return int(order[np.argmax(~observed[order])])

    def training_candidates(self) -> np.ndarray:
        """The distinct valid configurations of the training tasks: [k, d] (box mode's set)."""
        x = np.concatenate([x for x, _, _ in self._task_data()])
        return np.unique(x, axis=0)

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        candidates = self.training_candidates()
        observed = match_rows(candidates, np.asarray(x_obs, dtype=np.float64).reshape(-1, self.space.dim)) >= 0
        if observed.all():  # the portfolio is spent: fall back to uniform random points
            return self.rng.random(self.space.dim)
        order = self.order(candidates)
        return candidates[order[np.argmax(~observed[order])]].copy()


__all__ = ["ZeroShot", "TaskSurrogates", "normalized_regret", "greedy_portfolio"]

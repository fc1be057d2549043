"""Multi-objective benchmark: hypervolume against evaluations, leave-one-task-out, finite pools.

For each held-out task the pool is its successful trials; a method evaluates one pool point per
step. The measure: the *normalized hypervolume* of the points evaluated so far. Each objective's
raw values are scaled to [0, 1] over the task's pool (1 = the pool's best), the reference point
is the pool's worst value of each (0), and the hypervolume is divided by the pool's own (its
Pareto front's), so 1 means the pool's whole front has been found.

Efficiency (the issue's target): for random search's mean normalized hypervolume at step 50,
``r``, the first step at which a method's mean curve reaches ``r``; the ratio is 50 / that step.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd

from metabo.bo.multi import hypervolume
from metabo.space import Objective, Space, pd1_space

# PD1's competing pair in the bundled data: the validation error (HyperBO's neg_log warp) and the
# evaluation at which the run reached its best error (0-9 of 10 evenly spaced evaluations: the
# training needed), both minimized. ``train_cost_s`` does not depend on the configuration there.
PD1_OBJECTIVES = (Objective("objective", "minimize", "neg_log"), Objective("best_index", "minimize"))


def pd1_multi_space() -> Space:
    """PD1's 4-D space with the two objectives above."""
    return Space(pd1_space().parameters, objectives=PD1_OBJECTIVES)


def task_pool(frame: pd.DataFrame, space: Space, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x_unit [m, d], raw objective values [m, k], scores [m, k]) of a task's successful trials."""
    rows = frame[(frame["task"] == task) & (frame["status"] == "ok")]
    values = rows[[o.column for o in space.objectives]].to_numpy(dtype=np.float64)
    scores = np.stack([o.to_score(values[:, j]) for j, o in enumerate(space.objectives)], axis=1)
    keep = np.all(np.isfinite(scores), axis=1)
    return space.to_unit(rows)[keep], values[keep], scores[keep]


def normalized_hv_curve(order_scores: np.ndarray, pool_scores: np.ndarray) -> np.ndarray:
    """Normalized hypervolume after each evaluation: order_scores [T, k] (scores in evaluation
    order), pool_scores [m, k] -> [T] in [0, 1]."""
    low, high = pool_scores.min(axis=0), pool_scores.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    unit = lambda s: (s - low) / span  # noqa: E731
    ref = np.zeros(pool_scores.shape[1])
    total = hypervolume(unit(pool_scores), ref)
    return np.array([hypervolume(unit(order_scores[: t + 1]), ref) for t in range(len(order_scores))]) / total


def run_method(method, x_pool: np.ndarray, scores: np.ndarray, budget: int) -> np.ndarray:
    """Replay ``budget`` proposals of a method (``metabo.baselines.multi``) on a pool -> indices [T]."""
    observed = np.zeros(len(x_pool), dtype=bool)
    chosen: list[int] = []
    for _ in range(min(budget, len(x_pool))):
        index = method.propose(x_pool[chosen], scores[chosen], x_pool, observed)
        if observed[index]:
            raise RuntimeError(f"{method.name} proposed an observed candidate")
        observed[index] = True
        chosen.append(index)
    return np.asarray(chosen)


def pretrain_priors(frame: pd.DataFrame, space: Space, heldout: str, steps: int, seed: int = 0) -> list:
    """One prior per objective, pre-trained on every task but ``heldout`` (metabo's defaults but
    ``steps``)."""
    from metabo.data import read_log
    from metabo.pretrain import pretrain

    train = frame[(frame["task"] != heldout) & (frame["status"] == "ok")]
    priors = []
    for objective in space.objectives:
        log = read_log(train, Space(space.parameters, objective))
        priors.append(pretrain(log, steps=steps, seed=seed, progress=False))
    return priors


def run_benchmark(
    frame, tasks, seeds, budget: int, methods, pretrain_steps: int = 150, log=print, metabo_options=None
) -> pd.DataFrame:
    """Curves of every method on every (task, seed): a long frame (method, task, seed, step, hv)
    and the chosen pool indices (``indices`` column on step 1 rows, for plots).

    methods: names among ``random``, ``metabo``, ``metabo-no-prior``, ``optuna-nsga2``,
    ``optuna-tpe``, ``optuna-gp``; ``metabo_options``: extra ``MultiDesigner`` arguments for the
    metabo methods (e.g. ``{"hv_units": "warped"}``, ``{"acquisition": "parego"}``).
    """
    from metabo.baselines.multi import MultiMetabo, MultiOptuna, MultiRandom

    space = pd1_multi_space()
    rows = []
    for task in tasks:
        x_pool, _, scores = task_pool(frame, space, task)
        priors = None
        if "metabo" in methods:
            start = time.perf_counter()
            priors = pretrain_priors(frame, space, task, pretrain_steps)
            log(f"{task}: priors pre-trained in {time.perf_counter() - start:.1f} s")
        for name in methods:
            for seed in seeds:
                if name == "random":
                    method = MultiRandom(space, seed)
                elif name == "metabo":
                    method = MultiMetabo(space, seed, priors=priors, **(metabo_options or {}))
                elif name == "metabo-no-prior":
                    method = MultiMetabo(
                        space, seed, priors=None, fit_steps=100, fit_restarts=2, **(metabo_options or {})
                    )
                elif name.startswith("optuna-"):
                    method = MultiOptuna(space, seed, sampler=name.removeprefix("optuna-"))
                else:
                    raise ValueError(f"unknown method {name!r}")
                start = time.perf_counter()
                chosen = run_method(method, x_pool, scores, budget)
                seconds = time.perf_counter() - start
                curve = normalized_hv_curve(scores[chosen], scores)
                for step, hv in enumerate(curve, start=1):
                    rows.append(
                        {
                            "method": name,
                            "task": task,
                            "seed": seed,
                            "step": step,
                            "hv": hv,
                            "index": int(chosen[step - 1]),
                            "seconds": seconds,
                        }
                    )
                log(
                    f"{task} {name} seed {seed}: hv@10 {curve[9]:.3f} hv@{len(curve)} {curve[-1]:.3f} ({seconds:.1f} s)"
                )
    return pd.DataFrame(rows)


def evaluations_to_reach(curve: np.ndarray, target: float) -> float:
    """First 1-based step at which curve [T] >= target, or inf."""
    hit = np.flatnonzero(np.asarray(curve) >= target - 1e-12)
    return float(hit[0] + 1) if hit.size else float("inf")


def summary(curves: pd.DataFrame, budget: int = 50, reference: str = "random") -> pd.DataFrame:
    """Per method: mean normalized HV at 10, 25 and ``budget`` evaluations, the evaluations its
    mean curve needs to reach ``reference``'s mean HV at ``budget``, and the ratio."""
    mean = curves.groupby(["method", "step"])["hv"].mean().unstack("step")
    target = float(mean.loc[reference, budget])
    out = []
    for method, row in mean.iterrows():
        needed = evaluations_to_reach(row.to_numpy(), target)
        out.append(
            {
                "method": method,
                "hv@10": row[10],
                "hv@25": row[25],
                f"hv@{budget}": row[budget],
                f"evals to random's hv@{budget}": needed,
                "ratio": budget / needed,
            }
        )
    return pd.DataFrame(out).sort_values(f"hv@{budget}", ascending=False).reset_index(drop=True)


def per_task(curves: pd.DataFrame, budget: int = 50, reference: str = "random") -> pd.DataFrame:
    """Per task: the evaluations each method's mean curve (over seeds) needs to reach
    ``reference``'s mean HV at ``budget`` on that task (inf: not within the budget)."""
    mean = curves.groupby(["task", "method", "step"])["hv"].mean()
    rows = []
    for task in sorted(curves["task"].unique()):
        target = float(mean[(task, reference, budget)])
        row = {"task": task, f"{reference} hv@{budget}": target}
        for method in sorted(curves["method"].unique()):
            if method != reference:
                row[method] = evaluations_to_reach(mean[(task, method)].to_numpy(), target)
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for _, row in table.iterrows():
        cells = [
            f"{v:.3f}"
            if isinstance(v, float) and np.isfinite(v) and re.match(r"^(\w+ )?hv@", c)
            else (f"{v:.1f}" if isinstance(v, float) and np.isfinite(v) else str(v))
            for c, v in row.items()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(
    curves: pd.DataFrame, frame: pd.DataFrame, task: str, path: str, budget: int = 50, seed: int = 0
) -> None:
    """Two panels: mean normalized HV against evaluations for every method, and one task's pool
    with its Pareto front and the fronts each method found in ``budget`` evaluations."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from metabo.bo.multi import pareto_mask

    space = pd1_multi_space()
    _, values, scores = task_pool(frame, space, task)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    mean = curves.groupby(["method", "step"])["hv"].mean().unstack("step")
    for method, row in mean.iterrows():
        left.plot(row.index, row.to_numpy(), label=method, lw=2.2 if method == "metabo" else 1.2)
    left.set_xlabel("evaluations")
    left.set_ylabel("normalized hypervolume (mean over tasks, seeds)")
    left.set_title("hypervolume against evaluations")
    left.legend(fontsize=8)
    right.scatter(values[:, 0], values[:, 1], s=8, color="lightgrey", label="pool")
    front = pareto_mask(scores)
    order = np.argsort(values[front, 0])
    right.step(
        values[front, 0][order],
        values[front, 1][order],
        where="post",
        color="black",
        lw=1,
        label="pool's front",
    )
    for method in mean.index:
        picked = curves[
            (curves.method == method)
            & (curves.task == task)
            & (curves.seed == seed)
            & (curves.step <= budget)
        ]
        chosen = picked["index"].to_numpy()
        if not len(chosen):
            continue
        mine = chosen[pareto_mask(scores[chosen])]
        order = np.argsort(values[mine, 0])
        right.step(
            values[mine, 0][order], values[mine, 1][order], where="post", marker="o", ms=4, label=method
        )
    right.set_xscale("log")
    right.set_xlabel("validation error (best over training)")
    right.set_ylabel("best_index (evaluation of the best error, 0-9)")
    right.set_title(f"{task}: fronts found in {budget} evaluations (seed {seed})")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = [
    "PD1_OBJECTIVES",
    "evaluations_to_reach",
    "markdown_table",
    "normalized_hv_curve",
    "per_task",
    "pd1_multi_space",
    "plot",
    "pretrain_priors",
    "run_benchmark",
    "run_method",
    "summary",
    "task_pool",
]

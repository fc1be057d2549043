"""metabo next to its peers (issue 20, items 2 and 3), measured side by side in one run.

Writes ``benchmarks/peers.json`` and ``benchmarks/peers.md``. Float64 everywhere, CPU.

Item 2, one suggestion with 100 observations on a 4-D problem. The prior is pre-trained the way a
user does it (``metabo.pretrain.pretrain`` with its defaults on the bundled ``pd1_mini`` data,
one task held out; cached under a temporary directory); the held-out task's 100 observations are
then given to each method and one suggestion is timed:
  - metabo ``Optimizer(space, prior=...)``, 100 ``tell``s, ``ask()`` over a finite set of 10,000
    candidate configurations and over the continuous box (warm: after an untimed first ask,
    which is reported separately as the compile-included first call);
  - Optuna ``TPESampler`` and ``GPSampler``: a study with the 4 distributions and the 100 trials
    added, ``study.ask()`` plus suggesting the 4 parameters (box only: Optuna has no
    candidate-set mode);
  - BoTorch: ``SingleTaskGP`` (constant mean, scaled Matern 5/2 ARD, default ``Standardize``
    outcome transform) fitted by ``fit_gpytorch_mll``, ``LogExpectedImprovement``, then
    ``optimize_acqf`` (box, 10 restarts, 512 raw samples) or ``optimize_acqf_discrete`` (the
    same 10,000 candidates): fit + optimize (a BoTorch user's ask) and the optimization alone.
  Acquisition value on one shared model: BoTorch's GP fitted to the standardized scores, its
  hyperparameters set in metabo's ``GPModel(mean="constant", kernel="matern52")``; the posterior
  of both libraries is checked against a NumPy one (relative 1e-6, or the script stops); then
  ``metabo.bo.engine.suggest_box`` (what ``Optimizer.ask`` runs on the box) and BoTorch's
  ``optimize_acqf`` each maximize log EI on it, and a NumPy log EI scores both optima.

Item 3, a single-task GP fit (metabo's no-prior path, ``metabo.bo.single_task.fit_single_task``,
as the Optimizer calls it) next to scikit-learn's ``GaussianProcessRegressor`` (constant *
Matern 5/2 ARD + white noise, ``normalize_y=True``, 0 and 3 optimizer restarts) and BoTorch's
``fit_gpytorch_mll`` on ``SingleTaskGP``, on 50 and 100 points of a noisy synthetic 4-D function
and of the held-out pd1 task, several seeds: time, and the exact log marginal likelihood each
method's hyperparameters reach, every method's evaluated by the one NumPy implementation below
on the same standardized data (each library's parametrization converted: metabo's original
units, scikit-learn's ``normalize_y``, BoTorch's ``Standardize`` and constant mean), and checked
against each library's own value of it.

Every measurement interleaves the methods repetition by repetition (rep 1 of every method, then
rep 2, ...), so a busy machine slows them alike; medians, and ratios to metabo.

Usage: python scripts/bench_peers.py [--reps 7] [--quick] [--out benchmarks]
It measures the metabo that ``import metabo`` finds (the JSON records its path): from a checkout
that is not the installed one, run it with ``PYTHONPATH=.``.
Peers: ``pip install 'metabo[bench]'`` (Optuna, torch, BoTorch) and scikit-learn; a missing one
is reported in one line and its rows are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "data", "pd1_mini.parquet")
SPACE = os.path.join(ROOT, "data", "pd1_mini_space.json")
HELDOUT_TASK = "mnist1d-cnn-bs64"  # no diverged trials: 400 usable observations
N_OBS = 100
N_CANDIDATES = 10_000
FIT_SIZES = (50, 100)
FIT_SEEDS = (0, 1, 2)
SYNTHETIC_NOISE = 0.05
SKLEARN_RESTARTS = 3  # 1 + 3 = 4 starts, as many as metabo's default fit_restarts
BOTORCH_BOX = {"num_restarts": 10, "raw_samples": 512}
# Posteriors of the shared model must agree this closely (relative), or the comparison is off.
AGREEMENT = 1e-6
# log EI values closer than this count as equal (a relative 1e-6 of EI).
ACQ_TIE = 1e-6
# Log marginal likelihoods per point closer than this count as a tie.
LML_TIE = 1e-4
SQRT5 = math.sqrt(5.0)
LOG_2PI = math.log(2.0 * math.pi)


def log(message: str) -> None:
    print(f"bench_peers: {message}", file=sys.stderr, flush=True)


# ---- the independent NumPy reference -----------------------------------------------------------
def matern52(a, b, lengthscale, signal):
    """Scaled Matern 5/2 ARD kernel: a [n, d], b [m, d] -> [n, m] (distances from differences,
    not from the expanded square, so zero distances are exact)."""
    diff = (np.asarray(a)[:, None, :] - np.asarray(b)[None, :, :]) / np.asarray(lengthscale)
    r = SQRT5 * np.sqrt(np.sum(diff * diff, axis=-1))
    return signal * (1.0 + r + r * r / 3.0) * np.exp(-r)


def best_constant(x, y, lengthscale, signal, noise) -> float:
    """The constant mean maximizing the likelihood for fixed kernel hyperparameters (GLS)."""
    gram = matern52(x, x, lengthscale, signal) + noise * np.eye(len(y))
    ones = np.ones(len(y))
    return float(ones @ np.linalg.solve(gram, y) / (ones @ np.linalg.solve(gram, ones)))


def log_marginal_likelihood(x, y, lengthscale, signal, noise, constant=0.0) -> float:
    """Exact log p(y | x) of a GP with constant mean, Matern 5/2 ARD kernel and Gaussian noise:
    x [n, d], y [n] -> float (numpy.linalg.cholesky)."""
    from scipy.linalg import solve_triangular

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    gram = matern52(x, x, lengthscale, signal) + noise * np.eye(len(y))
    chol = np.linalg.cholesky(gram)
    white = solve_triangular(chol, y - constant, lower=True)
    return float(-0.5 * white @ white - np.sum(np.log(np.diag(chol))) - 0.5 * len(y) * LOG_2PI)


def numpy_posterior(x, y, hyper, xq):
    """Posterior mean and standard deviation of f (no noise) at xq [m, d] -> ([m], [m])."""
    from scipy.linalg import cho_solve, solve_triangular

    ls, signal, noise, constant = hyper["lengthscale"], hyper["signal"], hyper["noise"], hyper["constant"]
    chol = np.linalg.cholesky(matern52(x, x, ls, signal) + noise * np.eye(len(y)))
    alpha = cho_solve((chol, True), y - constant)
    cross = matern52(xq, x, ls, signal)
    v = solve_triangular(chol, cross.T, lower=True)
    var = np.maximum(signal - np.sum(v * v, axis=0), 0.0)
    return constant + cross @ alpha, np.sqrt(var)


def numpy_log_ei(mean, std, best):
    """log E[max(f - best, 0)] for f ~ N(mean, std^2), elementwise; the Mills ratio through
    erfcx below z = -1, where phi(z) + z Phi(z) would cancel."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    z = (mean - best) / std
    with np.errstate(invalid="ignore", divide="ignore"):  # each branch is computed everywhere
        return np.log(std) + _log_h(z)


def _log_h(z):
    from scipy.special import erfcx, ndtr

    log_phi = -0.5 * z * z - 0.5 * LOG_2PI
    direct = np.log(np.exp(log_phi) + z * ndtr(np.maximum(z, -1.0)))
    mills = math.sqrt(math.pi / 2.0) * erfcx(-np.minimum(z, -1.0) / math.sqrt(2.0))  # Phi(z) / phi(z)
    tail = log_phi + np.log1p(np.minimum(z, -1.0) * mills)
    return np.where(z > -1.0, direct, tail)


# ---- data and the prior ------------------------------------------------------------------------
def load_task(quick: bool):
    """The held-out task's 100 observations and a candidate set, in user units and unit cube."""
    from metabo.data import read_log

    full = read_log(DATA, SPACE)
    space = full.space
    frame = full.frame[(full.frame["task"] == HELDOUT_TASK) & (full.frame["status"] == "ok")]
    user = space.as_matrix(frame[list(space.names)].to_numpy(dtype=float))
    values = frame[space.objective.column].to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(values), size=N_OBS, replace=False)
    m = 2000 if quick else N_CANDIDATES
    candidates_user = space.from_unit(np.random.default_rng(1).random((m, space.dim)))
    return {
        "log": full,
        "space": space,
        "all_unit": space.to_unit(user),
        "all_scores": space.objective.to_score(values),
        "user": user[rows],
        "configs": space.to_configs(user[rows]),
        "values": values[rows],
        "unit": space.to_unit(user[rows]),
        "scores": space.objective.to_score(values[rows]),
        "candidates_user": candidates_user,
        "candidates_unit": space.to_unit(candidates_user),
    }


def build_prior(task, cache_dir: str, quick: bool):
    """Pre-train on every task but the held-out one, with the defaults (``--quick``: 30 steps),
    once; later runs load the cached prior file."""
    import metabo
    from metabo.pretrain import Prior

    steps = 30 if quick else None
    # Keyed by the data, the settings and metabo's source: a changed metabo pre-trains again.
    digest = hashlib.sha256(repr((metabo.__version__, HELDOUT_TASK, steps)).encode())
    package = os.path.dirname(metabo.__file__)
    sources = sorted(
        os.path.join(folder, name) for folder, _, names in os.walk(package) for name in names if name.endswith(".py")
    )
    for path in [DATA, *sources]:
        with open(path, "rb") as fh:
            digest.update(fh.read())
    key = digest.hexdigest()[:16]
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"prior-{key}.json")
    if os.path.exists(path):
        log(f"prior from the cache {path}")
        return Prior.load(path), {"path": path, "cached": True}
    log(f"pre-training on {len(task['log'].tasks) - 1} tasks (held out: {HELDOUT_TASK}) ...")
    start = time.perf_counter()
    options = {} if steps is None else {"steps": steps}
    prior = metabo.pretrain(task["log"].without(HELDOUT_TASK), progress=False, **options)
    seconds = time.perf_counter() - start
    prior.save(path)
    return prior, {"path": path, "cached": False, "pretrain_s": round(seconds, 2)}


# ---- peers -------------------------------------------------------------------------------------
def available_peers() -> dict:
    """Which peers import; a one-line message for each missing one."""
    found = {}
    for name, module, hint in (
        ("optuna", "optuna", "pip install 'metabo[bench]'"),
        ("torch", "torch", "pip install 'metabo[bench]'; Optuna's GPSampler and BoTorch need it"),
        ("botorch", "botorch", "pip install 'metabo[bench]'"),
        ("sklearn", "sklearn", "pip install scikit-learn"),
    ):
        try:
            found[name] = __import__(module).__version__
        except ImportError:
            log(f"{module} is not installed ({hint}); skipping its rows")
    if "torch" not in found:
        found.pop("botorch", None)
    if "botorch" in found:
        import gpytorch

        found["gpytorch"] = gpytorch.__version__
    if "torch" in found:
        import torch

        torch.set_default_dtype(torch.float64)
    return found


def botorch_model(x, y, standardize=True):
    """A SingleTaskGP with constant mean and scaled Matern 5/2 ARD kernel on float64 tensors
    x [n, d], y [n, 1]; BoTorch's default Standardize outcome transform unless told not to."""
    from botorch.models import SingleTaskGP
    from gpytorch.kernels import MaternKernel, ScaleKernel

    covar = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=x.shape[-1]))
    if standardize:
        return SingleTaskGP(x, y, covar_module=covar)
    return SingleTaskGP(x, y, covar_module=covar, outcome_transform=None)


def botorch_fit(model):
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model


def botorch_hyper(model) -> dict:
    """Fitted hyperparameters in the model's own (outcome-transformed) units."""
    covar = model.covar_module
    return {
        "lengthscale": covar.base_kernel.lengthscale.detach().numpy().reshape(-1).copy(),
        "signal": float(covar.outputscale.detach()),
        "noise": float(model.likelihood.noise.detach().reshape(-1)[0]),
        "constant": float(model.mean_module.constant.detach().reshape(-1)[0]),
    }


# ---- timing ------------------------------------------------------------------------------------
def round_robin(methods: dict, reps: int) -> dict:
    """methods: name -> (setup, run); setup() -> state (untimed), run(state) -> None or a dict of
    timed parts. One untimed-setup first call per method (reported as ``first_s``), then ``reps``
    rounds, each running every method once."""
    out = {name: {"times_s": [], "parts": {}} for name in methods}

    def once(name):
        setup, run = methods[name]
        state = setup()
        start = time.perf_counter()
        parts = run(state)
        return time.perf_counter() - start, parts or {}

    for name in methods:
        seconds, parts = once(name)
        out[name]["first_s"] = round(seconds, 4)
        out[name]["first_parts"] = {k: round(v, 4) for k, v in parts.items()}
    for _ in range(reps):
        for name in methods:
            seconds, parts = once(name)
            out[name]["times_s"].append(round(seconds, 5))
            for key, value in parts.items():
                out[name]["parts"].setdefault(key, []).append(round(value, 5))
    for entry in out.values():
        entry["median_s"] = statistics.median(entry["times_s"])
        entry["median_parts_s"] = {k: statistics.median(v) for k, v in entry["parts"].items()}
    return out


# ---- item 2: one suggestion ----------------------------------------------------------------------
def suggestion_methods(task, prior, peers):
    """Name -> (setup, run) for the timed asks, and the finite / box grouping."""
    from metabo import Optimizer

    space = task["space"]
    methods, groups = {}, {"finite": [], "box": []}

    def metabo_method(candidates):
        def setup():
            opt = Optimizer(space, prior=prior, candidates=candidates, seed=0)
            for config, value in zip(task["configs"], task["values"], strict=True):
                opt.tell(config, float(value))
            return opt

        def run(opt):
            opt.ask()

        return setup, run

    methods["metabo_finite"] = metabo_method(task["candidates_user"])
    groups["finite"].append("metabo_finite")
    methods["metabo_box"] = metabo_method(None)
    groups["box"].append("metabo_box")

    if "optuna" in peers:
        import optuna
        from optuna.distributions import FloatDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        distributions = {p.name: FloatDistribution(p.low, p.high, log=p.log) for p in space.parameters}
        frozen = [
            optuna.trial.create_trial(params=config, distributions=distributions, value=float(value))
            for config, value in zip(task["configs"], task["values"], strict=True)
        ]

        def optuna_method(sampler):
            # One sampler for all repetitions (GPSampler warm-starts its kernel fit from the last
            # one, as in a running study), a fresh study with the 100 trials each time.
            def setup():
                study = optuna.create_study(direction="minimize", sampler=sampler)
                study.add_trials(frozen)
                return study

            def run(study):
                trial = study.ask()
                for name, d in distributions.items():
                    trial.suggest_float(name, d.low, d.high, log=d.log)

            return setup, run

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings
            methods["optuna_tpe"] = optuna_method(optuna.samplers.TPESampler(seed=0))
            groups["box"].append("optuna_tpe")
            if "torch" in peers:
                methods["optuna_gp"] = optuna_method(optuna.samplers.GPSampler(seed=0))
                groups["box"].append("optuna_gp")

    if "botorch" in peers:
        import torch
        from botorch.acquisition import LogExpectedImprovement
        from botorch.optim import optimize_acqf, optimize_acqf_discrete

        x = torch.tensor(task["unit"])
        y = torch.tensor(task["scores"])[:, None]
        choices = torch.tensor(task["candidates_unit"])
        bounds = torch.stack([torch.zeros(space.dim), torch.ones(space.dim)])

        def botorch_method(finite):
            def run(_):
                start = time.perf_counter()
                model = botorch_fit(botorch_model(x, y))
                fitted = time.perf_counter()
                acq = LogExpectedImprovement(model, best_f=y.max())
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if finite:
                        optimize_acqf_discrete(acq, q=1, choices=choices)
                    else:
                        optimize_acqf(acq, bounds=bounds, q=1, **BOTORCH_BOX)
                return {"fit_s": fitted - start, "acquisition_s": time.perf_counter() - fitted}

            return (lambda: None), run

        methods["botorch_finite"] = botorch_method(True)
        groups["finite"].append("botorch_finite")
        methods["botorch_box"] = botorch_method(False)
        groups["box"].append("botorch_box")
    return methods, groups


def bench_suggestions(task, prior, peers, reps):
    methods, groups = suggestion_methods(task, prior, peers)
    log(f"item 2: {', '.join(methods)} x {reps} rounds ...")
    timed = round_robin(methods, reps)
    for group, names in groups.items():
        base = timed[f"metabo_{group}"]["median_s"]
        for name in names:
            timed[name]["group"] = group
            timed[name]["ratio_to_metabo"] = timed[name]["median_s"] / base
            if "acquisition_s" in timed[name]["median_parts_s"]:
                timed[name]["acquisition_ratio_to_metabo"] = timed[name]["median_parts_s"]["acquisition_s"] / base
    return timed


def bench_shared_model(task, reps):
    """log EI reached by metabo's and BoTorch's maximizers on one GP with the same fixed
    hyperparameters (BoTorch's fit to the standardized scores)."""
    import jax
    import torch
    from botorch.acquisition import LogExpectedImprovement
    from botorch.optim import optimize_acqf, optimize_acqf_discrete

    from metabo.bo import engine
    from metabo.gp import GPModel

    x, scores = task["unit"], task["scores"]
    y = (scores - scores.mean()) / scores.std()
    dim = x.shape[1]
    xt, yt = torch.tensor(x), torch.tensor(y)[:, None]
    shared = botorch_fit(botorch_model(xt, yt, standardize=False))
    shared.eval()
    hyper = botorch_hyper(shared)
    model = GPModel(mean="constant", kernel="matern52")
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), dim),
        lengthscale=hyper["lengthscale"],
        signal=hyper["signal"],
        noise=hyper["noise"],
    )._replace(mean_constant=jax.numpy.asarray(hyper["constant"]))

    # The same posterior in both libraries and in NumPy, or stop.
    probe = np.concatenate([x[:4], np.random.default_rng(5).random((12, dim))])
    mean_np, std_np = numpy_posterior(x, y, hyper, probe)
    mean_mb, std_mb = engine.posterior(model, params, x, y, probe)
    with torch.no_grad():
        post = shared.posterior(torch.tensor(probe))
        mean_bt = post.mean.numpy().reshape(-1)
        std_bt = post.variance.clamp_min(0).sqrt().numpy().reshape(-1)
    best = float(y.max())
    acq = LogExpectedImprovement(shared, best_f=best)
    with torch.no_grad():
        logei_bt = acq(torch.tensor(probe)[:, None, :]).numpy()
    logei_mb = engine.score_candidates(model, params, x, y, probe, "ei")
    logei_np = numpy_log_ei(mean_np, std_np, best)

    def relative(a, b):
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))

    agreement = {
        "mean_metabo_vs_numpy": relative(mean_mb, mean_np),
        "std_metabo_vs_numpy": relative(std_mb, std_np),
        "mean_botorch_vs_numpy": relative(mean_bt, mean_np),
        "std_botorch_vs_numpy": relative(std_bt, std_np),
        "log_ei_metabo_vs_numpy": relative(logei_mb, logei_np),
        "log_ei_botorch_vs_numpy": relative(logei_bt, logei_np),
    }
    bad = {k: v for k, v in agreement.items() if not v <= AGREEMENT}
    if bad:
        raise RuntimeError(f"the shared model's posteriors disagree (relative, limit {AGREEMENT:g}): {bad}")

    def value(point):
        mean, std = numpy_posterior(x, y, hyper, np.asarray(point, dtype=np.float64).reshape(1, dim))
        return float(numpy_log_ei(mean, std, best)[0])

    candidates = task["candidates_unit"]
    choices = torch.tensor(candidates)
    bounds = torch.stack([torch.zeros(dim), torch.ones(dim)])
    keys = [jax.random.PRNGKey(r) for r in range(reps + 1)]
    counter = {"metabo_box": 0, "botorch_box": 0}
    found = {name: [] for name in ("metabo_box", "botorch_box", "metabo_finite", "botorch_finite")}

    def metabo_box(_):
        point = engine.suggest_box(model, params, x, y, keys[counter["metabo_box"] % len(keys)], "ei")
        counter["metabo_box"] += 1
        found["metabo_box"].append(point)

    def botorch_box(_):
        torch.manual_seed(counter["botorch_box"])
        counter["botorch_box"] += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            point, _ = optimize_acqf(acq, bounds=bounds, q=1, **BOTORCH_BOX)
        found["botorch_box"].append(point.numpy().reshape(-1))

    def metabo_finite(_):
        found["metabo_finite"].append(candidates[engine.suggest_finite(model, params, x, y, candidates, None, "ei")])

    def botorch_finite(_):
        point, _ = optimize_acqf_discrete(acq, q=1, choices=choices)
        found["botorch_finite"].append(point.numpy().reshape(-1))

    methods = {name: ((lambda: None), fn) for name, fn in (
        ("metabo_box", metabo_box), ("botorch_box", botorch_box),
        ("metabo_finite", metabo_finite), ("botorch_finite", botorch_finite),
    )}
    log(f"item 2, shared model: {', '.join(methods)} x {reps} rounds ...")
    timed = round_robin(methods, reps)
    for name, entry in timed.items():
        values = [value(p) for p in found[name][1:]]  # the timed repetitions
        entry["log_ei"] = values
        entry["median_log_ei"] = statistics.median(values)
        entry["min_log_ei"] = min(values)
        entry["max_log_ei"] = max(values)
    for group in ("box", "finite"):
        ours, theirs = timed[f"metabo_{group}"], timed[f"botorch_{group}"]
        theirs["ratio_to_metabo"] = theirs["median_s"] / ours["median_s"]
        ours["ratio_to_metabo"] = 1.0
        diffs = np.array(ours["log_ei"]) - np.array(theirs["log_ei"])
        ours["reps_at_least_botorch"] = int(np.sum(diffs >= -ACQ_TIE))
        ours["max_shortfall_vs_botorch"] = float(max(0.0, -diffs.min()))
    return {
        "hyperparameters": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in hyper.items()},
        "agreement": agreement,
        "timed": timed,
        "best_log_ei_box": max(timed["metabo_box"]["max_log_ei"], timed["botorch_box"]["max_log_ei"]),
    }


# ---- item 3: single-task GP fit -----------------------------------------------------------------
def synthetic(x):
    """A smooth 4-D test function on the unit cube (the one of scripts/bench_bo.py)."""
    return np.sin(3 * x[:, 0]) * np.cos(2 * x[:, 1]) + 0.5 * x[:, 2] - (x[:, 3] - 0.4) ** 2


def fit_problems(task, sizes, seeds):
    problems = []
    for n in sizes:
        for seed in seeds:
            rng = np.random.default_rng([7, n, seed])
            x = rng.random((n, 4))
            y = synthetic(x) + SYNTHETIC_NOISE * rng.standard_normal(n)
            problems.append({"data": "synthetic", "n": n, "seed": seed, "x": x, "y": y})
            rows = np.random.default_rng([8, n, seed]).choice(len(task["all_scores"]), size=n, replace=False)
            problems.append(
                {"data": "pd1", "n": n, "seed": seed, "x": task["all_unit"][rows], "y": task["all_scores"][rows]}
            )
    return problems


def _standardized(y):
    mu, sd = float(np.mean(y)), float(np.std(y))
    return (y - mu) / sd, mu, sd


def fit_methods(problem, peers):
    """Name -> (setup, run): each run fits and records the hyperparameters, converted to the
    problem's standardized units (y - mean) / std (ddof 0), and the library's own value of the
    log marginal likelihood on those units (for the cross-check)."""
    import jax

    from metabo.bo.single_task import DEFAULT_MODEL, fit_single_task
    from metabo.gp.posterior import negative_log_likelihood

    x, y = problem["x"], problem["y"]
    n = len(y)
    _, mu, sd = _standardized(y)
    key = jax.random.PRNGKey(problem["seed"])
    results = problem.setdefault("fits", {})
    methods = {}

    def metabo_run(_):
        params = jax.block_until_ready(fit_single_task(x, y, key, DEFAULT_MODEL))
        h = DEFAULT_MODEL.hyper(params)
        results["metabo"] = {
            "lengthscale": np.asarray(h.lengthscale),
            "signal": float(h.signal) / sd**2,
            "noise": float(h.noise) / sd**2,
            "constant": (float(params.mean_constant) - mu) / sd,
            # metabo's NLL on the raw scores, moved to standardized units (Jacobian n log sd).
            "own_lml": float(-negative_log_likelihood(DEFAULT_MODEL, params, x, y)) + n * math.log(sd),
        }

    methods["metabo"] = ((lambda: None), metabo_run)

    if "sklearn" in peers:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        def sklearn_method(restarts):
            def run(_):
                kernel = ConstantKernel(1.0) * Matern(length_scale=np.ones(x.shape[1]), nu=2.5) + WhiteKernel(1e-1)
                gp = GaussianProcessRegressor(
                    kernel, normalize_y=True, n_restarts_optimizer=restarts, random_state=problem["seed"]
                )
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    gp.fit(x, y)
                k = gp.kernel_
                assert np.isclose(gp._y_train_mean, mu) and np.isclose(gp._y_train_std, sd)
                results[f"sklearn_r{restarts}"] = {
                    "lengthscale": np.asarray(k.k1.k2.length_scale, dtype=float).reshape(-1),
                    "signal": float(k.k1.k1.constant_value),
                    "noise": float(k.k2.noise_level) + float(gp.alpha),  # alpha joins the diagonal
                    "constant": 0.0,  # a zero mean on the normalized scores
                    "own_lml": float(gp.log_marginal_likelihood_value_),
                    "warnings": sum(issubclass(w.category, ConvergenceWarning) for w in caught),
                }

            return (lambda: None), run

        methods["sklearn_r0"] = sklearn_method(0)
        methods[f"sklearn_r{SKLEARN_RESTARTS}"] = sklearn_method(SKLEARN_RESTARTS)

    if "botorch" in peers:
        import torch

        xt, yt = torch.tensor(x), torch.tensor(y)[:, None]

        def botorch_run(_):
            model = botorch_fit(botorch_model(xt, yt))
            h = botorch_hyper(model)
            transform = model.outcome_transform
            m, s = float(transform.means.reshape(-1)[0]), float(transform.stdvs.reshape(-1)[0])
            # The model sees (y - m) / s (s with ddof 1); in our units y_std = (s y_b + m - mu) / sd.
            k = s / sd
            model.train()
            with torch.no_grad():
                prior = model(*model.train_inputs)
                own = float(model.likelihood(prior).log_prob(model.train_targets))  # no hyperpriors
            model.eval()
            results["botorch"] = {
                "lengthscale": h["lengthscale"],
                "signal": h["signal"] * k * k,
                "noise": h["noise"] * k * k,
                "constant": (s * h["constant"] + m - mu) / sd,
                "own_lml": own - n * math.log(k),
            }

        methods["botorch"] = ((lambda: None), botorch_run)
    return methods


def bench_fits(task, peers, reps, sizes, seeds):
    problems = fit_problems(task, sizes, seeds)
    per_problem = [fit_methods(p, peers) for p in problems]
    names = list(per_problem[0])
    log(f"item 3: {', '.join(names)} on {len(problems)} problems x {reps} rounds ...")
    # First calls (metabo compiles once per observation bucket), then the rounds: in each, every
    # problem with every method.
    first = {name: [] for name in names}
    times = {name: [[] for _ in problems] for name in names}
    for methods in per_problem:
        for name in names:
            start = time.perf_counter()
            methods[name][1](None)
            first[name].append(round(time.perf_counter() - start, 4))
    for _ in range(reps):
        for i, methods in enumerate(per_problem):
            for name in names:
                start = time.perf_counter()
                methods[name][1](None)
                times[name][i].append(round(time.perf_counter() - start, 5))

    for problem in problems:
        y_std, _, _ = _standardized(problem["y"])
        n = len(y_std)
        for name in names:
            fit = problem["fits"][name]
            lml = log_marginal_likelihood(
                problem["x"], y_std, fit["lengthscale"], fit["signal"], fit["noise"], fit["constant"]
            )
            if not abs(lml - fit["own_lml"]) <= 1e-6 * max(1.0, abs(lml)):
                raise RuntimeError(
                    f"{name} on {problem['data']} n={n} seed={problem['seed']}: the NumPy log marginal likelihood "
                    f"{lml:.10g} of its hyperparameters differs from the library's own {fit['own_lml']:.10g}"
                )
            fit["lml"] = lml
            if name.startswith("sklearn"):
                args = (problem["x"], y_std, fit["lengthscale"], fit["signal"], fit["noise"])
                fit["lml_best_constant"] = log_marginal_likelihood(*args, best_constant(*args))
    summary = {}
    for n in sizes:
        chosen = [i for i, p in enumerate(problems) if p["n"] == n]
        base_time = statistics.median(t for i in chosen for t in times["metabo"][i])
        summary[str(n)] = {}
        for name in names:
            all_times = [t for i in chosen for t in times[name][i]]
            per_point = [problems[i]["fits"][name]["lml"] / n for i in chosen]
            diffs = [(problems[i]["fits"][name]["lml"] - problems[i]["fits"]["metabo"]["lml"]) / n for i in chosen]
            summary[str(n)][name] = {
                "median_s": statistics.median(all_times),
                "ratio_to_metabo": statistics.median(all_times) / base_time,
                "first_call_s": [first[name][i] for i in chosen],
                "median_lml_per_point": statistics.median(per_point),
                "better_than_metabo": sum(d > LML_TIE for d in diffs),
                "tie_with_metabo": sum(abs(d) <= LML_TIE for d in diffs),
                "worse_than_metabo": sum(d < -LML_TIE for d in diffs),
                "median_lml_diff_per_point_vs_metabo": statistics.median(diffs),
                "convergence_warnings": sum(problems[i]["fits"][name].get("warnings", 0) for i in chosen),
            }
            if name.startswith("sklearn"):
                summary[str(n)][name]["median_lml_per_point_best_constant"] = statistics.median(
                    problems[i]["fits"][name]["lml_best_constant"] / n for i in chosen
                )
    details = [
        {
            "data": p["data"],
            "n": p["n"],
            "seed": p["seed"],
            "fits": {
                name: {
                    "lml_per_point": fit["lml"] / p["n"],
                    **(
                        {"lml_per_point_best_constant": fit["lml_best_constant"] / p["n"]}
                        if "lml_best_constant" in fit
                        else {}
                    ),
                    "lengthscale": np.asarray(fit["lengthscale"]).round(5).tolist(),
                    "signal": round(fit["signal"], 6),
                    "noise": float(f"{fit['noise']:.6g}"),
                    "constant": round(fit["constant"], 6),
                    "times_s": times[name][i],
                }
                for name, fit in p["fits"].items()
            },
        }
        for i, p in enumerate(problems)
    ]
    return {"summary": summary, "problems": details, "methods": names}


# ---- report ------------------------------------------------------------------------------------
LABELS = {
    "metabo_finite": "metabo `Optimizer.ask()`, prior, finite set",
    "metabo_box": "metabo `Optimizer.ask()`, prior, box",
    "optuna_tpe": "Optuna TPESampler (`study.ask()` + 4 suggests)",
    "optuna_gp": "Optuna GPSampler (`study.ask()` + 4 suggests)",
    "botorch_finite": "BoTorch fit + `optimize_acqf_discrete`",
    "botorch_box": "BoTorch fit + `optimize_acqf`",
    "metabo": "metabo `fit_single_task` (L-BFGS-B, 4 starts, lengthscale prior)",
    "sklearn_r0": "scikit-learn GPR, `n_restarts_optimizer=0`",
    f"sklearn_r{SKLEARN_RESTARTS}": f"scikit-learn GPR, `n_restarts_optimizer={SKLEARN_RESTARTS}`",
    "botorch": "BoTorch `fit_gpytorch_mll` (SingleTaskGP)",
}


def markdown(report) -> str:
    m, r = report["machine"], report["results"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        "# metabo next to its peers",
        "",
        f"Generated by `scripts/bench_peers.py{' --quick' if report['settings']['quick'] else ''}` on {m['date']}: "
        f"{m['cpus']} CPUs ({m['cpu']}), load average {m['load_before']} before, {m['load_after']} after "
        "(other jobs share this machine: treat absolute times as upper bounds). "
        f"{versions}. Float64 throughout; JAX runs XLA on one intra-op thread (`metabo.runtime.start_jax`, as "
        f"the CLI does), torch on {m['torch_threads']} threads, NumPy's BLAS as installed. Medians of "
        f"{report['settings']['reps']} repetitions, the methods interleaved repetition by repetition.",
        "",
    ]
    missing = report.get("skipped")
    if missing:
        lines += [f"Skipped (not installed): {', '.join(missing)}.", ""]
    s = r["suggestions"]
    lines += [
        f"## One suggestion with {N_OBS} observations, 4-D (issue 20, item 2)",
        "",
        f"Prior: `metabo.pretrain.pretrain` with its defaults on `data/pd1_mini.parquet` minus the task "
        f"`{HELDOUT_TASK}` ({report['prior']}); the task's 100 observations are {N_OBS} random trials of it. "
        "metabo and BoTorch see the scores `-log(error)` on the unit cube (log-scaled parameters mapped "
        "logarithmically), Optuna the raw error rates, minimized, with the 4 `FloatDistribution`s. Warm calls; "
        "the first call (compilation for metabo, lazy imports and set-up for the peers) separately.",
        "",
        "| method | warm median (s) | / metabo | first call (s) | BoTorch: fit / acquisition optimization alone (s) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for group, title in (("finite", f"finite set of {report['settings']['candidates']:,} candidates"), ("box", "the continuous box")):
        lines.append(f"| **{title}** | | | | |")
        for name, entry in s.items():
            if entry.get("group") != group:
                continue
            parts = entry.get("median_parts_s", {})
            split = (
                f"{parts['fit_s']:.3f} / {parts['acquisition_s']:.3f} (acquisition alone {entry['acquisition_ratio_to_metabo']:.1f}x metabo's ask)"
                if parts
                else ""
            )
            lines.append(
                f"| {LABELS[name]} | {entry['median_s']:.4f} | {entry['ratio_to_metabo']:.1f}x | {entry['first_s']:.3f} | {split} |"
            )
        if group == "finite" and any(e.get("group") == "box" and n.startswith("optuna") for n, e in s.items()):
            lines.append(
                "| Optuna | n/a | | | no candidate-set mode (a CategoricalDistribution over "
                f"{report['settings']['candidates']:,} configurations is not the same problem) |"
            )
    lines.append("")
    shared = r.get("shared_model")
    if shared:
        t, a = shared["timed"], shared["agreement"]
        h = shared["hyperparameters"]
        lines += [
            "### Acquisition value on one shared GP",
            "",
            "BoTorch's SingleTaskGP fitted to the task's standardized scores (no outcome transform), its "
            f"hyperparameters (lengthscales {np.round(h['lengthscale'], 4).tolist()}, signal {h['signal']:.4g}, "
            f"noise {h['noise']:.4g}, constant {h['constant']:.4g}) set in metabo's "
            '`GPModel(mean="constant", kernel="matern52")`. Largest relative difference from a NumPy posterior '
            f"on 16 points: metabo mean {a['mean_metabo_vs_numpy']:.1e}, std {a['std_metabo_vs_numpy']:.1e}, "
            f"log EI {a['log_ei_metabo_vs_numpy']:.1e}; BoTorch mean {a['mean_botorch_vs_numpy']:.1e}, std "
            f"{a['std_botorch_vs_numpy']:.1e}, log EI {a['log_ei_botorch_vs_numpy']:.1e} (limit {AGREEMENT:g}). "
            "Each maximizer ran once per repetition (a different seed each); the NumPy log EI scores every optimum.",
            "",
            "| maximizer | median time (s) | / metabo | log EI: median | min | max |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        shared_labels = {
            "metabo_box": "metabo `engine.suggest_box` (2048-point sweep, 16 Adam starts x 100 steps)",
            "botorch_box": "BoTorch `optimize_acqf` (512 raw samples, 10 L-BFGS-B restarts)",
            "metabo_finite": f"metabo `engine.suggest_finite` ({report['settings']['candidates']:,} candidates)",
            "botorch_finite": f"BoTorch `optimize_acqf_discrete` ({report['settings']['candidates']:,} candidates)",
        }
        for name in ("metabo_box", "botorch_box", "metabo_finite", "botorch_finite"):
            e = t[name]
            lines.append(
                f"| {shared_labels[name]} | {e['median_s']:.4f} | {e['ratio_to_metabo']:.1f}x | "
                f"{e['median_log_ei']:.6f} | {e['min_log_ei']:.6f} | {e['max_log_ei']:.6f} |"
            )
        box, fin = t["metabo_box"], t["metabo_finite"]
        lines += [
            "",
            f"metabo's box optimum reached at least BoTorch's log EI (within {ACQ_TIE:g}) in {box['reps_at_least_botorch']} of "
            f"{len(box['log_ei'])} repetitions (largest shortfall {box['max_shortfall_vs_botorch']:.2e}); on the finite "
            f"set in {fin['reps_at_least_botorch']} of {len(fin['log_ei'])}.",
            "",
        ]
    f = r.get("fits")
    if f:
        lines += [
            "## Single-task GP fit (issue 20, item 3)",
            "",
            f"Constant mean, Matern 5/2 ARD, Gaussian noise, on n points of the synthetic 4-D function of "
            f"`scripts/bench_bo.py` plus N(0, {SYNTHETIC_NOISE}^2) noise and of the pd1 task `{HELDOUT_TASK}` "
            f"(scores, unit cube), seeds {list(report['settings']['fit_seeds'])}: "
            f"{2 * len(report['settings']['fit_seeds'])} problems per n. Time: fit only, data in, hyperparameters "
            "out (metabo warm, its first, compiling, call per problem in the JSON). Log marginal likelihood: every "
            "method's hyperparameters, converted to the standardized scores (y - mean) / std, evaluated by one NumPy "
            "implementation (checked against each library's own value to 1e-6); per point, median over the "
            f"problems; better / tie / worse: per problem against metabo's, a tie within {LML_TIE:g} per point.",
            "",
            "| n | method | median time (s) | / metabo | log ML per point (median) | better / tie / worse than metabo "
            "| median difference per point | with the best constant (scikit-learn) |",
            "| ---: | --- | ---: | ---: | ---: | :---: | ---: | ---: |",
        ]
        for n, rows in f["summary"].items():
            for name, e in rows.items():
                verdict = "" if name == "metabo" else f"{e['better_than_metabo']} / {e['tie_with_metabo']} / {e['worse_than_metabo']}"
                diff = "" if name == "metabo" else f"{e['median_lml_diff_per_point_vs_metabo']:+.4f}"
                profiled = e.get("median_lml_per_point_best_constant")
                profiled = "" if profiled is None else f"{profiled:.4f}"
                lines.append(
                    f"| {n} | {LABELS[name]} | {e['median_s']:.4f} | {e['ratio_to_metabo']:.1f}x | "
                    f"{e['median_lml_per_point']:.4f} | {verdict} | {diff} | {profiled} |"
                )
        warned = {
            name: sum(rows[name]["convergence_warnings"] for rows in f["summary"].values())
            for name in f["methods"]
            if name.startswith("sklearn")
        }
        if warned:
            fits = sum(len(rows["metabo"]["first_call_s"]) for rows in f["summary"].values())
            lines += [
                "",
                "scikit-learn's L-BFGS-B reported a ConvergenceWarning in "
                + ", ".join(f"{count} of {fits} fits ({name})" for name, count in warned.items())
                + ".",
            ]
        lines += [
            "",
            "Per problem (log marginal likelihood per point):",
            "",
            "| data | n | seed | " + " | ".join(f["methods"]) + " |",
            "| --- | ---: | ---: | " + " | ".join("---:" for _ in f["methods"]) + " |",
        ]
        for p in f["problems"]:
            lines.append(
                f"| {p['data']} | {p['n']} | {p['seed']} | "
                + " | ".join(f"{p['fits'][name]['lml_per_point']:.4f}" for name in f["methods"])
                + " |"
            )
        lines.append("")
    lines += report.get("notes", [])
    return "\n".join(lines) + "\n"


NOTES = [
    "Notes:",
    "",
    "- Bounds differ: metabo's fit keeps standardized hyperparameters in boxes (lengthscale [0.01, 20], "
    "signal [0.05, 20], noise [1e-5, 2]; `metabo.bo.single_task.FitBounds`), scikit-learn's defaults allow "
    "[1e-5, 1e5] for each, BoTorch's likelihood keeps the noise above 1e-4 (of the standardized variance) "
    "and adds a LogNormal(-4, 1) prior on it, which its fit maximizes with the likelihood. A higher likelihood "
    "reached outside metabo's boxes is a real difference in the fit, not an error of either.",
    "- scikit-learn's GPR has no mean hyperparameter: with `normalize_y=True` its prior mean is the "
    "sample mean (0 on the standardized scores), while metabo and BoTorch fit a constant mean, which with "
    "a large signal variance can sit far from the sample mean. The column 'with the best constant' above "
    "gives scikit-learn's kernel hyperparameters the constant that maximizes the likelihood for them "
    "(generalized least squares), to separate the model's missing mean from its optimizer.",
    "- BoTorch's default SingleTaskGP kernel is an RBF kernel without an output scale and with "
    "dimension-scaled priors; the scaled Matern 5/2 used here is the model metabo fits, so the likelihoods "
    "compare like with like.",
    "- Optuna: one sampler across repetitions, a fresh study holding the 100 trials each time, so GPSampler "
    "warm-starts its kernel fit from the previous repetition's as in a running study; its first call fits "
    "from scratch.",
    "- metabo's times include the Optimizer's own work: user units to the unit cube, the output warp of the "
    "prior, and (finite set) excluding observed candidates; a fresh Optimizer told the 100 trials each "
    "repetition (untimed).",
    "",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks", help="output directory (peers.json, peers.md)")
    parser.add_argument("--reps", type=int, default=7, help="repetitions per measurement (medians)")
    parser.add_argument("--quick", action="store_true", help="2 repetitions, smaller problems: a smoke run")
    parser.add_argument(
        "--prior-cache",
        default=os.path.join(tempfile.gettempdir(), "metabo-bench-peers"),
        help="directory of the cached pre-trained prior",
    )
    parser.add_argument("--render", metavar="JSON", help="only rewrite peers.md from an earlier peers.json")
    args = parser.parse_args(argv)
    if args.render:
        from metabo.io import atomic_write_text

        with open(args.render, encoding="utf-8") as fh:
            atomic_write_text(os.path.join(args.out, "peers.md"), markdown(json.load(fh)))
        return 0
    reps = 2 if args.quick else args.reps
    if reps < 1:
        parser.error("--reps must be positive")
    sizes, seeds = ((50,), (0,)) if args.quick else (FIT_SIZES, FIT_SEEDS)

    os.environ.setdefault("METABO_JAX_CACHE", "off")  # first calls compile for real
    from metabo.runtime import cpu_model, start_jax

    start_jax()
    import jax
    import scipy

    import metabo
    from metabo.io import atomic_write_text

    load_before = [round(v, 2) for v in os.getloadavg()]
    log(f"metabo from {os.path.dirname(metabo.__file__)}")
    peers = available_peers()
    task = load_task(args.quick)
    prior, prior_info = build_prior(task, args.prior_cache, args.quick)
    results = {"suggestions": bench_suggestions(task, prior, peers, reps)}
    if "botorch" in peers:
        results["shared_model"] = bench_shared_model(task, reps)
    results["fits"] = bench_fits(task, peers, reps, sizes, seeds)

    versions = {"python": platform.python_version(), "metabo": metabo.__version__, "jax": jax.__version__,
                "numpy": np.__version__, "scipy": scipy.__version__}
    versions.update({k: peers[k] for k in ("optuna", "torch", "botorch", "gpytorch", "sklearn") if k in peers})
    try:  # Optuna's GPSampler batches its L-BFGS-B restarts with greenlet, else runs them in turn
        import greenlet

        versions["greenlet"] = greenlet.__version__
    except ImportError:
        versions["greenlet"] = "not installed"
    torch_threads = None
    if "torch" in peers:
        import torch

        torch_threads = torch.get_num_threads()
    info = "loaded from the cache" if prior_info["cached"] else f"pre-trained in {prior_info['pretrain_s']} s"
    report = {
        "machine": {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "metabo_path": os.path.dirname(metabo.__file__),
            "versions": versions,
            "torch_threads": torch_threads,
            "load_before": load_before,
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
        "settings": {
            "reps": reps,
            "quick": args.quick,
            "observations": N_OBS,
            "candidates": len(task["candidates_unit"]),
            "heldout_task": HELDOUT_TASK,
            "fit_sizes": list(sizes),
            "fit_seeds": list(seeds),
            "botorch_optimize_acqf": BOTORCH_BOX,
            "sklearn_restarts": [0, SKLEARN_RESTARTS],
        },
        "prior": f"{prior!r}, {info}",
        "skipped": [k for k in ("optuna", "torch", "botorch", "sklearn") if k not in peers],
        "results": results,
        "notes": NOTES,
    }
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "peers.json"), json.dumps(report, indent=2, default=_json) + "\n")
    text = markdown(json.loads(json.dumps(report, default=_json)))
    atomic_write_text(os.path.join(args.out, "peers.md"), text)
    print(text)
    return 0


def _json(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())

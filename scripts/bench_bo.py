"""Speed of the BO engine (issue 4), measured side by side in one run; writes JSON + markdown.

Measured (float64, CPU):
  1. scoring EI on 10,000 candidates given 50 observations in 4-D (warm): ``engine.score_candidates``
     end to end, next to a numpy/scipy implementation of the same posterior and EI;
  2. maximizing EI over the 4-D box (warm): ``engine.suggest_box`` (sweep + multi-start Adam),
     next to scipy L-BFGS-B restarts on the same compiled log-EI value-and-gradient (the
     strategy of BoTorch's ``optimize_acqf``), with the optima both reach;
  3. 100 BO iterations over a 1000-point candidate pool with a fixed (pre-trained-style) prior,
     in a fresh process, compilation included (no persistent cache), and again with a warm
     persistent compilation cache;
  4. the cold start of ``metabo suggest`` (process start to output) with no cache, a cold cache
     and a warm cache;
  5. batch spread: ``Optimizer.ask(6)`` under the same prior after 5 and 15 observations of the
     test function, with constant-liar and kriging-believer fantasies: the minimum pairwise
     L-inf distance (unit cube) and the share of coordinates on a bound of the box.

Reference figures from DESIGN.md (same 2-core machine, not re-measured here): BoTorch 0.24 s for
(1) and 0.8 s for (2); the public HyperBO code 1.2-1.9 s per iteration for (3).

Usage: python scripts/bench_bo.py [--out benchmarks] [--reps 15]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGETS = {"ei_10k_s": 0.02, "box_ei_s": 0.1, "loop_100_s": 3.0, "cli_cold_start_s": 5.0}
REFERENCE = {
    "botorch_ei_10k_s": 0.24,
    "botorch_box_ei_s": 0.8,
    "hyperbo_reference_per_iteration_s": [1.2, 1.9],
}
DIM, N_OBS, N_CAND, POOL, ITERATIONS = 4, 50, 10_000, 1000, 100
LENGTHSCALE, SIGNAL, NOISE, CONSTANT = 0.3, 1.0, 1e-3, 0.0


def _prior():
    import jax
    import jax.numpy as jnp

    from metabo.bo.single_task import DEFAULT_MODEL

    model = DEFAULT_MODEL
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), DIM),
        lengthscale=jnp.full(DIM, LENGTHSCALE),
        signal=SIGNAL,
        noise=NOISE,
    )
    return model, params._replace(mean_constant=jnp.asarray(CONSTANT))


def objective(x):
    """A smooth 4-D test function on the unit cube (maximized). x: [n, 4] -> [n]."""
    return np.sin(3 * x[:, 0]) * np.cos(2 * x[:, 1]) + 0.5 * x[:, 2] - (x[:, 3] - 0.4) ** 2


def _timed(fn, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), [round(t, 5) for t in times]


# ---- 1. EI on 10k candidates -----------------------------------------------------------------
def _numpy_ei(x, y, candidates):
    from scipy.linalg import cho_factor, cho_solve
    from scipy.spatial.distance import cdist
    from scipy.stats import norm

    def matern52(a, b):
        r = math.sqrt(5) * cdist(a / LENGTHSCALE, b / LENGTHSCALE)
        return SIGNAL * (1 + r + r * r / 3) * np.exp(-r)

    factor = cho_factor(matern52(x, x) + NOISE * np.eye(len(x)), lower=True)
    cross = matern52(candidates, x)
    mean = CONSTANT + cross @ cho_solve(factor, y - CONSTANT)
    var = SIGNAL - np.sum(cross * cho_solve(factor, cross.T).T, axis=1)
    std = np.sqrt(np.maximum(var, 1e-300))
    z = (mean - y.max()) / std
    return std * (z * norm.cdf(z) + norm.pdf(z))


def bench_ei(reps):
    from metabo.bo import engine

    model, params = _prior()
    rng = np.random.default_rng(0)
    x = rng.random((N_OBS, DIM))
    y = objective(x)
    candidates = rng.random((N_CAND, DIM))
    ours = lambda: engine.score_candidates(model, params, x, y, candidates, "ei")  # noqa: E731
    start = time.perf_counter()
    values = ours()
    first = time.perf_counter() - start
    reference = _numpy_ei(x, y, candidates)
    agree = float(np.max(np.abs(np.exp(values) - reference)))
    t_ours, all_ours = _timed(ours, reps)
    t_numpy, all_numpy = _timed(lambda: _numpy_ei(x, y, candidates), reps)
    return {
        "metabo_s": t_ours,
        "metabo_first_call_s": round(first, 4),
        "numpy_scipy_s": t_numpy,
        "speedup_vs_numpy": t_numpy / t_ours,
        "max_abs_difference": agree,
        "times_metabo": all_ours,
        "times_numpy": all_numpy,
    }


# ---- 2. maximizing EI over the box -----------------------------------------------------------
def bench_box(reps):
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    from metabo.bo import engine
    from metabo.bo.acquisitions import log_ei
    from metabo.gp import condition, predict

    model, params = _prior()
    rng = np.random.default_rng(1)
    x = rng.random((N_OBS, DIM))
    y = objective(x)
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 10 * reps + 10))
    ours = lambda: engine.suggest_box(model, params, x, y, next(keys), "ei")  # noqa: E731
    start = time.perf_counter()
    ours()
    first = time.perf_counter() - start
    t_ours, all_ours = _timed(ours, reps)
    point = ours()

    state = condition(model, params, jnp.asarray(x), jnp.asarray(y))
    best = float(y.max())

    @jax.jit
    def value_and_grad(z):
        def f(z):
            mean, var = predict(model, params, state, z[None])
            return -log_ei(mean, jnp.sqrt(var), best)[0]

        return jax.value_and_grad(f)(z)

    @jax.jit
    def raw_scores(z):
        mean, var = predict(model, params, state, z)
        return log_ei(mean, jnp.sqrt(var), best)

    def scipy_multistart(seed, raw=1024, restarts=10):
        samples = np.random.default_rng(seed).random((raw, DIM))
        starts = samples[np.argsort(-np.asarray(raw_scores(jnp.asarray(samples))))[:restarts]]
        best_value, best_point = np.inf, None
        for s in starts:
            res = minimize(
                lambda z: tuple(np.asarray(v) for v in value_and_grad(jnp.asarray(z))),
                s,
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * DIM,
            )
            if res.fun < best_value:
                best_value, best_point = res.fun, res.x
        return best_point

    scipy_multistart(0)
    seeds = iter(range(1, reps + 2))
    t_scipy, all_scipy = _timed(lambda: scipy_multistart(next(seeds)), reps)
    scipy_point = scipy_multistart(reps + 5)
    value = lambda p: float(raw_scores(jnp.asarray(p)[None])[0])  # noqa: E731
    return {
        "metabo_s": t_ours,
        "metabo_first_call_s": round(first, 4),
        "scipy_lbfgsb_s": t_scipy,
        "speedup_vs_scipy": t_scipy / t_ours,
        "log_ei_at_metabo_optimum": value(point),
        "log_ei_at_scipy_optimum": value(scipy_point),
        "times_metabo": all_ours,
        "times_scipy": all_scipy,
    }


# ---- 3. 100 iterations over a 1000-point pool (child process) ----------------------------------
def child_loop():
    # The same CPU backend as the CLI; the parent chose the compilation cache (or none).
    os.environ.setdefault("METABO_JAX_CACHE", os.environ.get("JAX_COMPILATION_CACHE_DIR") or "off")
    from metabo.runtime import start_jax

    start_jax()
    start = time.perf_counter()
    from metabo.bo import engine

    model, params = _prior()
    rng = np.random.default_rng(2)
    pool = rng.random((POOL, DIM))
    values = objective(pool)
    observed = np.zeros(POOL, dtype=bool)
    chosen = []
    ready = time.perf_counter()
    per_iteration = []
    for step in range(ITERATIONS):
        t = time.perf_counter()
        index = engine.suggest_finite(
            model, params, pool[chosen], values[chosen], pool, observed, "ei", step=step
        )
        per_iteration.append(time.perf_counter() - t)
        observed[index] = True
        chosen.append(index)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "loop_s": done - ready,
                "import_and_setup_s": ready - start,
                "first_iteration_s": per_iteration[0],
                "median_iteration_s": float(np.median(per_iteration)),
                "slowest_iterations_s": sorted(round(t, 4) for t in per_iteration)[-5:],
                "simple_regret": float(values.max() - values[chosen].max()),
            }
        )
    )


def bench_loop(runs: int = 3):
    """Each setting in ``runs`` fresh processes; median (and min, the least disturbed by other
    jobs on this shared machine) of the loop time. The cold-cache run fills the cache once."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        settings = (
            ("no_cache", {"JAX_COMPILATION_CACHE_DIR": ""}, runs),
            ("cold_cache", _cache_env(cache), 1),
            ("warm_cache", _cache_env(cache), runs),
        )
        for name, env, count in settings:
            children = [_child(["--child", "loop"], env) for _ in range(count)]
            loop = [c["loop_s"] for c in children]
            out[name] = {
                **children[int(np.argsort(loop)[len(loop) // 2])],
                "loop_s": float(np.median(loop)),
                "loop_min_s": float(np.min(loop)),
                "loop_all_s": [round(t, 3) for t in loop],
            }
    return out


def _cache_env(directory):
    return {
        "JAX_COMPILATION_CACHE_DIR": directory,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _child(arguments, env):
    full = {**os.environ, **env}
    if not full.get("JAX_COMPILATION_CACHE_DIR"):
        full.pop("JAX_COMPILATION_CACHE_DIR", None)
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *arguments],
        env=full,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- 4. cold start of `metabo suggest` -------------------------------------------------------
def bench_cli(reps):
    from metabo.space import pd1_space

    space = pd1_space()
    rng = np.random.default_rng(3)
    unit = rng.random((20, space.dim))
    configs = space.configs_from_unit(unit)
    errors = np.exp(-2.0 - objective(unit))  # an error rate in (0, 1)
    out = {}
    with tempfile.TemporaryDirectory() as work:
        space_path = os.path.join(work, "space.json")
        space.save(space_path)
        history = os.path.join(work, "trials.csv")
        with open(history, "w") as fh:
            fh.write(",".join([*space.names, "objective"]) + "\n")
            for config, err in zip(configs, errors, strict=True):
                fh.write(",".join([*(repr(config[n]) for n in space.names), repr(float(err))]) + "\n")
        command = [
            sys.executable,
            "-m",
            "metabo",
            "suggest",
            "--space",
            space_path,
            "--history",
            history,
            "--n",
            "1",
        ]
        cache = os.path.join(work, "cache")
        for name, cache_setting, runs in (
            ("no_cache", "off", reps),
            ("cold_cache", cache, 1),
            ("warm_cache", cache, reps),
        ):
            env = {**os.environ, "METABO_JAX_CACHE": cache_setting}
            for key in ("JAX_COMPILATION_CACHE_DIR", "JAX_ENABLE_X64"):
                env.pop(key, None)
            times, jax_times = [], []
            for _ in range(runs):
                start = time.perf_counter()
                result = subprocess.run(command, env=env, capture_output=True, text=True)
                times.append(time.perf_counter() - start)
                if result.returncode != 0:
                    raise RuntimeError(f"metabo suggest failed: {result.stderr}")
                json.loads(result.stdout.strip().splitlines()[-1])
                if name == "warm_cache":  # the yardstick, interleaved with the runs
                    start = time.perf_counter()
                    subprocess.run([sys.executable, "-c", "import jax"], env=env, check=True)
                    jax_times.append(time.perf_counter() - start)
            out[name] = {
                "median_s": float(np.median(times)),
                "min_s": float(np.min(times)),
                "times_s": [round(t, 3) for t in times],
            }
            if jax_times:
                out[name]["import_jax_median_s"] = float(np.median(jax_times))
                out[name]["ratio_to_import_jax"] = float(np.median(times) / np.median(jax_times))
        # Import alone, for scale: python + metabo + jax.
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import metabo.bo.engine"], check=True)
        out["import_metabo_bo_engine_s"] = time.perf_counter() - start
    return out


# ---- report ------------------------------------------------------------------------------------
def bench_batch_spread():
    """Minimum pairwise distance within a batch of 6 and the share of coordinates on a bound."""
    from metabo.bench.synthetic import unit_space
    from metabo.bo.designer import Designer

    model, params = _prior()

    class FixedPrior:  # the bench's fixed prior, in the shape the BO core expects
        def __init__(self):
            self.model, self.params, self.space = model, params, unit_space(DIM)
            from metabo.warp import OutputWarp

            self.warp = OutputWarp("standardize")

        def hyperparameters(self):
            h = model.hyper(params)
            return {"signal": float(h.signal), "noise": float(h.noise)}

        def mean(self, x):
            return np.asarray(model.mean_fn(params, x))

    prior = FixedPrior()
    out = {}
    rng = np.random.default_rng(0)
    x_all = rng.random((15, DIM))
    for fantasy in ("liar", "believer"):
        for n in (5, 15):
            designer = Designer(prior.space, prior, seed=0, fantasy=fantasy)
            designer.update(x_all[:n], objective(x_all[:n]))
            batch = designer.suggest(6)
            distance = np.max(np.abs(batch[:, None] - batch[None]), axis=-1)
            np.fill_diagonal(distance, np.inf)
            on_bound = float(np.mean((batch <= 1e-9) | (batch >= 1 - 1e-9)))
            out[f"{fantasy}_{n}"] = {"min_distance": round(float(distance.min()), 4), "on_bound_share": round(on_bound, 3)}
    return out


def _markdown(report):
    r, t = report["results"], TARGETS
    ei, box, loop, cli = r["ei_10k"], r["box_ei"], r["loop_100"], r["cli"]
    lines = [
        "# BO engine benchmark",
        "",
        f"Generated by `scripts/bench_bo.py` on {report['machine']['date']} ({report['machine']['cpus']} CPUs, "
        f"load average {report['machine']['load_before']} before, {report['machine']['load_after']} after; "
        "other jobs share this machine, so treat absolute times as upper bounds). float64, medians.",
        "",
        "| measurement | metabo | side by side | target | reference (DESIGN.md) |",
        "| --- | --- | --- | --- | --- |",
        f"| EI on 10,000 candidates, 50 obs, 4-D (warm) | {ei['metabo_s']:.4f} s | numpy/scipy {ei['numpy_scipy_s']:.4f} s "
        f"({ei['speedup_vs_numpy']:.1f}x) | {t['ei_10k_s']} s | BoTorch 0.24 s |",
        f"| maximize EI over the 4-D box (warm) | {box['metabo_s']:.4f} s | scipy L-BFGS-B x10 {box['scipy_lbfgsb_s']:.4f} s "
        f"({box['speedup_vs_scipy']:.1f}x) | {t['box_ei_s']} s | BoTorch 0.8 s |",
        f"| 100 iterations, 1000-point pool, compile included (no cache) | {loop['no_cache']['loop_s']:.2f} s "
        f"(min {loop['no_cache']['loop_min_s']:.2f} s) | warm persistent cache {loop['warm_cache']['loop_s']:.2f} s "
        f"(min {loop['warm_cache']['loop_min_s']:.2f} s) | {t['loop_100_s']} s | HyperBO reference "
        "1.2-1.9 s per iteration |",
        f"| `metabo suggest` cold start (20 trials, PD1 space, no prior) | warm cache {cli['warm_cache']['median_s']:.2f} s "
        f"(min {cli['warm_cache']['min_s']:.2f} s"
        + (f"; {cli['warm_cache']['ratio_to_import_jax']:.2f}x `python -c 'import jax'`'s "
           f"{cli['warm_cache']['import_jax_median_s']:.2f} s" if "ratio_to_import_jax" in cli["warm_cache"] else "")
        + ") | "
        f"no cache {cli['no_cache']['median_s']:.2f} s, first run filling the cache "
        f"{cli['cold_cache']['median_s']:.2f} s | {t['cli_cold_start_s']} s | 8 s without, 3 s with a cache |",
        "",
        "Details:",
        "",
        f"- EI: first (compiling) call {ei['metabo_first_call_s']} s; max |EI - numpy EI| = {ei['max_abs_difference']:.2e}.",
        f"- Box: first (compiling) call {box['metabo_first_call_s']} s; log EI at the optimum: metabo "
        f"{box['log_ei_at_metabo_optimum']:.6f}, scipy {box['log_ei_at_scipy_optimum']:.6f}.",
        f"- Loop (no cache): median iteration {loop['no_cache']['median_iteration_s'] * 1e3:.1f} ms, first "
        f"{loop['no_cache']['first_iteration_s']:.2f} s, slowest {loop['no_cache']['slowest_iterations_s']} s (compiles at "
        f"the observation buckets 64 and 128); process import+setup {loop['no_cache']['import_and_setup_s']:.2f} s.",
        f"- Loop, all runs (s): no cache {loop['no_cache']['loop_all_s']}, warm cache {loop['warm_cache']['loop_all_s']}.",
        f"- CLI, all runs (s): warm cache {cli['warm_cache']['times_s']}, no cache {cli['no_cache']['times_s']}; "
        f"`python -c 'import metabo.bo.engine'` alone takes {cli['import_metabo_bo_engine_s']:.2f} s.",
        "- The minimum of repeated runs is the figure least disturbed by the other jobs on this machine; "
        "with 2 cores shared, single runs vary by a factor of 2-5 (run-to-run spread above).",
        "",
        "Batch spread (`Optimizer.ask(6)` under the fixed prior; min pairwise L-inf distance in the unit cube, "
        "share of coordinates on a bound):",
        "",
        "| fantasies | after 5 observations | after 15 observations |",
        "| --- | --- | --- |",
    ]
    spread = r.get("batch_spread", {})
    for fantasy in ("liar", "believer"):
        cells = [spread.get(f"{fantasy}_{n}") for n in (5, 15)]
        if all(cells):
            lines.append(
                f"| {fantasy} | " + " | ".join(f"{c['min_distance']} ({c['on_bound_share']:.0%} on a bound)" for c in cells) + " |"
            )
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks", help="output directory (bo.json, bo.md)")
    parser.add_argument("--reps", type=int, default=15, help="repetitions per warm measurement")
    parser.add_argument("--child", choices=("loop",), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "loop":
        child_loop()
        return 0

    os.environ.setdefault("METABO_JAX_CACHE", "off")  # warm timings in this process compile for real
    from metabo.runtime import start_jax

    start_jax()
    import jax

    from metabo.io import atomic_write_text

    load_before = [round(v, 2) for v in os.getloadavg()]
    results = {}
    steps = (
        ("ei_10k", lambda: bench_ei(args.reps)),
        ("box_ei", lambda: bench_box(args.reps)),
        ("loop_100", bench_loop),
        ("cli", lambda: bench_cli(5)),
        ("batch_spread", bench_batch_spread),
    )
    for name, fn in steps:
        print(f"bench_bo: {name} ...", file=sys.stderr, flush=True)
        results[name] = fn()
    report = {
        "machine": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "load_before": load_before,
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
        "targets": TARGETS,
        "reference": REFERENCE,
        "results": results,
    }
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "bo.json"), json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    atomic_write_text(os.path.join(args.out, "bo.md"), markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

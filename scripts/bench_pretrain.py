"""Pre-training speed, measured side by side in one run (float64, CPU).

(a) 1000 Adam steps of NLL pre-training, 20 tasks x 100 points x 4 dims, constant mean, Matern 5/2
    ARD, compilation included (each repeat starts from cleared JAX caches). Reference: the public
    HyperBO implementation took 426 s for this job on this machine (DESIGN.md section 5).
(b) One value-and-gradient of the summed NLL, 24 tasks x 500 points x 4 dims, next to NumPy
    (LAPACK) Cholesky-factorizing the same 24 Gram matrices, and the LAPACK floor of an exact
    gradient (potrf + potri per task). metabo's default path and metabo.gp's reference path.
(c) The same value-and-gradient written as a Python loop over tasks inside the jitted function:
    compile time and run time, next to the vmapped version's.
(d) The user's scale with the shipped defaults (``metabo.pretrain.pretrain(log)``: MLP mean,
    Matern 3/2, 300 Adam steps on 128 points per task per step): 20 tasks x 100 points,
    200 x 200 and 50 x 2000 (4-D GP draws), each in a fresh process: wall time of the call
    (compilation included, no persistent cache), peak memory of the process, loss reached.
(e) Speed not bought with a worse prior: on the bundled ``data/pd1_mini.parquet``, pre-training
    with the shipped mini-batches against every point at every step, each task held out once
    (3 folds of the tasks, 2 seeds): held-out per-point NLL under the prior (joint density of
    the held-out task's warped scores) and predictive NLL given half of its points.

Medians of ``--repeats`` runs (at least 5), wall-clock and process CPU time. Writes
``benchmarks/pretrain.json`` and ``benchmarks/pretrain.md``.

    .venv/bin/python scripts/bench_pretrain.py [--repeats 5] [--single-thread] [--out benchmarks]
        [--sections abc,d,e]   (a subset reruns those sections into the existing pretrain.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

HYPERBO_REFERENCE_S = 426.0
SECTIONS = ("abc", "d", "e")
# (d): (tasks, points per task) and the time and memory targets.
SCALE_JOBS = ((20, 100), (200, 200), (50, 2000))
SCALE_TARGETS = {(20, 100): (3.0, None), (200, 200): (60.0, None), (50, 2000): (60.0, 2.0)}
HELDOUT_FOLDS, HELDOUT_SEEDS = 3, (0, 1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per measurement (medians; at least 5)")
    parser.add_argument("--out", default="benchmarks", help="output directory (default benchmarks/)")
    parser.add_argument(
        "--single-thread",
        action="store_true",
        help="one thread for XLA and BLAS (set before JAX and NumPy load): steadier on a busy machine",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller problems, for a smoke test of this script"
    )
    parser.add_argument(
        "--render", metavar="JSON", help="only rewrite pretrain.md from an earlier pretrain.json"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated sections to run (abc, d, e); others are kept from --out's pretrain.json",
    )
    args = parser.parse_args(argv)
    args.sections = [part.strip() for part in args.sections.split(",") if part.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; expected some of {list(SECTIONS)}")
    if args.repeats < 1:
        parser.error("--repeats must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        from metabo.io import atomic_write_text

        with open(args.render, encoding="utf-8") as fh:
            results = json.load(fh)
        atomic_write_text(os.path.join(args.out, "pretrain.md"), markdown(results))
        return 0
    if args.single_thread:
        # Must happen before NumPy / JAX load their thread pools.
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false"
        ).strip()
        # metabo.runtime.BLAS_THREAD_VARIABLES, spelled out: importing metabo loads NumPy, whose
        # BLAS reads its thread count when it loads.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "METABO_LAPACK_THREADS"):
            os.environ[var] = "1"

    os.environ.setdefault("METABO_JAX_CACHE", "off")
    from metabo.runtime import cpu_model, start_jax

    start_jax()  # the same CPU backend as the CLI
    import jax

    # Compile times must be real: no persistent compilation cache.
    jax.config.update("jax_enable_compilation_cache", False)

    import numpy as np

    from metabo import __version__
    from metabo.data import pad_arrays
    from metabo.gp import GPModel, noisy_gram
    from metabo.io import atomic_write_text
    from metabo.pretrain import fit
    from metabo.pretrain.objectives import nll_objective, task_nll

    repeats = args.repeats
    quick = args.quick
    model = GPModel(mean="constant", kernel="matern52")
    load_before = os.getloadavg()

    def timed(fn):
        """(wall s, cpu s, result) of fn()."""
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        jax.block_until_ready(out)
        return time.perf_counter() - wall, time.process_time() - cpu, out

    def gp_tasks(seed, tasks, points, dim):
        rng = np.random.default_rng(seed)
        params = model.with_hyper(
            model.init(jax.random.PRNGKey(0), dim, y_mean=1.0),
            lengthscale=np.full(dim, 0.4),
            signal=1.5,
            noise=0.05,
        )
        xs, ys = [], []
        for _ in range(tasks):
            x = rng.random((points, dim))
            gram = np.asarray(noisy_gram(model, params, x))
            ys.append(1.0 + np.linalg.cholesky(gram) @ rng.standard_normal(points))
            xs.append(x)
        return pad_arrays(xs, ys)

    results: dict = {}

    if set(args.sections) != set(SECTIONS):
        # A subset: the other sections stay as the last full run wrote them.
        with open(os.path.join(args.out, "pretrain.json"), encoding="utf-8") as fh:
            results = json.load(fh)
    if "abc" in args.sections:
        # ---- (a) ------------------------------------------------------------------------------
        tasks_a, points_a, steps_a = (20, 100, 1000) if not quick else (5, 30, 50)
        padded_a = gp_tasks(0, tasks_a, points_a, 4)
        runs = []
        for r in range(repeats):
            jax.clear_caches()
            wall, cpu, out = timed(lambda r=r: fit(model, padded_a, steps=steps_a, seed=r, progress=False).losses)
            runs.append((wall, cpu))
        # One more, with the compiled step reused, to separate compilation from stepping.
        warm = [
            timed(lambda: fit(model, padded_a, steps=steps_a, seed=0, progress=False).losses)[:2]
            for _ in range(repeats)
        ]
        a_wall = statistics.median(w for w, _ in runs)
        results["a"] = {
            "job": f"{steps_a} Adam steps, {tasks_a} tasks x {points_a} points x 4 dims, constant mean, Matern 5/2 ARD",
            "wall_s": [round(w, 4) for w, _ in runs],
            "cpu_s": [round(c, 4) for _, c in runs],
            "median_wall_s": round(a_wall, 3),
            "median_cpu_s": round(statistics.median(c for _, c in runs), 3),
            "median_wall_s_compiled": round(statistics.median(w for w, _ in warm), 3),
            "final_loss": float(out[-1]),
            "hyperbo_reference_s": HYPERBO_REFERENCE_S,
            "speedup_vs_reference": round(HYPERBO_REFERENCE_S / a_wall, 1),
            "target_s": 10.0,
        }
        print(f"(a) {results['a']['job']}: median {a_wall:.2f} s wall (compile included)", flush=True)

        # ---- (b) and (c) ----------------------------------------------------------------------
        tasks_b, points_b = (24, 500) if not quick else (6, 120)
        padded_b = gp_tasks(1, tasks_b, points_b, 4)
        x, y, mask = (jax.numpy.asarray(a) for a in padded_b)
        params = model.init(jax.random.PRNGKey(1), 4, y_mean=1.0, y_var=1.5)
        grams = np.asarray(jax.jit(jax.vmap(lambda xi: noisy_gram(model, params, xi)))(x))

        def vg(method):
            return jax.jit(
                jax.value_and_grad(lambda p: nll_objective(model, p, x, y, mask, normalize=False, method=method))
            )

        def loop_vg(x=x, y=y, mask=mask):
            # The same objective with a Python loop over tasks in the traced function.
            def loss(p):
                total = 0.0
                for t in range(x.shape[0]):
                    total = total + task_nll(model, p, x[t], y[t], mask[t])
                return total

            return jax.jit(jax.value_and_grad(loss))

        from scipy.linalg import lapack

        def potrf_potri():
            for g in grams:
                chol, _ = lapack.dpotrf(g, lower=1, clean=0)
                lapack.dpotri(chol, lower=1, overwrite_c=1)

        # Compile times, each from cleared caches.
        vmap_compile, loop_compile = [], []
        for _ in range(repeats):
            jax.clear_caches()
            fresh = vg("auto")
            vmap_compile.append(timed(lambda f=fresh: f(params))[0])
            fresh_loop = loop_vg()
            loop_compile.append(timed(lambda f=fresh_loop: f(params))[0])
        compiled = {"default": vg("auto"), "reference": vg("reference")}
        looped = loop_vg()
        for fn in (*compiled.values(), looped):
            jax.block_until_ready(fn(params))

        # Check the three agree before timing them.
        v_default, g_default = compiled["default"](params)
        v_loop, _ = looped(params)
        v_ref, _ = compiled["reference"](params)
        assert np.allclose(v_default, v_ref, rtol=1e-10) and np.allclose(v_default, v_loop, rtol=1e-10)

        def each_cholesky():
            for g in grams:
                np.linalg.cholesky(g)

        from metabo.gp import lapack as gp_lapack

        lapack_threads = gp_lapack.lapack_threads()
        host_values, host_alphas, host_work = np.empty(len(grams)), np.empty(grams.shape[:2]), np.empty_like(grams)
        residuals = np.asarray(y) - 1.0

        def host_lapack():
            # The LAPACK work of metabo's callback alone (potrf, potrs, potri), on its threads.
            gp_lapack.host_nll_batch(grams, residuals, host_values, host_alphas, host_work)

        from concurrent.futures import ThreadPoolExecutor

        cholesky_pool = ThreadPoolExecutor(lapack_threads)

        def threaded_cholesky():
            # NumPy's Cholesky given the same task threads (NumPy's linalg releases the GIL).
            with gp_lapack.blas_single_thread():
                list(cholesky_pool.map(np.linalg.cholesky, grams))

        names = (
            "numpy_cholesky_batched",
            "numpy_cholesky_each",
            "lapack_potrf_potri",
            "numpy_cholesky_threads",
            "metabo_host_lapack",
            "default",
            "reference",
            "python_loop",
        )
        samples = {name: [] for name in names}
        for _ in range(repeats):  # interleaved, so slow phases of a busy machine hit all alike
            samples["numpy_cholesky_batched"].append(timed(lambda: np.linalg.cholesky(grams))[:2])
            samples["numpy_cholesky_each"].append(timed(each_cholesky)[:2])
            samples["lapack_potrf_potri"].append(timed(potrf_potri)[:2])
            samples["numpy_cholesky_threads"].append(timed(threaded_cholesky)[:2])
            samples["metabo_host_lapack"].append(timed(host_lapack)[:2])
            samples["default"].append(timed(lambda: compiled["default"](params))[:2])
            samples["reference"].append(timed(lambda: compiled["reference"](params))[:2])
            samples["python_loop"].append(timed(lambda: looped(params))[:2])
        med = {k: statistics.median(w for w, _ in v) for k, v in samples.items()}
        med_cpu = {k: statistics.median(c for _, c in v) for k, v in samples.items()}
        # NumPy's faster way is the yardstick (the batched call allocates 48 MB each time).
        chol = min(med["numpy_cholesky_batched"], med["numpy_cholesky_each"])
        results["b"] = {
            "job": f"value and gradient of the summed NLL, {tasks_b} tasks x {points_b} points x 4 dims",
            "median_wall_s": {k: round(v, 5) for k, v in med.items()},
            "median_cpu_s": {k: round(v, 5) for k, v in med_cpu.items()},
            "ratio_to_numpy_cholesky": {k: round(v / chol, 2) for k, v in med.items()},
            "samples_wall_s": {k: [round(w, 5) for w, _ in v] for k, v in samples.items()},
            "numpy_cholesky_s": round(chol, 5),
            "lapack_threads": lapack_threads,
            "target_ratio": 3.0,
        }
        results["c"] = {
            "job": "the same value and gradient with a Python loop over tasks in the jitted function",
            "median_run_wall_s": round(med["python_loop"], 5),
            "median_run_ratio_to_vmapped": round(med["python_loop"] / med["default"], 2),
            "median_compile_s": round(statistics.median(loop_compile), 3),
            "median_compile_s_vmapped": round(statistics.median(vmap_compile), 3),
            "compile_ratio": round(statistics.median(loop_compile) / statistics.median(vmap_compile), 1),
            "compile_s_samples": [round(v, 3) for v in loop_compile],
            "compile_s_samples_vmapped": [round(v, 3) for v in vmap_compile],
        }
        print(
            f"(b) {results['b']['job']}: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in med.items()),
            flush=True,
        )

        # ---- (c) with many small tasks: where a loop's compile time and per-task overhead show -----
        tasks_m, points_m = (80, 100) if not quick else (12, 30)
        padded_m = gp_tasks(2, tasks_m, points_m, 4)
        xm, ym, mm = (jax.numpy.asarray(a) for a in padded_m)
        many = {"vmapped": [], "python_loop": []}
        for _ in range(repeats):
            jax.clear_caches()
            vmapped_many = jax.jit(
                jax.value_and_grad(lambda p: nll_objective(model, p, xm, ym, mm, normalize=False))
            )
            many["vmapped"].append(timed(lambda f=vmapped_many: f(params))[0])
            loop_many = loop_vg(xm, ym, mm)
            many["python_loop"].append(timed(lambda f=loop_many: f(params))[0])
        run_many = {"vmapped": [], "python_loop": []}
        for _ in range(repeats):  # the last compiled pair, now warm
            run_many["vmapped"].append(timed(lambda: vmapped_many(params))[0])
            run_many["python_loop"].append(timed(lambda: loop_many(params))[0])
        results["c_many_tasks"] = {
            "job": f"value and gradient of the summed NLL, {tasks_m} tasks x {points_m} points x 4 dims",
            "median_compile_s": {k: round(statistics.median(v), 3) for k, v in many.items()},
            "median_run_s": {k: round(statistics.median(v), 5) for k, v in run_many.items()},
        }
        print(
            f"(c) {tasks_m} tasks: compile {results['c_many_tasks']['median_compile_s']}, run {results['c_many_tasks']['median_run_s']}",
            flush=True,
        )
        print(
            f"(c) loop compile {results['c']['median_compile_s']} s vs vmapped {results['c']['median_compile_s_vmapped']} s",
            flush=True,
        )

    if "d" in args.sections:
        results["d"] = scale_section(repeats if not quick else 1, quick)
    if "e" in args.sections:
        results["e"] = heldout_section(quick)

    # The header describes the run of (a)-(c); (d) and (e) carry their own date and load.
    environment = results.get("environment") if "abc" not in args.sections else None
    results["environment"] = environment or {
        "metabo": __version__,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "backend": jax.default_backend(),
        "float64": bool(jax.config.jax_enable_x64),
        "single_thread": bool(args.single_thread),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "repeats": repeats,
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }

    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "pretrain.json"), json.dumps(results, indent=2) + "\n")
    atomic_write_text(os.path.join(args.out, "pretrain.md"), markdown(results))
    print(f"wrote {os.path.join(args.out, 'pretrain.json')} and pretrain.md")
    return 0


# ---- (d) the user's scale, shipped defaults, one fresh process per job -------------------------
SCALE_CHILD = """
import json, resource, sys, time
tasks, points, seed = (int(v) for v in sys.argv[1:4])
from metabo.runtime import start_jax
start_jax()
import jax
jax.config.update("jax_enable_compilation_cache", False)
import numpy as np
import pandas as pd
from metabo.data import read_log
from metabo.gp import GPModel, noisy_gram
from metabo.pretrain import pretrain
from metabo.bench.synthetic import unit_space

# Tasks drawn from one 4-D GP by NumPy, one at a time (a batched draw of 50 x 2000 points would
# hold 1.6 GB of Gram matrices and be charged to the peak memory measured below).
model = GPModel(mean="constant", kernel="matern52")
params = model.with_hyper(model.init(jax.random.PRNGKey(0), 4, y_mean=1.0),
                          lengthscale=np.full(4, 0.4), signal=1.5, noise=0.05)
gram = jax.jit(lambda x: noisy_gram(model, params, x))
rng = np.random.default_rng(seed)
frames = []
for t in range(tasks):
    x = rng.random((points, 4))
    y = 1.0 + np.linalg.cholesky(np.asarray(gram(x))) @ rng.standard_normal(points)
    frame = pd.DataFrame(x, columns=list(unit_space(4).names))
    frame.insert(0, "task", f"task{t}")
    frame["objective"] = y
    frames.append(frame)
log = read_log(pd.concat(frames, ignore_index=True), unit_space(4))
del frames
jax.clear_caches()  # the draws' compiled Gram function is not pre-training's
start = time.perf_counter()
prior = pretrain(log, progress=False)
wall = time.perf_counter() - start
print(json.dumps({
    "wall_s": wall,
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,  # kB on Linux
    "train_loss": float(prior.losses["train"]),
    "prior": repr(prior),
}))
"""


def scale_section(repeats: int, quick: bool) -> dict:
    """(d): each job ``repeats`` times (at least 3), interleaved, in fresh processes."""
    import subprocess

    jobs = ((5, 50), (10, 300)) if quick else SCALE_JOBS
    repeats = max(int(repeats), 1 if quick else 3)
    env = {**os.environ, "METABO_JAX_CACHE": "off"}
    runs: dict = {job: [] for job in jobs}
    for r in range(repeats):
        for tasks, points in jobs:
            done = subprocess.run(
                [sys.executable, "-c", SCALE_CHILD, str(tasks), str(points), str(r)],
                capture_output=True, text=True, env=env,
            )
            if done.returncode != 0:
                raise RuntimeError(f"(d) {tasks} x {points} failed:\n{done.stderr[-2000:]}")
            runs[(tasks, points)].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"(d) {tasks} tasks x {points} points: {runs[(tasks, points)][-1]['wall_s']:.1f} s", flush=True)
    rows = []
    for (tasks, points), samples in runs.items():
        time_target, memory_target = SCALE_TARGETS.get((tasks, points), (None, None))
        rows.append({
            "tasks": tasks,
            "points": points,
            "median_wall_s": round(statistics.median(v["wall_s"] for v in samples), 2),
            "wall_s": [round(v["wall_s"], 2) for v in samples],
            "median_peak_rss_gb": round(statistics.median(v["peak_rss_gb"] for v in samples), 2),
            "median_train_loss": round(statistics.median(v["train_loss"] for v in samples), 4),
            "time_target_s": time_target,
            "memory_target_gb": memory_target,
        })
    return {
        "job": "metabo.pretrain.pretrain(log) with the shipped defaults, 4-D GP draws, a fresh process per run",
        "prior": runs[jobs[0]][0]["prior"],
        "repeats": repeats,
        "rows": rows,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


# ---- (e) mini-batches against full-data pre-training, held-out tasks --------------------------
def heldout_section(quick: bool) -> dict:
    import numpy as np

    from metabo.data import read_log
    from metabo.integrations.diagnostics import calibrate
    from metabo.pretrain import pretrain
    from metabo.pretrain.train import warp_log

    log = read_log("data/pd1_mini.parquet", "pd1")
    tasks = sorted(log.tasks)
    folds, seeds = (2, (0,)) if quick else (HELDOUT_FOLDS, HELDOUT_SEEDS)
    steps = {"steps": 20} if quick else {}
    variants = {"mini-batches of 128 (shipped)": {}, "every point at every step": {"batch_size": None}}
    samples: dict = {name: [] for name in variants}
    for fold in range(folds):
        heldout = tasks[fold::folds]
        train, test = log.without(heldout), log.select(heldout)
        for seed in seeds:
            for name, options in variants.items():
                start = time.perf_counter()
                prior = pretrain(train, seed=seed, progress=False, **steps, **options)
                wall = time.perf_counter() - start
                cal = calibrate(prior.model, prior.params, warp_log(test, prior.warp), seed=seed)
                samples[name].append({
                    "fold": fold,
                    "seed": seed,
                    "wall_s": wall,
                    "train_loss": float(prior.losses["train"]),
                    "prior_nll": float(np.mean([t.prior_nll for t in cal.tasks])),
                    "predictive_nll": float(np.mean([t.heldout_nll for t in cal.tasks])),
                })
                print(f"(e) fold {fold} seed {seed} {name}: {wall:.1f} s, held-out NLL "
                      f"{samples[name][-1]['prior_nll']:.4f}", flush=True)
    rows = []
    for name, runs in samples.items():
        def stat(key, runs=runs):
            values = np.asarray([r[key] for r in runs])
            return round(float(values.mean()), 4)

        rows.append({
            "variant": name,
            "median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
            "train_loss": stat("train_loss"),
            "heldout_prior_nll": stat("prior_nll"),
            "heldout_predictive_nll": stat("predictive_nll"),
            "runs": runs,
        })
    # Noise: the spread of the held-out NLL between seeds of one variant on the same fold.
    spread = [
        abs(a["prior_nll"] - b["prior_nll"])
        for runs in samples.values()
        for a in runs for b in runs
        if a["fold"] == b["fold"] and a["seed"] < b["seed"]
    ]
    return {
        "job": f"pre-training on data/pd1_mini.parquet, {folds} folds of its {len(tasks)} tasks held out, seeds {list(seeds)}",
        "rows": rows,
        "seed_spread_prior_nll": round(float(np.mean(spread)), 4) if spread else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def markdown(results: dict) -> str:
    a, b, c, m, env = (
        results["a"],
        results["b"],
        results["c"],
        results["c_many_tasks"],
        results["environment"],
    )
    wall, cpu, ratio = b["median_wall_s"], b["median_cpu_s"], b["ratio_to_numpy_cholesky"]
    rows = [
        ("NumPy Cholesky of the Gram matrices, one batched call", "numpy_cholesky_batched"),
        ("NumPy Cholesky of the Gram matrices, one call each", "numpy_cholesky_each"),
        ("LAPACK potrf + potri per task, one after another (SciPy)", "lapack_potrf_potri"),
        (f"NumPy Cholesky, one call each, tasks on {b['lapack_threads']} threads", "numpy_cholesky_threads"),
        (
            f"metabo's host LAPACK work alone (potrf + potrs + potri, tasks on {b['lapack_threads']} threads)",
            "metabo_host_lapack",
        ),
        ("metabo value and gradient (default path)", "default"),
        ("metabo.gp reference path (autodiff through the kernel)", "reference"),
        ("Python loop over tasks in the jitted function", "python_loop"),
    ]
    lines = [
        "# Pre-training speed",
        "",
        f"Float64 on {env['cores']} CPU cores ({env['cpu']}), JAX {env['jax']}, metabo {env['metabo']}, "
        f"{'one thread for XLA and BLAS' if env['single_thread'] else 'default threading'}; medians of "
        f"{env['repeats']} runs, measured in one run of `scripts/bench_pretrain.py"
        f"{' --single-thread' if env['single_thread'] else ''}` on {env['date']}. "
        f"Load average {env['load_average_before'][0]} before, {env['load_average_after'][0]} after "
        "(a shared machine: other jobs ran at the same time"
        + (
            "; with a core busy, multi-threaded BLAS and XLA threads wait on each other and timings "
            "scatter by 10x, so everything here, NumPy included, ran on one thread)."
            if env["single_thread"]
            else ")."
        ),
        "",
        f"**(a)** {a['job']}, compilation included:",
        "",
        "| | median wall (s) | median CPU (s) | target |",
        "| --- | ---: | ---: | ---: |",
        f"| metabo | {a['median_wall_s']:.2f} | {a['median_cpu_s']:.2f} | < {a['target_s']:.0f} |",
        f"| metabo, step already compiled | {a['median_wall_s_compiled']:.2f} | | |",
        f"| public HyperBO reference (float32, from DESIGN.md) | {a['hyperbo_reference_s']:.0f} | | |",
        "",
        f"Speed-up over the reference: {a['speedup_vs_reference']}x.",
        "",
        f"**(b)** {b['job']}:",
        "",
        "| | median wall (ms) | median CPU (ms) | / NumPy Cholesky (faster way) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key in rows:
        lines.append(f"| {label} | {1000 * wall[key]:.1f} | {1000 * cpu[key]:.1f} | {ratio[key]:.2f} |")
    lines += [
        "",
        f"Target: at most {b['target_ratio']:.0f}x NumPy's Cholesky (the faster of its two ways, as NumPy "
        f"runs them: {ratio['default']:.2f}x here). An exact gradient needs every entry of K^-1 for the "
        "trace term tr(K^-1 dK/dtheta): potrf + potri, about 3x a Cholesky's flops, is the floor of any "
        "exact method. metabo's default path builds the Gram matrix in one XLA pass, runs potrf, potrs "
        f"and potri in LAPACK in a host callback whose {b['lapack_threads']} threads take the tasks in "
        "parallel, and differentiates kernel and likelihood together by a hand-written rule (one more "
        "pass over the n x n arrays and one thin matrix product). Given the same task threads, NumPy's "
        f"Cholesky alone takes the time in its row: against that, metabo is "
        f"{wall['default'] / wall['numpy_cholesky_threads']:.2f}x.",
        "",
        f"**(c)** {c['job']}:",
        "",
        "| | compile (s) | run (ms) |",
        "| --- | ---: | ---: |",
        f"| vmapped over tasks (default) | {c['median_compile_s_vmapped']:.2f} | {1000 * wall['default']:.1f} |",
        f"| Python loop over tasks | {c['median_compile_s']:.2f} | {1000 * c['median_run_wall_s']:.1f} |",
        "",
        f"The loop compiles {c['compile_ratio']}x slower and runs {c['median_run_ratio_to_vmapped']}x the vmapped time.",
        "",
        f"With more, smaller tasks ({m['job']}):",
        "",
        "| | compile (s) | run (ms) |",
        "| --- | ---: | ---: |",
        f"| vmapped over tasks (default) | {m['median_compile_s']['vmapped']:.2f} | {1000 * m['median_run_s']['vmapped']:.1f} |",
        f"| Python loop over tasks | {m['median_compile_s']['python_loop']:.2f} | {1000 * m['median_run_s']['python_loop']:.1f} |",
        "",
    ]
    if "d" in results:
        d = results["d"]
        lines += [
            f"**(d)** {d['job']}: {d['prior']}; medians of {d['repeats']} runs, measured {d['date']} "
            f"(load average {d['load_average'][0]} after).",
            "",
            "| tasks x points | wall, compile included (s) | peak memory (GB) | loss reached (per point) | target |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for row in d["rows"]:
            target = [f"< {row['time_target_s']:g} s"] if row["time_target_s"] else []
            target += [f"< {row['memory_target_gb']:g} GB"] if row["memory_target_gb"] else []
            lines.append(
                f"| {row['tasks']} x {row['points']} | {row['median_wall_s']:.2f} | {row['median_peak_rss_gb']:.2f} "
                f"| {row['median_train_loss']:.4f} | {', '.join(target)} |"
            )
        lines.append("")
    if "e" in results:
        e = results["e"]
        lines += [
            f"**(e)** {e['job']}, measured {e['date']}: held-out per-point NLL, lower is better (joint: the "
            "held-out task's warped scores under the prior; predictive: its other half given half of "
            "its points). Means over folds and seeds.",
            "",
            "| pre-training | wall (s, median) | train loss | held-out NLL, joint | held-out NLL, predictive |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for row in e["rows"]:
            lines.append(
                f"| {row['variant']} | {row['median_wall_s']:.1f} | {row['train_loss']:.4f} | "
                f"{row['heldout_prior_nll']:.4f} | {row['heldout_predictive_nll']:.4f} |"
            )
        if e.get("seed_spread_prior_nll") is not None:
            lines += ["", f"Noise: two seeds of one variant on one fold differ by {e['seed_spread_prior_nll']:.4f} "
                      "in joint held-out NLL on average."]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

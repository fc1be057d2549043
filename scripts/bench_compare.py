"""Side by side against an earlier commit: is any speed figure worse than before?

Machines differ and a shared machine's load drifts, so a figure from another day is no
baseline. This script checks out ``--against`` (a git revision) into a temporary worktree and
times both trees in alternation, each measurement in a fresh process:

  fit       pre-training (a) of ``bench_pretrain.py``: 1000 Adam steps, 20 tasks x 100 points x
            4-D, constant mean, Matern 5/2, compile included (no compilation cache)
  suggest   ``metabo suggest`` from process start to output (20 trials, PD1 space, no prior),
            warm compilation cache (one cache per tree, filled first)

Writes ``compare.json`` and ``compare.md`` to ``--out`` (default ``benchmarks/``).

  python scripts/bench_compare.py --against 7fed0bc --reps 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in either tree: only names both have (fit, pad_arrays, GPModel, noisy_gram).
FIT_PAYLOAD = """
import json, time
from metabo.runtime import start_jax
start_jax()
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from metabo.data import pad_arrays
from metabo.gp import GPModel, noisy_gram
from metabo.pretrain import fit
model = GPModel(mean="constant", kernel="matern52")
rng = np.random.default_rng(0)
truth = model.with_hyper(model.init(jax.random.PRNGKey(0), 4, y_mean=1.0), lengthscale=np.full(4, 0.4), signal=1.5, noise=0.05)
xs, ys = [], []
for _ in range(20):
    x = rng.random((100, 4))
    ys.append(1.0 + np.linalg.cholesky(np.asarray(noisy_gram(model, truth, x))) @ rng.standard_normal(100))
    xs.append(x)
padded = pad_arrays(xs, ys)
start = time.perf_counter()
fit(model, padded, steps=1000, seed=0, progress=False)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def write_suggest_inputs(work: Path) -> list[str]:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from metabo.space import pd1_space

    space = pd1_space()
    unit = np.random.default_rng(3).random((20, space.dim))
    configs = space.configs_from_unit(unit)
    errors = np.exp(-2.0 - np.sum((unit - 0.3) ** 2, axis=1))
    space.save(work / "space.json")
    with open(work / "trials.csv", "w") as fh:
        fh.write(",".join([*space.names, "objective"]) + "\n")
        for config, err in zip(configs, errors, strict=True):
            fh.write(",".join([*(repr(config[n]) for n in space.names), repr(float(err))]) + "\n")
    return ["-m", "metabo", "suggest", "--space", "space.json", "--history", "trials.csv", "--n", "1"]


def timed(command: list[str], tree: Path, work: Path, cache: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "METABO_JAX_CACHE": cache}
    env.pop("JAX_ENABLE_X64", None)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *command], cwd=work, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed in {tree}: {result.stderr[-2000:]}")
    if command[0] == "-c":
        return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the git revision to compare with (e.g. a commit before a change)")
    parser.add_argument("--reps", type=int, default=6, help="alternating runs per tree and measurement")
    parser.add_argument("--out", default=str(ROOT / "benchmarks"))
    args = parser.parse_args(argv)
    revision = subprocess.run(
        ["git", "rev-parse", "--short", args.against], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    current = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), revision], cwd=ROOT, check=True, capture_output=True)
        try:
            trees = {f"before ({revision})": old, f"this tree ({current}{'+' if _dirty() else ''})": ROOT}
            suggest = write_suggest_inputs(tmp)
            caches = {name: str(tmp / f"cache{i}") for i, name in enumerate(trees)}
            for name, tree in trees.items():
                timed(suggest, tree, tmp, caches[name])  # fills this tree's cache
            times: dict[str, dict[str, list[float]]] = {name: {"fit": [], "suggest": []} for name in trees}
            for rep in range(args.reps):
                for name, tree in trees.items():
                    times[name]["fit"].append(timed(["-c", FIT_PAYLOAD], tree, tmp, "off"))
                    times[name]["suggest"].append(timed(suggest, tree, tmp, caches[name]))
                print(f"bench_compare: round {rep + 1}/{args.reps}", file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    results = {
        "against": revision,
        "head": current,
        "reps": args.reps,
        "cpus": os.cpu_count(),
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "times_s": {name: {k: [round(v, 3) for v in vs] for k, vs in m.items()} for name, m in times.items()},
        "median_s": {name: {k: round(statistics.median(vs), 3) for k, vs in m.items()} for name, m in times.items()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "compare.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def _dirty() -> bool:
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True)
    return bool(status.stdout.strip())


def markdown(results: dict) -> str:
    names = list(results["median_s"])
    rows = [
        "# Side by side with an earlier commit",
        "",
        f"`python scripts/bench_compare.py --against {results['against']} --reps {results['reps']}` on "
        f"{results['measured_at']} ({results['cpus']} CPUs, load average after {results['load_average_after']}): "
        "the two trees alternate, each measurement in a fresh process; medians, all runs in `compare.json`.",
        "",
        f"| measurement | {' | '.join(names)} | ratio | range {names[0]} | range {names[1]} |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    labels = {
        "fit": "pre-training (a), 1000 Adam steps, 20 x 100 x 4-D, compile included",
        "suggest": "`metabo suggest` cold start, warm cache",
    }
    for key, label in labels.items():
        before, after = (results["median_s"][n][key] for n in names)
        spans = [results["times_s"][n][key] for n in names]
        rows.append(
            f"| {label} | {before:.2f} s | {after:.2f} s | {after / before:.2f} | "
            f"{min(spans[0]):.2f}-{max(spans[0]):.2f} s | {min(spans[1]):.2f}-{max(spans[1]):.2f} s |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

"""Many workers on one study (issue 19, item 5): suggestion latency and throughput with N
concurrent worker processes on one SQLite Optuna study, metabo's sampler next to Optuna's
TPESampler in the same run; writes JSON + markdown.

Each sampler gets a fresh study and N processes (default 8) running an ask/tell loop: ask, draw
the four PD1 parameters (the suggestion: timed from before ``study.ask()`` until the last
parameter is drawn), "train" for ``--train`` seconds (default 0.2), tell. metabo's sampler uses
a prior pre-trained on the bundled pd1_mini log (``metabo pretrain``, shipped defaults) and, as
in production, waits for lower-numbered trials' claims (so its latency includes queueing behind
peers), with JAX's persistent compilation cache as every `metabo` command has it (one cold folder
per sampler, shared by its workers). Reported per sampler: p50 / p99 suggestion latency over all suggestions and over those
after each worker's first two (JAX compiles per observation bucket in every new process), trials
per minute (finished trials over the wall time from the first ask to the last tell), and the
number of distinct configurations.

Usage: python scripts/bench_workers.py [--workers 8] [--trials 15] [--out benchmarks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = ("metabo", "tpe")


def worker(args) -> None:
    # As in every `metabo` command (and so `metabo run`): JAX's persistent compilation cache, here
    # one fresh folder shared by this run's workers (METABO_JAX_CACHE, set by main()).
    from metabo.runtime import configure_jax

    configure_jax()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from metabo.space import load_space

    space = load_space(str(ROOT / "data" / "pd1_mini_space.json"))
    if args.sampler == "metabo":
        from metabo.commands.common import load_prior
        from metabo.integrations.optuna import PretrainedGPSampler

        sampler = PretrainedGPSampler(load_prior(args.prior), seed=args.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=args.seed)
    study = optuna.load_study(study_name=args.study, storage=args.storage, sampler=sampler)
    records = []
    for _ in range(args.trials):
        t0 = time.time()
        trial = study.ask()
        values = {}
        for p in space.parameters:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        t1 = time.time()
        time.sleep(args.train)
        unit = space.to_unit(np.asarray([[values[n] for n in space.names]]))[0]
        study.tell(trial, float(np.sum((unit - 0.3) ** 2)))
        records.append({"start": t0, "suggested": t1, "told": time.time(), "number": trial.number})
    Path(args.log).write_text(json.dumps(records))


def run_sampler(name: str, args, tmp: Path, prior: Path) -> dict:
    import optuna

    storage = f"sqlite:///{tmp / f'{name}.db'}"
    optuna.create_study(study_name=name, storage=storage, direction="minimize")
    procs = []
    for i in range(args.workers):
        cmd = [sys.executable, __file__, "--worker", "--sampler", name, "--storage", storage, "--study", name]
        cmd += ["--prior", str(prior), "--trials", str(args.trials), "--train", str(args.train), "--seed", str(i)]
        cmd += ["--log", str(tmp / f"{name}-{i}.json")]
        procs.append(subprocess.Popen(cmd))
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"bench_workers: a {name} worker failed")
    per_worker = [json.loads((tmp / f"{name}-{i}.json").read_text()) for i in range(args.workers)]
    latency = np.asarray([r["suggested"] - r["start"] for w in per_worker for r in w])
    warm = np.asarray([r["suggested"] - r["start"] for w in per_worker for r in w[2:]])
    first = min(r["start"] for w in per_worker for r in w)
    last = max(r["told"] for w in per_worker for r in w)
    study = optuna.load_study(study_name=name, storage=storage)
    configs = {tuple(sorted(t.params.items())) for t in study.trials}
    return {
        "suggestions": int(latency.size),
        "latency_p50_s": float(np.percentile(latency, 50)),
        "latency_p99_s": float(np.percentile(latency, 99)),
        "warm_latency_p50_s": float(np.percentile(warm, 50)),
        "warm_latency_p99_s": float(np.percentile(warm, 99)),
        "trials_per_minute": float(len(study.trials) / (last - first) * 60.0),
        "distinct_configurations": len(configs),
        "trials": len(study.trials),
        "best_value": float(study.best_value),
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    s = report["settings"]
    lines = [
        "# Many workers on one SQLite study",
        "",
        f"`python scripts/bench_workers.py --workers {s['workers']} --trials {s['trials']}` on {m['cpus']} CPUs, "
        f"{m['date']} (load before {m['load_before']}): {s['workers']} worker processes x {s['trials']} trials per "
        f"sampler, each trial 'trains' {s['train_s']} s; 4-D PD1 space; metabo with a prior pre-trained on pd1_mini.",
        "",
        "| sampler | suggestion p50 | p99 | p50 after 2 per worker | p99 after 2 | trials / min | distinct / trials |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"| {name} | {r['latency_p50_s']:.3f} s | {r['latency_p99_s']:.3f} s | {r['warm_latency_p50_s']:.3f} s | "
            f"{r['warm_latency_p99_s']:.3f} s | {r['trials_per_minute']:.0f} | "
            f"{r['distinct_configurations']} / {r['trials']} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--trials", type=int, default=15, help="trials per worker")
    ap.add_argument("--train", type=float, default=0.2, help="seconds each trial 'trains'")
    ap.add_argument("--out", default=str(ROOT / "benchmarks"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--sampler", "--storage", "--study", "--prior", "--log"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    from metabo.io import atomic_write_text

    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["METABO_JAX_CACHE"] = str(tmp / "jax-cache")  # cold at the start of each sampler's run
        prior = tmp / "prior.npz"
        metabo = [sys.executable, "-m", "metabo"]
        subprocess.run(
            [*metabo, "pretrain", str(ROOT / "data" / "pd1_mini.parquet"), "--space", str(ROOT / "data" / "pd1_mini_space.json")]
            + ["--out", str(prior), "--quiet"],
            check=True,
        )
        results = {}
        for name in SAMPLERS:
            os.environ["METABO_JAX_CACHE"] = str(tmp / f"jax-cache-{name}")
            print(f"bench_workers: {name} ...", file=sys.stderr, flush=True)
            results[name] = run_sampler(name, args, tmp, prior)
    import optuna

    report = {
        "machine": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "optuna": optuna.__version__,
            "load_before": load_before,
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
        "settings": {"workers": args.workers, "trials": args.trials, "train_s": args.train},
        "results": results,
    }
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "workers.json"), json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    atomic_write_text(os.path.join(args.out, "workers.md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

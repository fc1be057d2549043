"""Ablate the shipped pre-training defaults (``metabo/defaults.py``) by leave-one-task-out.

    python experiments/ablate_defaults.py [--out /tmp/ablate] [--variants base,warp-none,...]

For every variant (a dict of ``hyperbo`` options, one factor changed around the current
defaults) and each part of the bundled data (``part == "matched"``: 250 shared points per task;
``"unmatched"``: 150 own points per task), runs

    metabo benchmark OUT/data/<part>.parquet --space data/pd1_mini_space.json \
        --methods hyperbo,random --budget 25 --seeds 1 --workers 2 \
        --option hyperbo.KEY=VALUE ... --out OUT/<variant>-<part>

in sequence (rerunning resumes: finished units are kept), then reads each run's
``results.parquet`` and prints the mean normalized regret of ``hyperbo`` after 1, 5, 10 and 25
evaluations, averaged over tasks, on the tuning half of the tasks (every other task of the
sorted task list, starting with the first), the other half and all tasks. The variant chosen is
the one with the lowest score on the tuning half (mean over budgets 5, 10, 25 and both parts);
ties go to the earlier variant in ``VARIANTS`` (``base`` first). The table is also written to
``OUT/table.md`` and the numbers to ``OUT/results.json``. Results are in
``experiments/ABLATIONS.md``.

Other data and budgets (the pd1_scale sweep of ``experiments/ABLATIONS.md``):

    python experiments/ablate_defaults.py --data data/pd1_scale/pd1_scale.parquet \
        --space data/pd1_scale/pd1_scale_space.json --budget 100 --budgets 1,10,25,50,100 \
        --targets tuning --variants base,transfer_guard,...

``--budgets``: the budgets reported (the score averages all but the first); ``--targets
tuning``: only the tuning half are targets (training still uses every other task), and only
that half is reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "pd1_mini.parquet"
SPACE = ROOT / "data" / "pd1_mini_space.json"
PARTS = ("matched", "unmatched")
BUDGETS = (1, 5, 10, 25)
SCORE_BUDGETS = (5, 10, 25)

# One factor at a time around the current defaults (mean=mlp, kernel=matern52,
# pretrain_steps=300, batch_size=128, learning_rate=0.02, warp=quantile).
VARIANTS: list[tuple[str, dict]] = [
    ("base", {}),
    ("warp=standardize", {"warp": "standardize"}),
    ("warp=none", {"warp": "none"}),
    ("mean=constant", {"mean": "constant"}),
    ("mean=constant,warp=standardize", {"mean": "constant", "warp": "standardize"}),
    ("pretrain_steps=1000", {"pretrain_steps": 1000}),
    ("batch_size=null", {"batch_size": None}),
    ("kernel=matern32", {"kernel": "matern32"}),
    ("learning_rate=0.01", {"learning_rate": 0.01}),
    # Issue 15 (pd1_scale): the core's negative-transfer guard, pre-training length and batch,
    # the acquisition at the first steps.
    ("transfer_guard", {"transfer_guard": True}),
    ("transfer_guard+margin=1", {"transfer_guard": True, "guard_margin": 1.0}),
    ("batch_size=256", {"batch_size": 256}),
    ("acquisition=ucb", {"acquisition": "ucb"}),
    ("mean_hidden=64x64", {"mean_hidden": [64, 64]}),
    ("kernel=matern52", {"kernel": "matern52"}),
]


def slug(name: str) -> str:
    return name.replace("=", "-").replace(",", "+")


def split_tasks(tasks) -> tuple[list[str], list[str]]:
    """Tuning half: every other task of the sorted list (0, 2, 4, ...); the rest."""
    ordered = sorted(tasks)
    return ordered[0::2], ordered[1::2]


def metabo_command() -> list[str]:
    exe = shutil.which("metabo")
    return [exe] if exe else [sys.executable, "-m", "metabo"]


def run_variant(name, options, part, data, args) -> Path:
    out = args.out / f"{slug(name)}-{part}"
    cmd = [
        *metabo_command(),
        "benchmark",
        str(data),
        "--space",
        str(args.space),
        "--methods",
        "hyperbo,random",
        "--budget",
        str(args.budget),
        "--seeds",
        "1",
        "--workers",
        str(args.workers),
        "--out",
        str(out),
    ]
    if args.tasks:
        cmd += ["--tasks", ",".join(args.tasks)]
    for key, value in options.items():
        cmd += ["--option", f"hyperbo.{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    if (out / "summary.json").exists() and (out / "results.parquet").exists():
        print(f"[{name} / {part}] done already: {out}", flush=True)
        return out
    print(f"[{name} / {part}] $ {' '.join(cmd)}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if args.quiet else None)
    print(f"[{name} / {part}] {time.time() - t0:.0f} s", flush=True)
    return out


def regrets(out: Path, budgets=BUDGETS) -> pd.DataFrame:
    """[method, task, step] -> normalized regret after `step` evaluations (mean over seeds)."""
    df = pd.read_parquet(out / "results.parquet")
    df = df[df["step"].isin(budgets)]
    return df.groupby(["method", "task", "step"])["normalized_regret"].mean()


def table(
    results: dict, tuning: list[str], other: list[str], budgets=BUDGETS, score_budgets=SCORE_BUDGETS
) -> tuple[str, dict]:
    subsets = {"tuning": tuning, "other": other, "all": sorted(tuning + other)} if other else {"tuning": tuning}
    rows, numbers = [], {}
    names = list(results)
    for name in names:
        numbers[name] = {}
        for subset, tasks in subsets.items():
            entry = {}
            for part in PARTS:
                r = results[name][part]
                method = "random" if name == "random" else "hyperbo"
                entry[part] = {b: float(r.loc[method].loc[tasks].xs(b, level="step").mean()) for b in budgets}
            entry["score"] = sum(entry[p][b] for p in PARTS for b in score_budgets) / (
                len(PARTS) * len(score_budgets)
            )
            numbers[name][subset] = entry
    header = (
        "| variant | tasks | "
        + " | ".join(f"{p[0].upper()}@{b}" for p in PARTS for b in budgets)
        + " | score |\n"
        "| --- | --- | " + " | ".join("---:" for _ in PARTS for _ in budgets) + " | ---: |"
    )
    rows.append(header)
    for subset in subsets:
        for name in names:
            e = numbers[name][subset]
            cells = " | ".join(f"{e[p][b]:.4f}" for p in PARTS for b in budgets)
            rows.append(f"| {name} | {subset} | {cells} | {e['score']:.4f} |")
    return "\n".join(rows), numbers


def versus_base(results: dict, score_budgets=SCORE_BUDGETS) -> str:
    """Per-(task, part, budget in score_budgets) wins / ties / losses of each variant against base
    on the tasks run (lower regret wins; equal within 1e-12 is a tie)."""
    if "base" not in results:
        return ""
    lines = [
        f"| variant | wins | ties | losses (vs base, tasks run, b in {'/'.join(map(str, score_budgets))}, both parts) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in results:
        if name in ("base", "random"):
            continue
        wins = ties = losses = 0
        for part in PARTS:
            variant = results[name][part].loc["hyperbo"]
            base = results["base"][part].loc["hyperbo"]
            for budget in score_budgets:
                diff = variant.xs(budget, level="step") - base.xs(budget, level="step")
                wins += int((diff < -1e-12).sum())
                losses += int((diff > 1e-12).sum())
                ties += int((diff.abs() <= 1e-12).sum())
        lines.append(f"| {name} | {wins} | {ties} | {losses} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--space", type=Path, default=SPACE)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ablate"))
    ap.add_argument("--budget", type=int, default=25)
    ap.add_argument(
        "--budgets",
        default=",".join(map(str, BUDGETS)),
        help="comma-separated budgets to report; the score averages all but the first",
    )
    ap.add_argument(
        "--targets",
        choices=("all", "tuning"),
        default="all",
        help="target tasks: all, or only the tuning half (the table then reports that half only)",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--variants", default=None, help="comma-separated names (default: all); 'list' prints them"
    )
    ap.add_argument("--table-only", action="store_true", help="only read finished runs, run nothing")
    ap.add_argument("--quiet", action="store_true", help="hide the benchmark's own output")
    args = ap.parse_args(argv)

    variants = VARIANTS
    if args.variants == "list":
        for name, options in VARIANTS:
            print(name, json.dumps(options))
        return 0
    if args.variants:
        wanted = args.variants.split(",")
        known = dict(VARIANTS)
        unknown = [w for w in wanted if w not in known]
        if unknown:
            ap.error(f"unknown variants {unknown}; known: {list(known)}")
        variants = [(w, known[w]) for w in wanted]
    args.out.mkdir(parents=True, exist_ok=True)

    budgets = tuple(int(b) for b in args.budgets.split(","))
    score_budgets = budgets[1:]
    if max(budgets) > args.budget:
        ap.error(f"--budgets {args.budgets} goes beyond --budget {args.budget}")
    log = pd.read_parquet(args.data)
    tuning, other = split_tasks(log["task"].unique())
    if args.targets == "tuning":
        args.tasks, other = tuning, []
    else:
        args.tasks = None
    files = {}
    for part in PARTS:
        files[part] = args.out / "data" / f"{args.data.stem}_{part}.parquet"
        if not files[part].exists():
            files[part].parent.mkdir(parents=True, exist_ok=True)
            log[log["part"] == part].to_parquet(files[part], index=False)

    t0 = time.time()
    results = {}
    for name, options in variants:
        outs = {}
        for part in PARTS:
            out = args.out / f"{slug(name)}-{part}"
            if args.table_only:
                if not (out / "results.parquet").exists():
                    break
            else:
                run_variant(name, options, part, files[part], args)
            outs[part] = regrets(out, budgets)
        if len(outs) == len(PARTS):
            results[name] = outs
    if not results:
        print("no finished runs", file=sys.stderr)
        return 1
    # random search for reference (the same in every run: its options do not change).
    first = next(iter(results.values()))
    results["random"] = first

    text, numbers = table(results, tuning, other, budgets, score_budgets)
    candidates = [n for n in results if n != "random"]
    chosen = min(candidates, key=lambda n: numbers[n]["tuning"]["score"])  # min keeps the first of ties
    print(
        f"\ntuning half ({len(tuning)}): {', '.join(tuning)}\nother half ({len(other)}): {', '.join(other)}\n"
    )
    print(
        "Mean normalized regret of hyperbo after b evaluations (M = matched, U = unmatched), "
        f"averaged over tasks; score = mean over b in {score_budgets} and both parts\n"
    )
    print(text)
    wtl = versus_base(results, score_budgets)
    if wtl:
        print("\n" + wtl)
        text += "\n\n" + wtl
    print(f"\nchosen on the tuning half: {chosen} (score {numbers[chosen]['tuning']['score']:.4f})")
    if not args.table_only:
        print(f"elapsed: {time.time() - t0:.0f} s")
    (args.out / "table.md").write_text(text + "\n")
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "tuning": tuning,
                "other": other,
                "chosen": chosen,
                "variants": dict(variants),
                "numbers": numbers,
            },
            indent=1,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

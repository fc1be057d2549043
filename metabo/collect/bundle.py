"""Writing a finished collection as bundled files, and its data card.

``write_bundle`` writes into a data folder (``data/`` for the bundled dataset):

  {name}.parquet                  metabo tuning log (no curves) + extra columns
  {name}_space.json               ``pd1_space()``
  {name}_summary.json             per-task counts, diverged shares, errors, timing, command
  pd1/pd1_matched_phase0_results.jsonl.gz    PD1 schema, with curves
  pd1/pd1_unmatched_phase0_results.jsonl.gz
  {name}_curves.parquet (+ .trials.parquet)  the validation curves as ``metabo.curves.Curves``
  README.md                       the data card, rendered from the summary
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from metabo.collect.runner import CollectionPlan, read_runs, summarize
from metabo.collect.tasks import DATASET_INFO, MODELS
from metabo.io import atomic_write_text
from metabo.space import pd1_space

LOG_COLUMNS = [
    "task",
    "initial_learning_rate",
    "one_minus_momentum",
    "decay_power",
    "decay_steps_factor",
    "objective",
    "status",
    "dataset",
    "model",
    "batch_size",
    "epochs",
    "total_steps",
    "part",
    "config_index",
    "final_objective",
    "best_index",
    "diverged_step",
    "train_cost_s",
    "seed",
]


def write_bundle(
    frame: pd.DataFrame,
    plan: CollectionPlan,
    out_dir,
    data_dir,
    name: str = "pd1_mini",
    command: str | None = None,
    max_curve_points: int = 10,
    saturation: dict[str, Any] | None = None,
) -> list[str]:
    """Write the bundled files for a finished collection; returns the paths written.

    ``saturation``: the data set's saturation checks per part
    (``metabo.bench.saturation.part_saturation``), shown on the card when given."""
    from metabo.curves import curves_from_lists, trials_path
    from metabo.data import read_log, write_frame
    from metabo.datasets.pd1 import write_pd1_jsonl
    from metabo.version import __version__

    data_dir = Path(data_dir)
    space = pd1_space()
    log = frame[LOG_COLUMNS].copy()
    read_log(log, space, duplicates="error")  # the bundled log must validate as it is
    written = []

    path = data_dir / f"{name}.parquet"
    write_frame(log, path)
    written.append(path)
    path = data_dir / f"{name}_space.json"
    space.save(path)
    written.append(path)
    for part in ("matched", "unmatched"):
        rows = frame[frame["part"] == part]
        if len(rows):
            path = data_dir / "pd1" / f"pd1_{part}_phase0_results.jsonl.gz"
            write_pd1_jsonl(rows, path, max_curve_points=max_curve_points)
            written.append(path)
    path = data_dir / f"{name}_curves.parquet"
    curves_from_lists(frame, space).save(path)  # every evaluation, for the cost-aware comparison
    written += [path, Path(trials_path(path))]

    runs = read_runs(out_dir)  # every call that trained shards of this folder
    summary: dict[str, Any] = summarize(frame)
    summary.update(
        {
            "name": name,
            "plan": plan.to_dict(),
            "command": command or (runs[-1].get("command") if runs else None),
            "collection_wall_s": float(sum(r.get("elapsed_s", 0.0) for r in runs)),
            "collection_cpu_s": _collection_cpu(runs),
            "runs": [
                {k: r.get(k) for k in ("finished_at", "elapsed_s", "driver_cpu_s", "shards_run", "engine", "workers", "xla_flags")}
                for r in runs
            ],
            "software": _versions(__version__),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        }
    )
    if saturation is not None:
        summary["saturation"] = saturation
    path = data_dir / f"{name}_summary.json"
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    written.append(path)
    path = data_dir / "README.md"
    atomic_write_text(path, render_data_card(summary))
    written.append(path)
    return [str(p) for p in written]


def _collection_cpu(runs: list[dict[str, Any]]) -> float | None:
    """CPU time of the collecting processes, when every run trained in its own process."""
    if runs and all(r.get("workers") == 0 and r.get("engine") == "local" and r.get("driver_cpu_s") is not None for r in runs):
        return float(sum(r["driver_cpu_s"] for r in runs))
    return None


def _versions(metabo_version: str) -> dict[str, str]:
    from importlib import metadata

    out = {"metabo": metabo_version, "python": platform.python_version()}
    for package in ("jax", "jaxlib", "optax", "numpy", "scikit-learn", "mnist1d", "mlxtend"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def _saturation_lines(saturation: dict[str, Any] | None) -> list[str]:
    """The card's "hard enough?" section (nothing when the summary has no checks)."""
    if not saturation:
        return []
    lines = [
        "## Hard enough to compare methods?",
        "",
        "Leave-one-task-out on each task's pool, as `metabo reproduce` runs it (`metabo.bench.saturation`):",
        "",
    ]
    for part, checks in saturation.items():
        lines.append(
            f"- {part}: random search's mean normalized regret after {checks['random_budget']} evaluations "
            f"{checks['random_search_regret']:.3f} (expected value over its random orders; at least 0.05 wanted)"
        )
        if "zero_shot_solved" in checks:
            solved = checks["zero_shot_solved"]
            lines.append(
                f"- {part}: the zero-shot portfolio (built from the other tasks) reaches regret 0 within "
                f"{checks['zero_shot_budget']} evaluations on {len(solved)} of {len(checks['tasks'])} tasks "
                f"({checks['zero_shot_solved_share']:.0%}; at most a third wanted)"
                + (f": {', '.join(f'`{t}`' for t in solved)}" if solved else "")
            )
    return [*lines, ""]


def _fmt_minutes(seconds: float) -> str:
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def render_data_card(summary: dict[str, Any]) -> str:
    """The data card (Markdown) for a bundle summary."""
    plan = summary["plan"]
    name = summary["name"]
    tasks = summary["tasks"]
    lines = [
        f"# `{name}`: a PD1-style tuning dataset",
        "",
        "Real hyperparameter-tuning results, collected by `metabo collect` on this repository's machine: "
        f"{len(tasks)} tasks (dataset x model x batch size), each trained with SGD with Nesterov momentum "
        "and PD1's polynomial learning-rate decay over PD1's 4-D search space. Like PD1 it has a "
        f"*matched* part (the same {plan['n_matched']} Halton points on every task) and an *unmatched* "
        f"part ({plan['n_unmatched']} fresh random points per task). {summary['trials']} trials in all; "
        "diverged runs are kept with status `diverged`.",
        "",
        "## Files",
        "",
        "| file | contents |",
        "| --- | --- |",
        f"| `{name}.parquet` | metabo tuning log, one row per trial: `task`, the 4 parameters, `objective`, `status`, "
        "and extras `dataset`, `model`, `batch_size`, `epochs`, `total_steps`, `part` (matched/unmatched), `config_index`, "
        "`final_objective`, `best_index`, `diverged_step`, `train_cost_s`, `seed` |",
        f"| `{name}_space.json` | the search space (`metabo.space.pd1_space()`), objective `objective` minimized with HyperBO's `neg_log` warp |",
        "| `pd1/pd1_matched_phase0_results.jsonl.gz`, `pd1/pd1_unmatched_phase0_results.jsonl.gz` | the same trials in PD1's "
        "JSON-lines schema (`study_group`, `hps.*`, `best_valid/error_rate`, `status` done/diverged), with the "
        f"validation-error and training-loss curves (`valid/error_rate`, `train/ce_loss`, `global_step`, {plan['num_evals']} points) |",
        f"| `{name}_curves.parquet`, `{name}_curves.trials.parquet` | the validation-error curves as `metabo.curves.Curves` "
        "(long table `task, trial, step, value`, float32, and one row per trial: parameters, `status`, `part`, "
        "`config_index`), every evaluation: what `metabo benchmark --curves`, `metabo curve-model` and the cost-aware "
        "early-stopping comparison read |",
        f"| `{name}_summary.json` | the numbers in this card, the plan, software versions |",
        "",
        "Load it with:",
        "",
        "```python",
        "from metabo.datasets import load_bundled, bundled_frame",
        f'log = load_bundled("{name}")      # TuningLog over pd1_space()',
        f'frame = bundled_frame("{name}")   # all columns',
        "from metabo.datasets.pd1 import read_pd1_frame",
        'curves = read_pd1_frame(["data/pd1/pd1_matched_phase0_results.jsonl.gz"], include_curves=True)',
        "from metabo.curves import Curves",
        "from metabo.datasets.bundled import bundled_path",
        f'curves = Curves.load(bundled_path("{name}", "_curves.parquet"), log.space)  # Curves: points + trials',
        "```",
        "",
        "## Search space and training",
        "",
        "| parameter | PD1 name | range | scale |",
        "| --- | --- | --- | --- |",
        "| `initial_learning_rate` | `hps.lr_hparams.initial_value` | [1e-5, 10] | log |",
        "| `one_minus_momentum` | 1 - `hps.opt_hparams.momentum` | [1e-3, 1] | log |",
        "| `decay_power` | `hps.lr_hparams.power` | [0.1, 2] | linear |",
        "| `decay_steps_factor` | `hps.lr_hparams.decay_steps_factor` | [0.01, 0.99] | linear |",
        "",
        "- Optimizer: `optax.trace(decay=1 - one_minus_momentum, nesterov=True)` followed by the learning rate "
        "lr(t) = (init - end) (1 - min(t, D)/D)^power + end, with end = 0.01 init, D = max(int(decay_steps_factor * total_steps), 1), "
        "t = 0, 1, ... the update index. No weight decay, no data augmentation, float32.",
        "- Loss: softmax cross-entropy. Weights: He-normal (last layer scaled 1/sqrt(fan_in)), zero biases.",
        f"- Data: each dataset is split once (seed 0) into training and validation parts ({plan['valid_fraction']:.0%} held out "
        "for validation; the datasets' own test parts are not used) and standardized with training statistics "
        "(per feature for tables, one scalar for images and sequences).",
        f"- Training length: `epochs` passes over the training part in mini-batches of `batch_size`, rounded up to a multiple "
        f"of {plan['num_evals']} steps; the validation error rate is measured {plan['num_evals']} times, evenly spaced.",
        "- `objective` = best (lowest) validation error rate over those evaluations (PD1's `best_valid/error_rate`); "
        "`final_objective` = the last one.",
        "- Diverged: the training loss (or the validation logits) became non-finite. Such a trial has status `diverged`, "
        "its curve is NaN from then on, and `objective` is the best error reached before that (NaN if it diverged before "
        "the first evaluation). Runs whose loss stays finite but large (for example a network whose ReLUs all died at a "
        "huge learning rate, ending at chance level) count as `ok`, as in PD1.",
        f"- `train_cost_s`: wall time of the vmapped chunk of {plan['chunk']} configurations divided by {plan['chunk']} "
        "(compilation excluded; configurations in a chunk train together, so this is a share, not a separate measurement).",
        f"- Seeds: collection seed {plan['seed']}. Initial weights of configuration i: "
        "`fold_in(fold_in(fold_in(key(seed), crc32(task)), part), i)`; mini-batch order: `default_rng([seed, crc32(task)])`, "
        "shared by all configurations of a task; unmatched points: `default_rng([seed, crc32(task), 1])`. Matched points: "
        f"`pd1_space().from_unit(halton({plan['n_matched']}, 4))`.",
        "",
        "## Tasks",
        "",
        "| task | dataset | model | batch | epochs | steps | trials (m + u) | diverged | best error | median error (ok) | train time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in tasks:
        best = "-" if t["best_error"] is None else f"{t['best_error']:.4f}"
        median = "-" if t["median_error"] is None else f"{t['median_error']:.4f}"
        lines.append(
            f"| `{t['task']}` | {t['dataset']} | {t['model']} | {t['batch_size']} | {t['epochs']} | {t['total_steps']} | "
            f"{t['matched']} + {t['unmatched']} | {t['diverged_share']:.1%} ({t['diverged']}) | {best} | {median} | "
            f"{t['train_s']:.0f} s |"
        )
    lines += ["", f"Overall diverged share: {summary['diverged_share']:.1%}.", ""]
    lines += _saturation_lines(summary.get("saturation"))
    lines += [
        "## Datasets and licences",
        "",
        "| dataset | what | source | licence |",
        "| --- | --- | --- | --- |",
    ]
    used = sorted({t["dataset"] for t in tasks}, key=list(DATASET_INFO).index)
    for d in used:
        info = DATASET_INFO[d]
        lines.append(f"| {d} | {info['kind']} | {info['source']} | {info['licence']} |")
    lines += [
        "",
        "The bundled files hold only tuning results (hyperparameters, error rates, losses), no data from these datasets.",
        "",
        "## Models",
        "",
    ]
    for m in sorted({t["model"] for t in tasks}, key=list(MODELS).index):
        model = MODELS[m]
        if model.kind == "mlp":
            what = f"MLP, ReLU hidden layers of {', '.join(map(str, model.widths))} units"
        else:
            what = (
                f"CNN: {len(model.widths)} convolutions (width 3, stride 2, SAME padding; {' then '.join(map(str, model.widths))} "
                "channels; ReLU), then a dense layer; 2-D on images, 1-D on MNIST-1D"
            )
        lines.append(f"- `{m}`: {what}.")
    lines += [
        "",
        "## How it was made",
        "",
        "Command (rerunning it resumes: finished shards are skipped; from an empty `--out` it regenerates everything):",
        "",
        "```sh",
        "XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \\",
        f"  {summary['command']}",
        "```",
        "",
        f"- Wall time of the collection: {_fmt_minutes(summary['collection_wall_s'])} "
        f"({summary['machine']['cpus']}-core machine shared with other jobs, so wall times are inflated and noisy); "
        f"of that, training {_fmt_minutes(summary['train_s'])} and compilation {_fmt_minutes(summary['compile_s'])}.",
    ]
    if summary.get("collection_cpu_s") is not None:
        lines.append(
            f"- CPU time of the collecting process (one process, one XLA compute thread): "
            f"{_fmt_minutes(summary['collection_cpu_s'])}, roughly what the collection takes on one free core."
        )
    elif summary.get("train_cpu_s") is not None:
        lines.append(f"- CPU time of training, summed over shards (compilation excluded): {_fmt_minutes(summary['train_cpu_s'])}.")
    lines += [
        f"- Software: {', '.join(f'{k} {v}' for k, v in summary['software'].items())}.",
        "- Work unit: one shard = one task, one part, "
        f"one chunk of {plan['chunk']} configurations trained together (vmap inside one jitted `lax.scan`); each finished "
        "shard is written atomically to `OUT/shards/`.",
        "",
        "## Caveats",
        "",
        "- Small datasets (wine: 36 validation examples, breast_cancer: 114) give coarse error rates with many ties.",
        "- Networks are small and trained briefly, so absolute error rates are far from the state of the art; what matters "
        "here is how the error depends on the hyperparameters, which varies across tasks but is related, as in PD1.",
        "- Results are deterministic for a given seed and software stack; other JAX/XLA versions or CPUs may change low-order "
        "bits and, through them, which borderline runs diverge.",
        "",
    ]
    return "\n".join(lines)


__all__ = ["LOG_COLUMNS", "render_data_card", "write_bundle"]

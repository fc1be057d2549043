"""One worker process of a shared Optuna study driven by ``PretrainedGPSampler`` (used by
``test_optuna_workers.py``; not a test module).

    python optuna_worker.py --storage URL_OR_JOURNAL --study NAME --prior PRIOR.npz --trials T \
        --log WORKER.jsonl --seed S [--hang-at K --hang-marker FILE]

Runs ``study.optimize`` for T trials on a smooth objective of the prior's parameters and appends
one JSON line per trial it told (number, params, value) to ``--log``, so the test can check that
no told trial is lost. With ``--hang-at K`` the K-th trial (0-based) of this worker writes
``--hang-marker`` and then sleeps, so the test can kill the worker in the middle of a trial.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import optuna

from metabo import Prior
from metabo.integrations.optuna import PretrainedGPSampler


def storage_from(spec: str, heartbeat: bool):
    if spec.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(spec[len("journal:") :]))
    if heartbeat:
        return optuna.storages.RDBStorage(spec, heartbeat_interval=1, grace_period=2)
    return optuna.storages.RDBStorage(spec)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--storage", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--prior", required=True)
    ap.add_argument("--trials", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang-at", type=int, default=-1)
    ap.add_argument("--hang-marker", default="")
    ap.add_argument("--sleep", type=float, default=0.05, help="seconds each trial 'trains'")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    prior = Prior.load(args.prior)
    storage = storage_from(args.storage, heartbeat=True)
    study = optuna.load_study(study_name=args.study, storage=storage, sampler=PretrainedGPSampler(prior, seed=args.seed))
    done = 0

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        units = trial.suggest_int("units", 8, 256, log=True)
        dropout = trial.suggest_float("dropout", 0.0, 0.5)
        if done == args.hang_at:
            Path(args.hang_marker).write_text(str(trial.number))
            time.sleep(3600)  # killed here by the test
        time.sleep(args.sleep)
        return (math.log10(lr) + 2.0) ** 2 + (math.log2(units) - 6.0) ** 2 / 4.0 + (dropout - 0.1) ** 2

    def record(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        nonlocal done
        done += 1
        with open(args.log, "a") as handle:
            handle.write(
                json.dumps({"number": frozen.number, "state": frozen.state.name, "value": frozen.value, "params": frozen.params})
                + "\n"
            )

    study.optimize(objective, n_trials=args.trials, callbacks=[record])


if __name__ == "__main__":
    main()

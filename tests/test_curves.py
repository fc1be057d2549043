"""Learning curves next to the tuning log: the policy for bad curves, the three sources, files."""

import glob
import math

import numpy as np
import optuna
import pandas as pd
import pytest

from metabo.curves import CurveError, Curves, check_curve, curves_from_lists, curves_from_optuna, trials_path
from metabo.datasets.pd1 import read_pd1_frame
from metabo.space import Objective, Parameter, Space, pd1_space

optuna.logging.set_verbosity(optuna.logging.ERROR)
SPACE = Space((Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 8, 64)), Objective("error", transform="neg_log"))


def test_policy_for_bad_curves():
    steps, values, diverged = check_curve([10, 20, 30], [0.5, 0.4, 0.3], "t")
    assert steps.tolist() == [10, 20, 30] and values.tolist() == [0.5, 0.4, 0.3] and not diverged
    # Divergence: the curve ends before its first non-finite value.
    steps, values, diverged = check_curve([10, 20, 30, 40], [0.5, 0.4, np.nan, 0.2], "t")
    assert steps.tolist() == [10, 20] and values.tolist() == [0.5, 0.4] and diverged
    steps, values, diverged = check_curve([1, 2], [math.inf, 0.1], "t")
    assert len(steps) == 0 and diverged
    with pytest.raises(CurveError, match=r"^task 'a', trial 3: steps must strictly increase, but step 20 follows 20 \(positions 1 and 2\)$"):
        check_curve([10, 20, 20], [0.5, 0.4, 0.3], "task 'a', trial 3")
    with pytest.raises(CurveError, match="value -0.1 at step 20 is outside the objective's range"):
        check_curve([10, 20], [0.5, -0.1], "t", value_range=(0.0, math.inf))
    with pytest.raises(CurveError, match="whole numbers"):
        check_curve([1.5, 2], [0.5, 0.4], "t")
    with pytest.raises(CurveError, match="2 steps but 3 values"):
        check_curve([1, 2], [0.5, 0.4, 0.3], "t")


def _frame():
    return pd.DataFrame(
        {
            "task": ["a", "a", "b"],
            "lr": [1e-3, 1e-1, 1e-2],
            "width": [8, 16, 32],
            "error": [0.3, np.nan, 0.2],
            "status": ["ok", "ok", "ok"],
            "valid_error_curve": [[0.5, 0.3, 0.35], [0.4, np.nan, np.nan], [0.6, 0.2, 0.25]],
            "eval_steps": [[10, 20, 30]] * 3,
        }
    )


def test_list_columns_become_the_long_table_and_round_trip_through_files(tmp_path):
    curves = curves_from_lists(_frame(), SPACE)
    assert curves.points[["task", "trial", "step"]].values.tolist() == [
        ["a", 0, 10], ["a", 0, 20], ["a", 0, 30], ["a", 1, 10], ["b", 2, 10], ["b", 2, 20], ["b", 2, 30],
    ]
    np.testing.assert_allclose(curves.points["value"], [0.5, 0.3, 0.35, 0.4, 0.6, 0.2, 0.25])
    assert curves.trials["status"].tolist() == ["ok", "diverged", "ok"]  # NaN after step 10
    assert curves.tasks == ["a", "b"]
    path = tmp_path / "curves.parquet"
    curves.save(path)
    assert trials_path(path) == str(tmp_path / "curves.trials.parquet")
    again = Curves.load(path, SPACE)
    # float32 on disk: the values come back to float32 precision.
    np.testing.assert_allclose(again.points["value"], curves.points["value"], rtol=1e-6)
    pd.testing.assert_frame_equal(again.trials, curves.trials)
    steps, values = again.curve(2)
    assert steps.tolist() == [10, 20, 30] and values == pytest.approx([0.6, 0.2, 0.25], rel=1e-6)


def test_a_bad_curve_in_a_log_names_its_row_and_task():
    frame = _frame()
    frame.at[2, "eval_steps"] = [10, 30, 20]
    with pytest.raises(CurveError, match=r"^row 2 \(task 'b'\): steps must strictly increase, but step 20 follows 30"):
        curves_from_lists(frame, SPACE)
    frame = _frame()
    frame.at[0, "valid_error_curve"] = [0.5, -0.3, 0.35]  # no score under neg_log
    with pytest.raises(CurveError, match=r"row 0 \(task 'a'\): value -0.3 at step 20 is outside"):
        curves_from_lists(frame, SPACE)


def test_the_bundled_pd1_files_give_the_collection_curves():
    path = sorted(glob.glob("data/pd1_scale/pd1/pd1_matched_phase0_results.jsonl.gz"))[0]
    frame = read_pd1_frame([path], include_curves=True)
    frame = frame[frame["task"] == frame["task"].iloc[0]].head(40)
    curves = curves_from_lists(frame, pd1_space())
    assert len(curves.trials) == 40
    for trial, row in zip(curves.trials["trial"], frame.itertuples(), strict=True):
        steps, values = curves.curve(trial)
        finite = np.isfinite(np.asarray(row.valid_error_curve, dtype=float))
        kept = int(np.argmin(finite)) if not finite.all() else len(finite)
        assert steps.tolist() == list(row.eval_steps)[:kept]
        np.testing.assert_allclose(values, np.asarray(row.valid_error_curve, dtype=float)[:kept])
        # The trial's best error (over all its evaluations) is at most the minimum of the curve
        # the JSON lines keep (a subsample of them).
        if row.status == "ok":
            assert row.objective <= values.min() + 1e-6


def test_optuna_intermediate_values_are_curves():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_int("width", 8, 64)
        for step in range(5):
            trial.report(lr / (step + 1), step)
        if trial.number == 2:
            raise optuna.TrialPruned()
        return lr / 5

    study.optimize(objective, n_trials=4)
    curves = curves_from_optuna(storage, "s", SPACE)
    assert curves.trials["number"].tolist() == [0, 1, 2, 3]
    assert curves.trials["state"].tolist() == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    for trial, number in zip(curves.trials["trial"], curves.trials["number"], strict=True):
        steps, values = curves.curve(trial)
        lr = study.trials[number].params["lr"]
        assert steps.tolist() == [0, 1, 2, 3, 4]
        np.testing.assert_allclose(values, [lr / (s + 1) for s in range(5)], rtol=1e-12)


def test_collection_shards_give_twenty_point_curves_and_their_divergences():
    shards = sorted(glob.glob("data/pd1_scale/shards/*.parquet"))
    frame = pd.concat([pd.read_parquet(p) for p in shards[:4]], ignore_index=True)
    curves = curves_from_lists(frame, "data/pd1_scale/pd1_scale_space.json")
    assert len(curves.trials) == len(frame)
    lengths = curves.points.groupby("trial").size().reindex(curves.trials["trial"], fill_value=0).to_numpy()
    ok = frame["status"].to_numpy() == "ok"
    assert np.all(lengths[ok] == 20)  # a finished run: every evaluation
    # A diverged run keeps its evaluations before the divergence step.
    for trial, row in zip(curves.trials["trial"][~ok], frame[~ok].itertuples(), strict=True):
        assert curves.trials.loc[curves.trials["trial"] == trial, "status"].item() == "diverged"
        steps, _ = curves.curve(trial)
        assert np.all(steps < row.diverged_step) if row.diverged_step >= 0 else len(steps) == 0

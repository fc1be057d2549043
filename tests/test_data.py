"""Tuning logs: reading, validation errors, failure policy, matched blocks, padding, round trips."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metabo.data import (
    LogValidationError,
    MatchedBlock,
    PaddedTasks,
    TuningLog,
    pad_arrays,
    read_log,
)
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (
        Parameter("lr", "real", 1e-4, 1.0, log=True),
        Parameter("layers", "int", 1, 8),
        Parameter("dropout", "real", 0.0, 0.5),
    ),
    Objective("error", "minimize", "neg_log"),
)


def unit(lr, layers, dropout):
    """The unit-cube image of a configuration of SPACE, by hand."""
    return np.array([math.log(lr / 1e-4) / math.log(1e4), (layers - 1) / 7, dropout / 0.5])


def score(error):
    return -math.log(error + 1e-10)


def small_log(**overrides):
    frame = pd.DataFrame(
        {
            "task": ["a", "a", "a", "b", "b", "c"],
            "lr": [1e-3, 1e-2, 1e-1, 1e-3, 1e-2, 0.5],
            "layers": [1, 2, 3, 1, 2, 8],
            "dropout": [0.0, 0.1, 0.2, 0.0, 0.1, 0.5],
            "error": [0.3, 0.2, np.nan, 0.35, 0.25, 0.9],
            "status": ["ok", "ok", "diverged", "ok", "failed", "ok"],
        }
    )
    for column, values in overrides.items():
        frame[column] = values
    return frame


# ---- reading ---------------------------------------------------------------------------------
def test_read_dataframe_normalizes_columns():
    log = read_log(small_log(), SPACE)
    assert isinstance(log, TuningLog) and len(log) == 6
    assert log.tasks == ["a", "b", "c"]
    assert list(log.frame.columns) == ["task", "lr", "layers", "dropout", "error", "status"]
    for column in ("lr", "layers", "dropout", "error"):
        assert log.frame[column].dtype == np.float64
    assert list(log.frame["status"]) == ["ok", "ok", "diverged", "ok", "failed", "ok"]


@pytest.mark.parametrize("suffix", [".parquet", ".pq", ".csv"])
def test_read_files_equals_read_dataframe(tmp_path, suffix):
    frame = small_log()
    path = tmp_path / f"log{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    from_file = TuningLog.read(path, SPACE)
    pd.testing.assert_frame_equal(from_file.frame, read_log(frame, SPACE).frame)


def test_status_column_is_optional_and_normalized():
    frame = small_log().drop(columns="status")
    log = read_log(frame, SPACE)
    # No status: every trial is ok except the NaN objective, which is a failure whatever it says.
    assert list(log.frame["status"]) == ["ok", "ok", "failed", "ok", "ok", "ok"]
    messy = small_log(status=[" OK", "Ok", "DIVERGED", None, "failed ", "ok"])
    assert list(read_log(messy, SPACE).frame["status"]) == ["ok", "ok", "diverged", "ok", "failed", "ok"]


def test_extra_columns_are_ignored_and_index_reset():
    frame = small_log()
    frame["notes"] = "x"
    frame.index = np.arange(10, 16)
    log = read_log(frame, SPACE)
    assert "notes" not in log.frame.columns
    assert list(log.frame.index) == list(range(6))


# ---- validation errors: one test each, naming the row and the column -------------------------
def expect_error(frame, row, column, message, **kwargs):
    with pytest.raises(LogValidationError, match=message) as info:
        read_log(frame, SPACE, **kwargs)
    assert info.value.row == row
    assert info.value.column == column
    prefix = ", ".join(
        ([f"row {row} (counting data rows from 0)"] if row is not None else [])
        + ([f"column {column!r}"] if column else [])
    )
    assert str(info.value).startswith(prefix)
    return info.value


@pytest.mark.parametrize("column", ["task", "lr", "layers", "dropout", "error"])
def test_missing_column(column):
    expect_error(small_log().drop(columns=column), None, column, "missing column")


def test_non_numeric_value():
    expect_error(small_log(dropout=[0.0, 0.1, "high", 0.0, 0.1, 0.5]), 2, "dropout", "'high' is not a number")


def test_non_numeric_objective():
    expect_error(small_log(error=[0.3, 0.2, 0.1, "n/a?", 0.25, 0.9]), 3, "error", "is not a number")


def test_boolean_column_is_not_numeric():
    expect_error(small_log(dropout=[True, False, True, False, True, False]), 0, "dropout", "boolean")


def test_value_outside_space():
    expect_error(small_log(lr=[1e-3, 1e-2, 1e-1, 1e-3, 2.0, 0.5]), 4, "lr", r"outside \[0.0001, 1.0\]")


def test_messages_print_numbers_not_numpy_reprs():
    err = expect_error(small_log(lr=[1e-3, 1e-2, 1e-1, 1e-3, 2.0, 0.5]), 4, "lr", "value 2.0 is outside")
    assert "np." not in str(err)
    err = expect_error(small_log(error=[0.3, 0.2, 0.1, -0.5, 0.25, 0.9]), 3, "error", "objective -0.5 has no")
    assert "np." not in str(err)


def test_csv_errors_give_the_line_of_the_file(tmp_path):
    path = tmp_path / "trials.csv"
    small_log(lr=[1e-3, 1e-2, 1e-1, 1e-3, 2.0, 0.5]).to_csv(path, index=False)
    with pytest.raises(LogValidationError) as info:
        read_log(path, SPACE)
    assert info.value.row == 4 and info.value.column == "lr"
    # Data row 4 is the file's line 6: line 1 is the header.
    assert path.read_text().splitlines()[5].split(",")[1] == "2.0"
    assert str(info.value).startswith("row 4 (counting data rows from 0; line 6 of trials.csv), column 'lr': ")
    path = tmp_path / "trials.parquet"
    small_log(lr=[1e-3, 1e-2, 1e-1, 1e-3, 2.0, 0.5]).to_parquet(path)
    with pytest.raises(LogValidationError, match=r"^row 4 \(counting data rows from 0\), column 'lr'"):
        read_log(path, SPACE)


def test_non_integer_for_int_parameter():
    expect_error(small_log(layers=[1, 2, 3, 1.5, 2, 8]), 3, "layers", "not an integer")


def test_missing_parameter_value():
    expect_error(small_log(lr=[1e-3, np.nan, 1e-1, 1e-3, 1e-2, 0.5]), 1, "lr", "not finite")


def test_unknown_status():
    expect_error(
        small_log(status=["ok", "ok", "crashed", "ok", "ok", "ok"]), 2, "status", "unknown status 'crashed'"
    )


def test_task_with_no_valid_rows():
    frame = small_log(status=["ok", "ok", "ok", "ok", "ok", "diverged"])
    expect_error(frame, 5, "task", "task 'c' has no valid trials")
    frame = small_log(error=[0.3, 0.2, 0.1, np.nan, np.nan, 0.9], status="ok")
    expect_error(frame, 3, "task", "task 'b' has no valid trials")


def test_infinite_objective():
    expect_error(small_log(error=[0.3, np.inf, 0.1, 0.2, 0.25, 0.9]), 1, "error", "infinite")


def test_objective_without_a_score_under_the_transform():
    expect_error(
        small_log(error=[0.3, 0.2, 0.1, -0.5, 0.25, 0.9]), 3, "error", "no score under transform 'neg_log'"
    )


def test_missing_task_name():
    expect_error(small_log(task=["a", "a", None, "b", "b", "c"]), 2, "task", "missing task name")


def test_conflicting_duplicates():
    frame = small_log(status="ok", error=[0.3, 0.2, 0.1, 0.35, 0.25, 0.9])
    frame.loc[len(frame)] = ["a", 1e-3, 1, 0.0, 0.4, "ok"]  # repeats row 0 with another value
    err = expect_error(frame, 6, None, r"same configuration at rows \[0, 6\]")
    assert "duplicates='mean' (CLI: --duplicates mean)" in str(err)


def test_empty_log():
    expect_error(small_log().iloc[:0], None, None, "no rows")


def test_bad_paths_and_options(tmp_path):
    with pytest.raises(LogValidationError, match="does not exist"):
        read_log(tmp_path / "missing.parquet", SPACE)
    (tmp_path / "log.txt").write_text("task\n")
    with pytest.raises(LogValidationError, match="unknown log file type"):
        read_log(tmp_path / "log.txt", SPACE)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(LogValidationError, match="cannot read"):
        read_log(tmp_path / "broken.parquet", SPACE)
    with pytest.raises(ValueError, match="duplicates must be one of"):
        read_log(small_log(), SPACE, duplicates="sum")
    with pytest.raises(ValueError, match="failures must be one of"):
        read_log(small_log(), SPACE).scored("ignore")


def test_errors_are_value_errors():
    assert issubclass(LogValidationError, ValueError)


# ---- duplicates ------------------------------------------------------------------------------
def test_duplicate_policies():
    frame = small_log(status="ok", error=[0.3, 0.2, 0.1, 0.35, 0.25, 0.9])
    frame.loc[6] = ["a", 1e-3, 1, 0.0, 0.5, "ok"]
    frame.loc[7] = ["b", 1e-3, 1, 0.0, 0.35, "ok"]  # an exact repeat: dropped under every policy but keep
    mean = read_log(frame, SPACE, duplicates="mean").frame
    assert len(mean) == 6
    assert mean.loc[0, "error"] == pytest.approx(0.4, rel=1e-15)
    assert len(read_log(frame, SPACE, duplicates="keep")) == 8
    exact = frame.drop(index=6)
    assert len(read_log(exact, SPACE).frame) == 6


# ---- failure policy --------------------------------------------------------------------------
def test_failures_dropped_by_default():
    log = read_log(small_log(), SPACE)
    scored = log.scored()
    assert list(scored["task"]) == ["a", "a", "b", "c"]
    np.testing.assert_allclose(scored["score"], [score(0.3), score(0.2), score(0.35), score(0.9)], rtol=1e-15)
    np.testing.assert_allclose(
        scored[["u0", "u1", "u2"]].to_numpy(),
        [unit(1e-3, 1, 0.0), unit(1e-2, 2, 0.1), unit(1e-3, 1, 0.0), unit(0.5, 8, 0.5)],
        rtol=1e-12,
        atol=1e-15,
    )


def test_failures_imputed_with_the_worst_score_of_their_task():
    scored = read_log(small_log(), SPACE).scored(failures="impute_worst")
    assert list(scored["task"]) == ["a", "a", "a", "b", "b", "c"]
    # Task a's worst is error 0.3; task b's is 0.35 (its failed trial gets that value).
    np.testing.assert_allclose(
        scored["score"],
        [score(0.3), score(0.2), score(0.3), score(0.35), score(0.35), score(0.9)],
        rtol=1e-15,
    )
    assert list(scored["status"]) == ["ok", "ok", "diverged", "ok", "failed", "ok"]


def test_task_arrays_select_without():
    log = read_log(small_log(), SPACE)
    x, y = log.task_arrays("a")
    np.testing.assert_allclose(x, [unit(1e-3, 1, 0.0), unit(1e-2, 2, 0.1)], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(y, [score(0.3), score(0.2)], rtol=1e-15)
    assert log.without("b").tasks == ["a", "c"]
    assert log.select(["c", "a"]).tasks == ["a", "c"]
    with pytest.raises(KeyError):
        log.select(["z"])
    with pytest.raises(KeyError):
        log.task_arrays("z")


# ---- matched blocks --------------------------------------------------------------------------
def grid_log():
    """Tasks a, b, c share 3 configurations; a and d share 2 others; e shares nothing."""
    shared = [(1e-3, 1, 0.0), (1e-2, 2, 0.1), (1e-1, 3, 0.2)]
    pair = [(0.5, 4, 0.3), (0.2, 5, 0.4)]
    rows = []
    for t, offset in (("a", 0.0), ("b", 0.1), ("c", 0.2)):
        rows += [(t, *cfg, 0.1 + offset + 0.01 * i) for i, cfg in enumerate(shared)]
    rows += [("a", *cfg, 0.5 + 0.01 * i) for i, cfg in enumerate(pair)]
    rows += [("d", *cfg, 0.6 + 0.01 * i) for i, cfg in enumerate(pair)]
    rows += [("e", 0.3, 6, 0.45, 0.7), ("e", 0.4, 7, 0.05, 0.75)]
    rows += [("b", 0.9, 8, 0.25, 0.8)]  # b's own extra point: not in any block
    frame = pd.DataFrame(rows, columns=["task", "lr", "layers", "dropout", "error"])
    return read_log(frame.sample(frac=1.0, random_state=0), SPACE), shared, pair


def test_matched_blocks_found():
    log, shared, pair = grid_log()
    blocks = {b.tasks: b for b in log.matched_blocks()}
    assert set(blocks) == {
        tuple(t for t in log.tasks if t in "abc"),
        tuple(t for t in log.tasks if t in "ad"),
    }
    for block in blocks.values():
        assert isinstance(block, MatchedBlock)
        assert block.x.shape == (len(block.y[0]), 3) and block.y.shape == (len(block.tasks), len(block.x))
        # Every (task, x) pair in the block has that task's score at that x.
        for i, task in enumerate(block.tasks):
            tx, ty = log.task_arrays(task)
            for j, point in enumerate(block.x):
                hit = np.flatnonzero(np.all(tx == point, axis=1))
                assert len(hit) == 1
                assert block.y[i, j] == ty[hit[0]]
    abc = blocks[tuple(t for t in log.tasks if t in "abc")]
    np.testing.assert_allclose(
        np.sort(abc.x, axis=0), np.sort([unit(*c) for c in shared], axis=0), rtol=1e-12, atol=1e-15
    )
    assert len(blocks[tuple(t for t in log.tasks if t in "ad")].x) == len(pair)


def test_matched_blocks_thresholds_and_one_dimension():
    log, _, _ = grid_log()
    assert [len(b.tasks) for b in log.matched_blocks(min_tasks=3)] == [3]
    assert [len(b.x) for b in log.matched_blocks(min_points=3)] == [3]
    space = Space((Parameter("x", low=0.0, high=1.0),))
    frame = pd.DataFrame(
        {"task": list("aabbc"), "x": [0.1, 0.2, 0.2, 0.1, 0.3], "objective": [1.0, 2, 3, 4, 5]}
    )
    (block,) = read_log(frame, space).matched_blocks()
    assert block.tasks == ("a", "b")
    order = np.argsort(block.x[:, 0])
    np.testing.assert_allclose(block.x[order, 0], [0.1, 0.2])
    np.testing.assert_allclose(block.y[:, order], [[-1.0, -2.0], [-4.0, -3.0]])


def test_matched_blocks_respect_the_failure_policy():
    frame = pd.DataFrame(
        {
            "task": list("aabb"),
            "lr": [1e-3, 1e-2, 1e-3, 1e-2],
            "layers": [1, 2, 1, 2],
            "dropout": [0.0, 0.1, 0.0, 0.1],
            "error": [0.1, 0.2, 0.3, np.nan],
        }
    )
    log = read_log(frame, SPACE)
    assert log.matched_blocks() == []  # b's second point failed: only one shared point left
    (block,) = log.matched_blocks(failures="impute_worst")
    assert block.y.shape == (2, 2)


# ---- padding ---------------------------------------------------------------------------------
def test_to_padded_shapes_masks_and_values():
    log, _, _ = grid_log()
    padded, names = log.to_padded(bucket=4)
    assert isinstance(padded, PaddedTasks)
    assert names == log.tasks
    counts = [len(log.task_arrays(t)[1]) for t in names]
    assert padded.x.shape == (len(names), 8, 3) and padded.y.shape == (len(names), 8)
    assert padded.x.dtype == np.float64 and padded.y.dtype == np.float64 and padded.mask.dtype == bool
    np.testing.assert_array_equal(padded.mask.sum(axis=1), counts)
    for i, task in enumerate(names):
        x, y = log.task_arrays(task)
        np.testing.assert_array_equal(padded.x[i, : counts[i]], x)
        np.testing.assert_array_equal(padded.y[i, : counts[i]], y)
        assert padded.mask[i, : counts[i]].all() and not padded.mask[i, counts[i] :].any()
        assert not padded.x[i, counts[i] :].any() and not padded.y[i, counts[i] :].any()


def test_pad_arrays_keeps_every_task_in_order():
    rng = np.random.default_rng(0)
    sizes = [3, 0, 5, 1]  # an empty task (a new task with no observations yet) keeps its row
    xs = [rng.random((n, 2)) for n in sizes]
    ys = [rng.standard_normal(n) for n in sizes]
    padded = pad_arrays(xs, ys, bucket=4)
    assert padded.x.shape == (4, 8, 2)
    np.testing.assert_array_equal(padded.mask.sum(axis=1), sizes)
    for i, n in enumerate(sizes):
        np.testing.assert_array_equal(padded.x[i, :n], xs[i])
        np.testing.assert_array_equal(padded.y[i, :n], ys[i])
    with pytest.raises(ValueError, match="no tasks"):
        pad_arrays([], [])
    with pytest.raises(ValueError, match="task 1"):
        pad_arrays([np.zeros((2, 2)), np.zeros((3, 2))], [np.zeros(2), np.zeros(2)])


# ---- file round trips ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_save_read_round_trip_is_lossless(tmp_path, suffix):
    frame = small_log(
        task=["007", "007", "1.0", "1.0", "b c", "1e3"],  # names CSV readers like to turn into numbers
        lr=[1e-3 / 3, 1e-2, 1e-1, 1e-3, 1e-2, math.pi / 10],
        status=["ok", "ok", "diverged", "ok", "ok", "ok"],
    )
    log = read_log(frame, SPACE)
    path = tmp_path / f"log{suffix}"
    log.save(path)
    again = read_log(path, SPACE)
    assert again.tasks == ["007", "1.0", "b c", "1e3"]
    pd.testing.assert_frame_equal(again.frame, log.frame)


# ---- property-based: random logs that should validate ----------------------------------------
HYP_SPACE = Space(
    (
        Parameter("a", "real", -1.0, 1.0),
        Parameter("b", "real", 1e-3, 10.0, log=True),
        Parameter("k", "int", 0, 6),
    ),
    Objective("y", "maximize"),
)
TASK_NAMES = ["t0", "01", "1", "alpha", "x y", "2.5"]


@st.composite
def valid_logs(draw):
    n_tasks = draw(st.integers(1, 4))
    tasks = draw(st.permutations(TASK_NAMES))[:n_tasks]
    rows = []
    for task in tasks:
        n = draw(st.integers(1, 5))
        for i in range(n):
            ok = i == 0 or draw(st.booleans())  # every task has at least one valid trial
            rows.append(
                {
                    "task": task,
                    "a": draw(st.floats(-1.0, 1.0)),
                    "b": math.exp(draw(st.floats(math.log(1e-3), math.log(10.0)))),
                    "k": draw(st.integers(0, 6)),
                    "y": draw(st.floats(-1e6, 1e6)) if ok else draw(st.sampled_from([np.nan, 0.0])),
                    "status": "ok" if ok else draw(st.sampled_from(["diverged", "failed"])),
                }
            )
    order = draw(st.permutations(range(len(rows))))
    return pd.DataFrame([rows[i] for i in order])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_logs())
def test_random_valid_logs_read_score_and_pad(frame):
    frame["b"] = frame["b"].clip(1e-3, 10.0)
    log = read_log(frame, HYP_SPACE, duplicates="keep")
    assert len(log) == len(frame)
    np.testing.assert_array_equal(log.frame["a"], frame["a"])
    valid = frame[(frame["status"] == "ok") & frame["y"].notna()]
    padded, names = log.to_padded(bucket=3)
    # Row order of the padded arrays: first appearance among the *valid* rows.
    assert names == list(dict.fromkeys(valid["task"]))
    assert padded.x.shape[1] % 3 == 0
    for i, task in enumerate(names):
        rows = valid[valid["task"] == task]
        n = len(rows)
        assert padded.mask[i].sum() == n
        expected_x = np.stack(
            [(rows["a"] + 1.0) / 2.0, np.log(rows["b"] / 1e-3) / np.log(1e4), rows["k"] / 6.0], axis=1
        )
        np.testing.assert_allclose(padded.x[i, :n], expected_x, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(padded.y[i, :n], rows["y"].to_numpy())
    imputed = log.scored(failures="impute_worst")
    assert len(imputed) == len(frame)
    worst = valid.groupby("task")["y"].min()
    failed = imputed["status"] != "ok"
    np.testing.assert_array_equal(imputed.loc[failed, "score"], worst[imputed.loc[failed, "task"]].to_numpy())


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(valid_logs(), st.sampled_from([".parquet", ".csv"]))
def test_random_valid_logs_round_trip_through_files(tmp_path, frame, suffix):
    frame["b"] = frame["b"].clip(1e-3, 10.0)
    log = read_log(frame, HYP_SPACE, duplicates="keep")
    path = tmp_path / f"log{suffix}"
    log.save(path)
    pd.testing.assert_frame_equal(read_log(path, HYP_SPACE, duplicates="keep").frame, log.frame)


# ---- malformed logs: only LogValidationError, and it says where ----------------------------------

CORRUPTIONS = ("cell", "objective", "status", "task", "drop_column", "rename_column", "outside", "fraction", "empty")
BAD_CELLS = (np.nan, np.inf, -np.inf, "abc", None, "", True, 1e308 * 10)


@st.composite
def malformed_logs(draw):
    frame = draw(valid_logs())
    frame["b"] = frame["b"].clip(1e-3, 10.0)
    frame = frame.astype(object)  # any cell can now hold anything

    def column(*names):
        present = [n for n in names if n in frame.columns]
        return draw(st.sampled_from(present)) if present else None

    for _ in range(draw(st.integers(1, 3))):
        if not len(frame):
            break
        kind = draw(st.sampled_from(CORRUPTIONS))
        row = draw(st.integers(0, len(frame) - 1))
        values = {
            "cell": BAD_CELLS,
            "objective": (np.inf, "x", None, -1e300 * 1e10),
            "status": ("weird", None, 3, "DONE"),
            "task": (None, np.nan, "", 7),
            "outside": (5.0, -3.0, 1e-9, 100),
            "fraction": (2.5,),
        }
        targets = {
            "cell": ("a", "b", "k"),
            "objective": ("y",),
            "status": ("status",),
            "task": ("task",),
            "outside": ("a", "b", "k"),
            "fraction": ("k",),
        }
        if kind == "empty":
            frame = frame.iloc[:0]
        elif kind in ("drop_column", "rename_column"):
            name = column("task", "a", "b", "k", "y", "status")
            if name is not None:
                frame = frame.drop(columns=name) if kind == "drop_column" else frame.rename(columns={name: "renamed"})
        else:
            name = column(*targets[kind])
            if name is not None:
                frame.iat[row, frame.columns.get_loc(name)] = draw(st.sampled_from(values[kind]))
    return frame


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed_logs(), st.sampled_from(["error", "mean", "keep"]), st.sampled_from(["drop", "impute_worst"]))
def test_malformed_logs_raise_only_validation_errors_that_say_where(frame, duplicates, failures):
    try:
        log = read_log(frame, HYP_SPACE, duplicates=duplicates)
    except LogValidationError as err:
        assert str(err)
        if err.row is not None:
            assert 0 <= err.row < len(frame)
        if err.column is not None:
            assert err.column in set(frame.columns) | {"task", "a", "b", "k", "y", "status"}
        return
    # Whatever was accepted is clean: finite unit-cube inputs, finite scores for valid trials.
    padded, names = log.to_padded(failures=failures)
    assert len(names) >= 1 and np.isfinite(padded.x).all() and np.isfinite(padded.y).all()
    assert ((padded.x >= 0) & (padded.x <= 1)).all()
    assert set(log.frame["status"]) <= {"ok", "diverged", "failed"}


CHOICE_SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("optimizer", "categorical", choices=["sgd", "adam"]),
     Parameter("batch_size", "categorical", choices=[32, 64])),
    Objective("error"),
)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_categorical_columns_round_trip_through_files_and_scores(tmp_path, suffix):
    frame = pd.DataFrame(
        {
            "task": ["a", "a", "b"],
            "lr": [1e-3, 1e-2, 1e-1],
            "optimizer": ["adam", " sgd", "adam"],
            "batch_size": [64, 32, 64],
            "error": [0.3, 0.2, 0.1],
        }
    )
    path = tmp_path / f"log{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    log = read_log(path, CHOICE_SPACE)
    assert log.frame["optimizer"].tolist() == ["adam", "sgd", "adam"]
    assert log.frame["batch_size"].tolist() == [64, 32, 64]  # the choices, not the file's floats
    scored = log.scored()
    np.testing.assert_allclose(scored[["u1", "u2", "u3", "u4"]], [[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]])


def test_unknown_choice_names_the_line_and_column(tmp_path):
    path = tmp_path / "trials.csv"
    path.write_text("task,lr,optimizer,batch_size,error\na,0.001,adam,32,0.3\na,0.01,adamw,32,0.2\n")
    with pytest.raises(LogValidationError) as info:
        read_log(path, CHOICE_SPACE)
    assert str(info.value) == (
        "row 1 (counting data rows from 0; line 3 of trials.csv), column 'optimizer': value 'adamw' is not one "
        "of the choices ['sgd', 'adam']"
    )

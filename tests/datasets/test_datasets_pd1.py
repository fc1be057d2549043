"""PD1 JSON-lines loader, on fixture files written in PD1's exact format."""

import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest

from metabo.data import LogValidationError
from metabo.datasets import DatasetFormatError
from metabo.datasets.pd1 import find_pd1_files, read_pd1, read_pd1_dir, read_pd1_frame, write_pd1_jsonl
from metabo.space import halton, pd1_space


def trial(group, lr, momentum, power, factor, best, status="done", curve=None, **extra):
    """One line as PD1 has it: flat dotted keys, curves as lists aligned with global_step."""
    _, dataset, _, model, batch = group.split(",")
    curve = curve if curve is not None else [None if best is None else best + 0.1, best]
    record = {
        "dataset": dataset,
        "model": model,
        "hps.batch_size": int(batch),
        "hps.lr_hparams.decay_steps_factor": factor,
        "hps.lr_hparams.initial_value": lr,
        "hps.lr_hparams.power": power,
        "hps.lr_hparams.schedule": "polynomial",
        "hps.opt_hparams.momentum": momentum,
        "study_group": group,
        "trial_dir": f"/trials/{group}/{lr}",
        "status": status,
        "global_step": [100, 200][: len(curve)],
        "valid/error_rate": curve,
        "train/ce_loss": [2.3, 1.0][: len(curve)],
        "best_valid/error_rate": best,
        "epoch": [1, 2][: len(curve)],
    }
    record.update(extra)
    return record


G1 = "mnist_simple_cnn,mnist,simple_cnn,simple_cnn,256"
G2 = "cifar10_wide_resnet,cifar10,wide_resnet,wide_resnet,256"
SPACE = pd1_space()
HALTON = SPACE.from_unit(halton(6, 4))
# Like PD1, each phase has its own matched design.
HALTON_PHASE1 = SPACE.from_unit(halton(6, 4, skip=6))


def matched_lines(phase):
    lines = []
    for g, scale in ((G1, 0.02), (G2, 0.2)):
        for i, (lr, omm, power, factor) in enumerate(HALTON if phase == 0 else HALTON_PHASE1):
            lines.append(trial(g, lr, 1 - omm, power, factor, scale + 0.01 * i + 0.001 * phase))
    # Diverged: kept with its status, its best error may be missing.
    lines.append(trial(G1, 9.0, 0.99, 1.0, 0.5, None, status="diverged", curve=[None, None]))
    return lines


def unmatched_lines(phase):
    rng = np.random.default_rng(phase)
    points = SPACE.from_unit(rng.random((4, 4)))
    lines = [trial(G1, lr, 1 - omm, p, f, 0.05 + 0.01 * k) for k, (lr, omm, p, f) in enumerate(points)]
    # All-NaN curve on a finished trial: becomes status "failed", kept.
    # (phase 0 writes null, phase 1 the NaN tokens Python's json module emits)
    lines.append(trial(G2, 1e-3, 0.9, 1.0, 0.5, None, curve=[None, None] if phase == 0 else [math.nan, math.nan]))
    lines.append(trial(G2, 1e-2 * (1 + phase), 0.9, 1.0, 0.5, 0.3))
    return lines


def write_lines(path, records, gz):
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)


@pytest.fixture
def pd1_dir(tmp_path):
    for phase in (0, 1):
        write_lines(tmp_path / f"pd1_matched_phase{phase}_results.jsonl.gz", matched_lines(phase), gz=True)
        write_lines(tmp_path / f"pd1_unmatched_phase{phase}_results.jsonl", unmatched_lines(phase), gz=False)
    return tmp_path


def test_reads_all_four_files(pd1_dir):
    files = find_pd1_files(pd1_dir)
    assert [f.name for f in files] == [
        "pd1_matched_phase0_results.jsonl.gz",
        "pd1_matched_phase1_results.jsonl.gz",
        "pd1_unmatched_phase0_results.jsonl",
        "pd1_unmatched_phase1_results.jsonl",
    ]
    frame = read_pd1_frame(files)
    assert len(frame) == 2 * 13 + 2 * 6
    assert set(frame["part"]) == {"matched", "unmatched"} and set(frame["phase"]) == {0, 1}
    assert set(frame["task"]) == {G1, G2}
    assert list(frame.columns[:7]) == ["task", *SPACE.names, "objective", "status"]
    first = frame.iloc[0]
    assert first["dataset"] == "mnist" and first["model"] == "simple_cnn" and first["batch_size"] == 256 and first["source"].endswith(":1")
    np.testing.assert_allclose(first[list(SPACE.names)].to_numpy(float), HALTON[0], rtol=1e-12)


def test_status_and_failures(pd1_dir):
    frame = read_pd1_frame(find_pd1_files(pd1_dir))
    diverged = frame[frame["status"] == "diverged"]
    assert len(diverged) == 2 and diverged["objective"].isna().all()  # kept, one per phase
    failed = frame[frame["status"] == "failed"]
    assert len(failed) == 2 and failed["objective"].isna().all()  # all-NaN curves
    log = read_pd1_dir(pd1_dir)
    assert len(log) == len(frame) and (log.frame["status"] == "diverged").sum() == 2
    # The failure policy of the log drops them from scoring.
    assert len(log.scored()) == len(frame) - 4


def test_target_gets_hyperbo_warp(pd1_dir):
    log = read_pd1(find_pd1_files(pd1_dir, phases=(0,), parts=("matched",)))
    scored = log.scored()
    ok = log.frame[log.frame["status"] == "ok"]
    np.testing.assert_allclose(scored["score"], -np.log(ok["objective"].to_numpy() + 1e-10))


def test_matched_points_form_a_block(pd1_dir):
    log = read_pd1(find_pd1_files(pd1_dir, phases=(0,), parts=("matched",)))
    blocks = log.matched_blocks()
    assert len(blocks) == 1 and set(blocks[0].tasks) == {G1, G2} and blocks[0].x.shape == (6, 4)


def test_repeated_configurations_are_averaged(tmp_path):
    rows = [trial(G1, 0.1, 0.9, 1.0, 0.5, 0.2), trial(G1, 0.1, 0.9, 1.0, 0.5, 0.4), trial(G1, 0.2, 0.9, 1.0, 0.5, 0.1)]
    write_lines(tmp_path / "f.jsonl", rows, gz=False)
    log = read_pd1(tmp_path / "f.jsonl")
    assert len(log) == 2 and log.frame["objective"].iloc[0] == pytest.approx(0.3)
    assert len(read_pd1(tmp_path / "f.jsonl", duplicates="keep")) == 3
    with pytest.raises(LogValidationError, match="same configuration"):
        read_pd1(tmp_path / "f.jsonl", duplicates="error")


def test_target_from_curve_when_missing(tmp_path):
    record = trial(G1, 0.1, 0.9, 1.0, 0.5, 0.0, curve=[0.4, None, 0.3, 0.35])
    del record["best_valid/error_rate"]
    write_lines(tmp_path / "x.jsonl", [record], gz=False)
    frame = read_pd1_frame(tmp_path / "x.jsonl", include_curves=True)
    assert frame["objective"].iloc[0] == 0.3
    assert frame["part"].iloc[0] == "unknown"
    curve = frame["valid_error_curve"].iloc[0]
    assert curve[0] == 0.4 and math.isnan(curve[1])


def test_nested_keys_are_accepted(tmp_path):
    record = {
        "study_group": G1,
        "hps": {"lr_hparams": {"initial_value": 0.1, "power": 1.0, "decay_steps_factor": 0.5}, "opt_hparams": {"momentum": 0.9}},
        "best_valid/error_rate": 0.2,
        "status": "done",
    }
    write_lines(tmp_path / "nested.jsonl", [record], gz=False)
    frame = read_pd1_frame(tmp_path / "nested.jsonl")
    assert frame["one_minus_momentum"].iloc[0] == pytest.approx(0.1)


@pytest.mark.parametrize("gz", [False, True])
def test_malformed_line_names_file_and_line(tmp_path, gz):
    path = tmp_path / ("pd1_matched_phase0_results.jsonl" + (".gz" if gz else ""))
    good = json.dumps(trial(G1, 0.1, 0.9, 1.0, 0.5, 0.2))
    text = good + "\n\n" + good + "\n" + '{"study_group": "x", "hps.lr_hparams' + "\n"
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    with pytest.raises(DatasetFormatError, match=r"pd1_matched_phase0_results\.jsonl(\.gz)?, line 4: not valid JSON") as err:
        read_pd1(path)
    assert err.value.line == 4 and isinstance(err.value, LogValidationError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "field,match",
    [
        ("study_group", "line 2, field 'study_group': missing task key"),
        ("hps.opt_hparams.momentum", "line 2, field 'hps.opt_hparams.momentum': missing field"),
        ("hps.lr_hparams.initial_value", "line 2, field 'hps.lr_hparams.initial_value': missing field"),
    ],
)
def test_missing_fields(tmp_path, field, match):
    bad = trial(G1, 0.1, 0.9, 1.0, 0.5, 0.2)
    del bad[field]
    write_lines(tmp_path / "f.jsonl", [trial(G1, 0.2, 0.9, 1.0, 0.5, 0.2), bad], gz=False)
    with pytest.raises(DatasetFormatError, match=match):
        read_pd1(tmp_path / "f.jsonl")


def test_missing_target_and_curve(tmp_path):
    bad = trial(G1, 0.1, 0.9, 1.0, 0.5, 0.2)
    del bad["best_valid/error_rate"], bad["valid/error_rate"]
    write_lines(tmp_path / "f.jsonl", [bad], gz=False)
    with pytest.raises(DatasetFormatError, match="line 1, field 'best_valid/error_rate': missing field"):
        read_pd1(tmp_path / "f.jsonl")


@pytest.mark.parametrize(
    "change,match",
    [
        ({"status": "exploded"}, "unknown status 'exploded'"),
        ({"hps.lr_hparams.power": "fast"}, "'fast' is not a number"),
        ({"hps.lr_hparams.power": True}, "True is not a number"),
        ({"best_valid/error_rate": float("inf")}, "inf is not finite"),
        ({"valid/error_rate": "0.3"}, "expected a list"),
        ({"hps.lr_hparams.initial_value": None}, "value is null"),
    ],
)
def test_bad_values(tmp_path, change, match):
    bad = trial(G1, 0.1, 0.9, 1.0, 0.5, 0.2)
    bad.update(change)
    if "valid/error_rate" in change:
        del bad["best_valid/error_rate"]
    write_lines(tmp_path / "f.jsonl", [bad], gz=False)
    with pytest.raises(DatasetFormatError, match=match):
        read_pd1_frame(tmp_path / "f.jsonl", include_curves=True)


def test_json_array_line_is_rejected(tmp_path):
    (tmp_path / "f.jsonl").write_text("[1, 2]\n")
    with pytest.raises(DatasetFormatError, match="line 1: expected a JSON object"):
        read_pd1(tmp_path / "f.jsonl")


def test_outside_space_policies(tmp_path):
    # momentum 1.0 -> one_minus_momentum 0, below the log-scale lower bound 1e-3.
    rows = [trial(G1, 0.1, 0.9, 1.0, 0.5, 0.2), trial(G1, 0.1, 1.0, 1.0, 0.5, 0.3)]
    write_lines(tmp_path / "f.jsonl", rows, gz=False)
    with pytest.raises(DatasetFormatError, match=r"line 2, field 'hps.opt_hparams.momentum': one_minus_momentum = 0.0"):
        read_pd1(tmp_path / "f.jsonl")
    with pytest.warns(UserWarning, match="dropped 1"):
        assert len(read_pd1(tmp_path / "f.jsonl", outside="drop")) == 1
    clipped = read_pd1(tmp_path / "f.jsonl", outside="clip")
    assert clipped.frame["one_minus_momentum"].min() == pytest.approx(1e-3)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="pd1_matched_phase0"):
        find_pd1_files(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_pd1(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DatasetFormatError, match="no trials"):
        read_pd1(tmp_path / "empty.jsonl")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "pd1_matched_phase0_results.jsonl.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DatasetFormatError, match="cannot read"):
        read_pd1(path)


def test_write_then_read_round_trip(tmp_path):
    space = pd1_space()
    x = space.from_unit(halton(3, 4))
    frame = pd.DataFrame(x, columns=list(space.names))
    frame.insert(0, "task", "wine-mlp_small-bs8")
    frame["objective"] = [0.1, np.nan, 0.3]
    frame["status"] = ["ok", "diverged", "ok"]
    frame["dataset"], frame["model"], frame["batch_size"] = "wine", "mlp_small", 8
    frame["part"], frame["config_index"] = "matched", [0, 1, 2]
    frame["valid_error_curve"] = [[0.5, 0.2, 0.1], [0.4, np.nan, np.nan], [0.6, 0.3, 0.3]]
    frame["train_loss_curve"] = [[2.0, 1.0, 0.5], [2.0, np.nan, np.nan], [2.0, 1.5, 1.4]]
    frame["eval_steps"] = [[10, 20, 30]] * 3
    path = tmp_path / "pd1_matched_phase0_results.jsonl.gz"
    write_pd1_jsonl(frame, path, max_curve_points=2)
    lines = gzip.open(path, "rt").read().splitlines()
    record = json.loads(lines[1])
    assert record["status"] == "diverged" and record["best_valid/error_rate"] is None
    assert record["global_step"] == [10, 30] and record["valid/error_rate"] == [0.4, None]
    assert "NaN" not in "".join(lines)  # strict JSON
    back = read_pd1_frame(path)
    np.testing.assert_allclose(back[list(space.names)].to_numpy(float), x, rtol=1e-12)
    assert back["status"].tolist() == ["ok", "diverged", "ok"]
    np.testing.assert_array_equal(back["objective"], frame["objective"])
    # Reproducible bytes (gzip without a timestamp).
    first = path.read_bytes()
    write_pd1_jsonl(frame, path, max_curve_points=2)
    assert path.read_bytes() == first

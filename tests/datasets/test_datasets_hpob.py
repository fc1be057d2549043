"""HPO-B loader, on fixture files written in HPO-B's exact layout."""

import json

import numpy as np
import pytest

from metabo.datasets import DatasetFormatError
from metabo.datasets.hpob import hpob_space, list_search_spaces, read_hpob


def dataset(n, d, seed, nan_rows=()):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)).round(6)
    y = [[None if i in nan_rows else float(v)] for i, v in enumerate(rng.random(n).round(6))]
    return {"X": x.tolist(), "y": y}


@pytest.fixture
def hpob_root(tmp_path):
    train = {"5971": {"10093": dataset(8, 3, 0), "3954": dataset(5, 3, 1)}, "4796": {"3549": dataset(4, 2, 2)}}
    validation = {"5971": {"43": dataset(6, 3, 3)}}
    test = {"5971": {"37": dataset(7, 3, 4, nan_rows=(2,)), "9952": dataset(6, 3, 5)}, "4796": {"23": dataset(5, 2, 6)}}
    init = {
        "5971": {
            "37": {f"test{k}": [k, k + 1, k + 2, 0, 1][:5] for k in range(5)},
            "9952": {f"test{k}": [k, 5] for k in range(5)},
        },
        "4796": {"23": {"test0": [0, 1]}},
    }
    for name, data in (
        ("meta-train-dataset.json", train),
        ("meta-validation-dataset.json", validation),
        ("meta-test-dataset.json", test),
        ("bo-initializations.json", init),
    ):
        (tmp_path / name).write_text(json.dumps(data))
    return tmp_path, train, test


def test_train_split(hpob_root):
    root, train, _ = hpob_root
    data = read_hpob(root, 5971, "train")
    assert data.search_space_id == "5971" and data.split == "train"
    assert data.datasets == ["10093", "3954"]
    assert data.log.space == hpob_space(3)
    assert data.log.space.objective.direction == "maximize"
    x, y = data.arrays("10093")
    np.testing.assert_array_equal(x, np.asarray(train["5971"]["10093"]["X"]))
    np.testing.assert_array_equal(y, np.asarray(train["5971"]["10093"]["y"]).ravel())
    assert data.init_indices == {}  # no seeds for meta-train datasets
    # Scores are the response itself (maximized, no warp).
    np.testing.assert_allclose(data.log.scored()["score"].to_numpy()[:8], y)


def test_test_split_with_init_seeds(hpob_root):
    root, _, test = hpob_root
    data = read_hpob(root, "5971", "test")
    assert set(data.init_indices) == {"37", "9952"}
    assert sorted(data.init_indices["37"]) == ["test0", "test1", "test2", "test3", "test4"]
    x0, y0 = data.initial_points("37", "test1")
    np.testing.assert_array_equal(x0, np.asarray(test["5971"]["37"]["X"])[[1, 2, 3, 0, 1]])
    assert np.isnan(y0[1])  # row 2 has a null y
    # A null response is kept as a failed trial; indices still line up with the file.
    frame = data.log.frame
    assert (frame["status"] == "failed").sum() == 1 and len(frame) == 13
    with pytest.raises(KeyError, match="test9"):
        data.initial_points("37", "test9")
    with pytest.raises(KeyError, match="unknown dataset"):
        data.arrays("nope")


def test_other_search_space_and_listing(hpob_root):
    root, _, _ = hpob_root
    data = read_hpob(root, "4796", "test")
    assert data.datasets == ["23"] and data.log.space.dim == 2
    assert list_search_spaces(root, "train") == ["4796", "5971"]
    with pytest.raises(DatasetFormatError, match="search space '1234' not found"):
        read_hpob(root, "1234", "train")
    with pytest.raises(ValueError, match="split"):
        read_hpob(root, "5971", "meta-test")


def test_init_file_is_optional(hpob_root):
    root, _, _ = hpob_root
    (root / "bo-initializations.json").unlink()
    assert read_hpob(root, "5971", "test").init_indices == {}
    with pytest.raises(FileNotFoundError, match="meta-train-dataset-augmented"):
        read_hpob(root, "5971", "train-augmented")


def test_malformed_json_names_file_and_line(tmp_path):
    text = '{"5971": {\n  "43": {"X": [[0.1, 0.2]],\n  "y": [[0.5]\n}}}\n'
    (tmp_path / "meta-validation-dataset.json").write_text(text)
    with pytest.raises(DatasetFormatError, match=r"meta-validation-dataset\.json, line 4: not valid JSON") as err:
        read_hpob(tmp_path, "5971", "validation")
    assert err.value.line == 4 and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "entry,match",
    [
        ({"X": [[0.1, 0.2]]}, "dataset 43: missing 'y'"),
        ({"y": [[0.1]]}, "dataset 43: missing 'X'"),
        ({"X": [[0.1, 0.2], [0.3, 0.4]], "y": [[0.5]]}, "'X' has 2 rows but 'y' has 1"),
        ({"X": [[0.1, 0.2], [0.3]], "y": [[0.5], [0.6]]}, "X row 1: 1 values, expected 2"),
        ({"X": [[0.1, 1.5]], "y": [[0.5]]}, "X row 0: x1 = 1.5 is outside"),
        ({"X": [[0.1, "a"]], "y": [[0.5]]}, "X row 0: 'a' is not a finite number"),
        ({"X": [[0.1, 0.2]], "y": [[0.5, 0.6]]}, "y row 0: expected one value"),
        ({"X": [[0.1, 0.2]], "y": [[None]]}, "every y value is null"),
        ({"X": [], "y": []}, "no rows"),
        ([1, 2], "expected an object"),
    ],
)
def test_structural_errors_name_the_dataset(tmp_path, entry, match):
    (tmp_path / "meta-validation-dataset.json").write_text(json.dumps({"5971": {"43": entry}}))
    with pytest.raises(DatasetFormatError, match=match):
        read_hpob(tmp_path, "5971", "validation")


def test_bad_init_indices(hpob_root):
    root, _, _ = hpob_root
    (root / "bo-initializations.json").write_text(json.dumps({"5971": {"37": {"test0": [0, 70]}}}))
    with pytest.raises(DatasetFormatError, match="dataset 37, seed test0: index 70 is outside"):
        read_hpob(root, "5971", "test")
    (root / "bo-initializations.json").write_text(json.dumps({"5971": {"37": {"test0": [0.5]}}}))
    with pytest.raises(DatasetFormatError, match="integer row indices"):
        read_hpob(root, "5971", "test")

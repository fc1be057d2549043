"""Datasets and models of the collector."""

import random

import jax
import numpy as np
import pytest

from metabo.collect.tasks import (
    DATASETS,
    DEFAULT_TASKS,
    MODELS,
    PD1_SCALE_TASKS,
    TaskSpec,
    load_dataset,
    parse_task,
    stride2_patches,
)


@pytest.mark.parametrize(
    "name,shape,classes",
    [
        ("digits", (8, 8, 1), 10),
        ("breast_cancer", (30,), 2),
        ("wine", (13,), 3),
        pytest.param("mnist1d", (40, 1), 10, marks=pytest.mark.slow),  # generated in Python: seconds
        pytest.param("mnist5k", (28, 28, 1), 10, marks=pytest.mark.slow),  # parses a text file: seconds
    ],
)
def test_datasets_split_and_standardize(name, shape, classes):
    data = load_dataset(name)
    assert data.input_shape == shape and data.num_classes == classes
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    n = len(data.y_train) + len(data.y_valid)
    assert abs(len(data.y_valid) - 0.2 * n) <= 1
    assert abs(float(data.x_train.mean())) < 0.05
    assert set(np.unique(data.y_valid)) <= set(range(classes))


def test_split_is_deterministic():
    a = load_dataset.__wrapped__("wine")
    b = load_dataset.__wrapped__("wine")
    np.testing.assert_array_equal(a.x_valid, b.x_valid)
    c = load_dataset.__wrapped__("wine", split_seed=1)
    assert not np.array_equal(a.y_valid, c.y_valid)


def test_validation_is_held_out():
    data = load_dataset("digits")
    train = {row.tobytes() for row in data.x_train}
    overlap = sum(row.tobytes() in train for row in data.x_valid)
    assert overlap <= 5  # digits has a few exact duplicate images, no shared rows beyond that


def test_mnist1d_leaves_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    expected_np = np.random.random()
    expected_py = random.random()
    np.random.seed(123)
    random.seed(123)
    load_dataset.__wrapped__("mnist1d")
    assert np.random.random() == expected_np
    assert random.random() == expected_py


@pytest.mark.parametrize("shape", [(2, 7, 9, 2), (2, 40, 1)])
def test_stride2_patches_equal_a_convolution(shape):
    k = len(shape) - 2
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (3,) * k + (shape[-1], 5))
    numbers = ("NWC", "WIO", "NWC") if k == 1 else ("NHWC", "HWIO", "NHWC")
    want = jax.lax.conv_general_dilated(x, w, (2,) * k, "SAME", dimension_numbers=numbers)
    got = stride2_patches(x) @ w.reshape(-1, 5)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "model,shape", [("mlp_small", (13,)), ("mlp_large", (8, 8, 1)), ("cnn", (8, 8, 1)), ("cnn", (40, 1))]
)
def test_models_output_logits(model, shape):
    m = MODELS[model]
    params = m.init(jax.random.key(0), shape, 7)
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(params))
    logits = jax.jit(m.apply)(params, np.zeros((5, *shape), np.float32))
    assert logits.shape == (5, 7) and logits.dtype == np.float32


def test_cnn_rejects_tables():
    with pytest.raises(ValueError, match="images"):
        MODELS["cnn"].check_input((13,))


def test_generated_tables_and_the_residual_mlp():
    for name, classes, features in (("hastie", 2, 10), ("synth", 5, 20)):
        data = load_dataset(name)
        assert data.num_classes == classes and data.x_train.shape == (3200, features)
        assert len(data.y_valid) == 800 and set(np.unique(data.y_train)) == set(range(classes))
        # Standardized with training statistics, per feature.
        np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    model = MODELS["resmlp"]
    params = model.init(jax.random.key(0), (10,), 2)
    x = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    h = np.maximum(x @ np.asarray(params["dense0"]["w"]) + np.asarray(params["dense0"]["b"]), 0)
    for i in (1, 2):  # residual blocks: h + relu(h W + b), computed independently here
        layer = params[f"dense{i}"]
        h = h + np.maximum(h @ np.asarray(layer["w"]) + np.asarray(layer["b"]), 0)
    expected = h @ np.asarray(params["out"]["w"]) + np.asarray(params["out"]["b"])
    np.testing.assert_allclose(np.asarray(model.apply(params, x)), expected, rtol=1e-4, atol=1e-5)


def test_task_names_and_parsing():
    assert len(DEFAULT_TASKS) >= 12 and len({t.name for t in DEFAULT_TASKS}) == len(DEFAULT_TASKS)
    assert {t.dataset for t in DEFAULT_TASKS} | {t.dataset for t in PD1_SCALE_TASKS} == set(DATASETS)
    # The PD1-scale design: 24 distinct tasks, six datasets, three model families.
    assert len({t.name for t in PD1_SCALE_TASKS}) == len(PD1_SCALE_TASKS) == 24
    assert len({t.dataset for t in PD1_SCALE_TASKS}) >= 6
    assert {MODELS[t.model].kind for t in PD1_SCALE_TASKS} == {"mlp", "cnn", "resmlp"}
    task = parse_task("digits-mlp_small-bs32")
    assert task == TaskSpec("digits", "mlp_small", 32, 8)  # default epochs of that task
    assert parse_task("wine-mlp_large-bs8:3").epochs == 3
    assert parse_task("wine-mlp_large-bs8", epochs=4).epochs == 4
    with pytest.raises(ValueError, match="cannot parse"):
        parse_task("digits_mlp")
    with pytest.raises(ValueError, match="unknown dataset"):
        parse_task("cifar-mlp_small-bs32")
    with pytest.raises(ValueError, match="table"):
        TaskSpec("wine", "cnn", 8, 1)

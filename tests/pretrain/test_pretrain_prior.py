"""The Prior: save/load round trip, clear errors on bad files, atomic writes, predictions."""

import json
import os
import zipfile

import jax
import numpy as np
import pytest

from metabo import __version__
from metabo.gp import GPModel, posterior
from metabo.pretrain import Prior, PriorFileError
from metabo.pretrain import prior as prior_module
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (
        Parameter("lr", "real", 1e-4, 1.0, log=True),
        Parameter("layers", "int", 1, 8),
        Parameter("p", "real", 0.0, 1.0),
    ),
    Objective("error", "minimize", "neg_log"),
)


def make_prior(model=None):
    model = model or GPModel("mlp", "matern32", feature_sizes=(4,), mean_hidden=(3,))
    params = model.init(jax.random.PRNGKey(4), SPACE.dim, y_mean=1.2, y_var=0.7)
    params = model.with_hyper(
        params, lengthscale=np.array([0.2, 0.3, 0.9, 1.1])[: model.feature_dim(SPACE.dim)], noise=0.03
    )
    return Prior(
        model,
        params,
        SPACE,
        tasks=("mnist", "cifar"),
        losses={"train": 0.5, "train_nll": 0.5, "heldout_nll": float("nan")},
        info={"objective": "nll", "steps": 10, "seed": 3, "curve": np.array([1.0, 0.5])},
    )


def test_save_load_round_trip(tmp_path):
    prior = make_prior()
    path = tmp_path / "prior.npz"
    prior.save(path)
    loaded = Prior.load(path)
    assert loaded.model == prior.model
    assert loaded.space == prior.space
    assert loaded.tasks == ("mnist", "cifar")
    assert loaded.losses == {"train": 0.5, "train_nll": 0.5, "heldout_nll": None}  # NaN -> null in JSON
    assert loaded.info["curve"] == [1.0, 0.5] and loaded.info["seed"] == 3
    for a, b in zip(
        jax.tree_util.tree_leaves(loaded.params), jax.tree_util.tree_leaves(prior.params), strict=True
    ):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)  # bit-exact
    x = np.random.default_rng(0).random((5, 3))
    np.testing.assert_array_equal(loaded.cov(x), prior.cov(x))
    # The file is a plain .npz: readable without metabo, no pickles.
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["header"][()]))
        assert header["format"] == "metabo-prior" and header["format_version"] == 1
        assert header["metabo_version"] == __version__
        assert header["space"]["objective"]["transform"] == "neg_log"
        assert header["model"]["kernel"] == "matern32"
        np.testing.assert_array_equal(archive["param/raw_lengthscale"], prior.params.raw_lengthscale)


def test_truncated_file_raises_clear_error(tmp_path):
    path = tmp_path / "prior.npz"
    make_prior().save(path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(PriorFileError, match="truncated or corrupted"):
            Prior.load(bad)


def test_corrupted_bytes_raise_clear_error(tmp_path):
    path = tmp_path / "prior.npz"
    make_prior().save(path)
    data = bytearray(path.read_bytes())
    # Flip a byte inside the stored parameter data: the zip CRC catches it.
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("param/raw_lengthscale.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 3
    data[offset] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(PriorFileError, match="corrupted"):
        Prior.load(bad)


def rewrite(path, out, header_edit=None, drop=(), replace=None):
    """Copy a prior archive, editing its header or arrays."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k not in drop}
    header = json.loads(str(arrays["header"][()]))
    if header_edit:
        header_edit(header)
    arrays["header"] = np.asarray(json.dumps(header))
    arrays.update(replace or {})
    with open(out, "wb") as fh:
        np.savez(fh, **arrays)
    return out


@pytest.mark.parametrize(
    "edit, message",
    [
        (dict(header_edit=lambda h: h.update(format_version=99)), "upgrade metabo"),
        (dict(header_edit=lambda h: h.update(format="something-else")), "not a metabo prior"),
        (dict(header_edit=lambda h: h.pop("space")), "lacks"),
        (dict(header_edit=lambda h: h["model"].update(kernel="rbf9")), "not supported"),
        (dict(header_edit=lambda h: h["model"].update(feature_sizes=[7])), "shape"),
        (dict(header_edit=lambda h: h["model"].update(feature_sizes=[])), "do not fit model"),
        (dict(header_edit=lambda h: h["space"]["parameters"].pop()), "do not fit model|shape"),
        (dict(header_edit=lambda h: h["space"].update(parameters=[])), "search space"),
        (dict(drop=("param/raw_noise",)), "corrupted"),
        (dict(replace={"param/raw_signal": np.ones(3)}), "shape"),
        (dict(replace={"param/raw_signal": np.asarray(np.nan)}), "finite"),
    ],
)
def test_incompatible_files_raise_clear_errors(tmp_path, edit, message):
    path = tmp_path / "prior.npz"
    make_prior().save(path)
    bad = rewrite(path, tmp_path / "bad.npz", **edit)
    with pytest.raises(PriorFileError, match=message):
        Prior.load(bad)


def test_not_a_prior_file(tmp_path):
    with pytest.raises(PriorFileError, match="does not exist"):
        Prior.load(tmp_path / "missing.npz")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(PriorFileError, match="not a metabo prior"):
        Prior.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.ones(3))
    with pytest.raises(PriorFileError, match="no header"):
        Prior.load(other)
    badjson = tmp_path / "badjson.npz"
    with open(badjson, "wb") as fh:
        np.savez(fh, header=np.asarray("{not json"))
    with pytest.raises(PriorFileError, match="not valid JSON"):
        Prior.load(badjson)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "prior.npz"
    make_prior().save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(prior_module.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        Prior.default(SPACE).save(path)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["prior.npz"]  # no temporary left behind


def test_default_prior_values():
    prior = Prior.default(SPACE)
    h = prior.hyperparameters()
    assert h["mean_constant"] == 0.0
    np.testing.assert_allclose(h["lengthscale"], 0.5, rtol=1e-9)
    np.testing.assert_allclose([h["signal"], h["noise"]], [1.0, 0.01], rtol=1e-9)
    assert prior.tasks == () and prior.info["kind"] == "default"


def test_predict_matches_gp_posterior_and_prior_without_data():
    prior = make_prior(GPModel())
    rng = np.random.default_rng(1)
    x, xq = rng.random((6, 3)), rng.random((4, 3))
    y = rng.standard_normal(6)
    mean, var = prior.predict(x, y, xq)
    ref_mean, ref_var = jax.jit(posterior, static_argnums=0)(prior.model, prior.params, x, y, xq)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-10)
    np.testing.assert_allclose(var, ref_var, rtol=1e-10)
    _, noisy = prior.predict(x, y, xq, include_noise=True)
    np.testing.assert_allclose(noisy - var, prior.hyperparameters()["noise"], rtol=1e-9)
    mean0, var0 = prior.predict(np.zeros((0, 3)), np.zeros(0), xq)
    np.testing.assert_allclose(mean0, prior.mean(xq))
    np.testing.assert_allclose(var0, np.diag(prior.cov(xq)), rtol=1e-12)
    state = prior.condition(x, y)
    assert state.chol.shape == (6, 6) and float(state.jitter) == 0.0


def test_bad_inputs_raise_value_errors():
    prior = Prior.default(SPACE)
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        prior.mean(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="3 values for 2 points"):
        prior.condition(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        prior.predict(np.zeros((1, 3)), np.array([np.nan]), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="shape"):
        Prior(GPModel(), GPModel().init(jax.random.PRNGKey(0), 2), SPACE)


# ---- the failure model (metabo.failure) in the prior file ----------------------------------------
def failure_params(dim=SPACE.dim, seed=5):
    from metabo.failure import FailureParams, num_features

    return FailureParams(np.random.default_rng(seed).normal(size=num_features(dim)), np.asarray(0.5))


def test_failure_model_round_trip_and_files_without_one(tmp_path):
    import dataclasses

    from metabo.failure import failure_probability, update

    plain = make_prior()
    prior = dataclasses.replace(plain, failure=failure_params())
    path = tmp_path / "prior.npz"
    prior.save(path)
    loaded = Prior.load(path)
    for a, b in zip(loaded.failure, prior.failure, strict=True):
        assert np.asarray(a).dtype == np.float64
        np.testing.assert_array_equal(a, b)  # bit-exact
    assert loaded.digest == prior.digest != plain.digest
    u = np.random.default_rng(1).random((6, SPACE.dim))
    np.testing.assert_allclose(
        failure_probability(update(loaded.failure, u[:3], np.array([True, False, False])), u),
        failure_probability(update(prior.failure, u[:3], np.array([True, False, False])), u),
        rtol=1e-12,
    )
    with np.load(path, allow_pickle=False) as archive:
        assert json.loads(str(archive["header"][()]))["failure"] == {"features": "quadratic"}
        np.testing.assert_array_equal(archive["failure/weights"], prior.failure.weights)
    # A file without one (every file written before failure models) loads with failure=None and
    # keeps its digest.
    plain.save(tmp_path / "plain.npz")
    old = Prior.load(tmp_path / "plain.npz")
    assert old.failure is None and old.digest == plain.digest
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as archive:
        assert not any(name.startswith("failure/") for name in archive.files)


@pytest.mark.parametrize(
    "edit, message",
    [
        (dict(drop=("failure/scale",)), "failure model needs"),
        (dict(header_edit=lambda h: h.pop("failure")), "header has no failure model"),
        (dict(header_edit=lambda h: h.update(failure={"features": "cubic"})), "not supported"),
        (dict(replace={"failure/weights": np.ones(3)}), "needs weights"),
        (dict(replace={"failure/scale": np.asarray(-1.0)}), "scale positive"),
    ],
)
def test_bad_failure_models_in_files_raise_clear_errors(tmp_path, edit, message):
    import dataclasses

    path = tmp_path / "prior.npz"
    dataclasses.replace(make_prior(), failure=failure_params()).save(path)
    with pytest.raises(PriorFileError, match=message):
        Prior.load(rewrite(path, tmp_path / "bad.npz", **edit))


def test_a_failure_model_of_the_wrong_size_is_refused():
    import dataclasses

    with pytest.raises(ValueError, match="needs weights"):
        dataclasses.replace(make_prior(), failure=failure_params(dim=2))

"""optuna-dashboard serving a study that PretrainedGPSampler drove: the prior's prediction for
each trial is there to compare with the observed value (optional extra ``metabo[dashboard]``)."""

from __future__ import annotations

import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import optuna
import pytest

optuna_dashboard = pytest.importorskip("optuna_dashboard")

from metabo.gp import GPModel  # noqa: E402
from metabo.integrations.optuna import PretrainedGPSampler  # noqa: E402
from metabo.pretrain import Prior  # noqa: E402
from metabo.space import Objective, Parameter, Space  # noqa: E402

SPACE = Space((Parameter("x", "real", 0.0, 1.0), Parameter("y", "real", 0.0, 1.0)), Objective("loss", "minimize"))


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def test_dashboard_shows_predicted_and_observed_values(tmp_path):
    import jax

    model = GPModel(mean="constant", kernel="matern52")
    params = model.with_hyper(model.init(jax.random.key(0), 2), lengthscale=np.array([0.3, 0.3]), signal=1.0, noise=1e-4)
    storage_url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        study_name="live", storage=storage_url, direction="minimize", sampler=PretrainedGPSampler(Prior(model, params, SPACE), seed=0)
    )
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2 + (t.suggest_float("y", 0, 1) - 0.6) ** 2, n_trials=5)

    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(storage_url), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as response:
            summaries = json.load(response)["study_summaries"]
        (summary,) = [s for s in summaries if s["study_name"] == "live"]
        with urllib.request.urlopen(f"{base}/api/studies/{summary['study_id']}", timeout=30) as response:
            detail = json.load(response)
        with urllib.request.urlopen(f"{base}/dashboard", timeout=30) as response:
            assert response.status == 200
    finally:
        server.shutdown()
        thread.join(timeout=10)

    assert "metabo:predicted_value" in {a["key"] for a in detail["union_user_attrs"]}
    served = {t["number"]: t for t in detail["trials"]}
    assert len(served) == 5
    for trial in study.trials:
        attrs = {a["key"]: a["value"] for a in served[trial.number]["user_attrs"]}
        # The dashboard serializes attribute values as text.
        assert float(attrs["metabo:predicted_value"]) == pytest.approx(trial.user_attrs["metabo:predicted_value"], rel=1e-9)
        assert served[trial.number]["values"] == pytest.approx([trial.value], rel=1e-9)
    # The 68% interval brackets the predicted median.
    last = study.trials[-1]
    low, high = last.user_attrs["metabo:predicted_interval"]
    assert low <= last.user_attrs["metabo:predicted_value"] <= high

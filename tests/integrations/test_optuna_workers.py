"""PretrainedGPSampler with several worker processes on one shared Optuna storage (SQLite and a
journal file), one of them SIGKILLed in the middle of a trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optuna
import pytest

from metabo import Prior
from metabo.gp import GPModel
from metabo.integrations.optuna import CLAIM_KEY
from metabo.space import Objective, Parameter, Space

WORKER = Path(__file__).with_name("optuna_worker.py")
SPACE = Space(
    (
        Parameter("lr", "real", 1e-4, 1.0, log=True),
        Parameter("units", "int", 8, 256, log=True),
        Parameter("dropout", "real", 0.0, 0.5),
    ),
    Objective("loss", "minimize"),
)


def _prior_file(tmp_path: Path) -> Path:
    model = GPModel(mean="constant", kernel="matern52")
    params = model.init(jax.random.key(0), SPACE.dim)
    params = model.with_hyper(params, lengthscale=np.array([0.3, 0.4, 0.5]), signal=1.0, noise=1e-4)
    path = tmp_path / "prior.npz"
    Prior(model, params, SPACE).save(path)
    return path


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on loopback, started for these tests (skipped where the
    server binaries or psycopg2 are missing). -> its SQLAlchemy URL."""
    import shutil
    import socket

    pytest.importorskip("psycopg2")
    binaries = {name: shutil.which(name) for name in ("initdb", "postgres")}
    if not all(binaries.values()):
        pytest.skip("no PostgreSQL server binaries (initdb, postgres) on PATH")
    import tempfile

    # Not under pytest's temporary folder: its parents are private to this user, and as root the
    # server runs as another one.
    root = Path(tempfile.mkdtemp(prefix="metabo-postgres-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a postgres user")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    init = subprocess.run(
        prefix + [binaries["initdb"], "-D", str(data), "-A", "trust", "-U", "metabo", "--no-sync"], capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        prefix + [binaries["postgres"], "-D", str(data), "-k", str(root), "-h", "127.0.0.1", "-p", str(port), "-c", "fsync=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import psycopg2

    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="metabo", dbname="postgres").close()
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.skip("the PostgreSQL server did not start")
            time.sleep(0.2)
    yield f"postgresql+psycopg2://metabo@127.0.0.1:{port}/postgres"
    server.terminate()
    server.wait(30)
    shutil.rmtree(root, ignore_errors=True)


def _storage(kind: str, tmp_path: Path, postgres_url: str | None = None) -> tuple[str, object]:
    if kind == "postgresql":
        return postgres_url, optuna.storages.RDBStorage(postgres_url)
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'study.db'}"
        return url, optuna.storages.RDBStorage(url)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = tmp_path / "study.journal"
    return f"journal:{path}", JournalStorage(JournalFileBackend(str(path)))


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory) -> dict:
    """Environment for worker processes: one persistent JAX compilation cache shared by this
    module's runs (every worker compiles the same BO steps; later runs read them back)."""
    folder = tmp_path_factory.mktemp("jax-cache")
    return {
        "JAX_COMPILATION_CACHE_DIR": str(folder),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _run_workers(kind: str, tmp_path: Path, workers: int, trials: int, postgres_url: str | None = None, env=None) -> dict:
    spec, storage = _storage(kind, tmp_path, postgres_url)
    optuna.create_study(study_name=f"shared-{trials}", storage=storage, direction="minimize")
    prior = _prior_file(tmp_path)
    marker = tmp_path / "hanging"
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    procs = []
    for i in range(workers):
        cmd = [sys.executable, str(WORKER), "--storage", spec, "--study", f"shared-{trials}", "--prior", str(prior)]
        cmd += ["--trials", str(trials), "--log", str(tmp_path / f"worker{i}.jsonl"), "--seed", str(i)]
        if i == 0:  # the victim: killed in the middle of its third trial
            cmd += ["--hang-at", "2", "--hang-marker", str(marker)]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert procs[0].poll() is None, procs[0].stderr.read()
        assert time.monotonic() < deadline, "the victim never reached its hanging trial"
        time.sleep(0.1)
    hung = int(marker.read_text())
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    errors = []
    for proc in procs[1:]:
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert proc.returncode == 0, err
        errors.append(err)
    told = [json.loads(line) for i in range(workers) for line in (tmp_path / f"worker{i}.jsonl").read_text().splitlines()]
    study = optuna.load_study(study_name=f"shared-{trials}", storage=storage)
    return {"told": told, "trials": study.get_trials(deepcopy=False), "hung": hung, "stderr": "\n".join(errors)}


@pytest.mark.parametrize(
    "kind, workers, trials",
    [
        # The default run keeps it light (every worker process compiles the BO steps); the slow
        # set has every storage, PostgreSQL (a server started for the test) included, at the
        # issue's size: 4 processes x 30 trials (about a minute each here).
        ("sqlite", 3, 5),
        pytest.param("journal", 4, 6, marks=pytest.mark.slow),
        pytest.param("postgresql", 4, 6, marks=pytest.mark.slow),
        pytest.param("sqlite", 4, 30, marks=pytest.mark.slow),
        pytest.param("journal", 4, 30, marks=pytest.mark.slow),
        pytest.param("postgresql", 4, 30, marks=pytest.mark.slow),
    ],
)
def test_workers_get_distinct_configurations_and_lose_no_told_trial(kind, workers, trials, tmp_path, request, compilation_cache):
    postgres_url = request.getfixturevalue("postgres") if kind == "postgresql" else None
    run = _run_workers(kind, tmp_path, workers, trials, postgres_url, env=compilation_cache)
    by_number = {t.number: t for t in run["trials"]}

    # No told trial lost: every trial a worker told is COMPLETE in the storage with its value.
    assert len(run["told"]) == 2 + (workers - 1) * trials  # the victim told 2 before it was killed
    for record in run["told"]:
        stored = by_number[record["number"]]
        assert stored.state == optuna.trial.TrialState.COMPLETE
        assert stored.value == pytest.approx(record["value"], rel=1e-12)
        assert stored.params == pytest.approx(record["params"], rel=1e-12)

    # None duplicated: every configuration handed out (the killed one included) is distinct.
    configs = [tuple(sorted(t.params.items())) for t in run["trials"] if len(t.params) == SPACE.dim]
    assert len(configs) == len(run["trials"]) == len(run["told"]) + 1
    assert len(set(configs)) == len(configs), run["stderr"]
    # Each trial's parameters are the point its claim says (in the prior's unit cube).
    for t in run["trials"]:
        claim = np.asarray(t.system_attrs[CLAIM_KEY])
        row = np.asarray([[float(t.params[name]) for name in SPACE.names]])
        np.testing.assert_allclose(SPACE.to_unit(row)[0], claim, atol=1e-9)

    # The killed trial: failed by the heartbeat on the RDBs (a failure for the sampler from then on);
    # the journal storage has no heartbeat, so it stays RUNNING (a pending point).
    # The storage fails it once its heartbeat is older than the grace period (optimize does this
    # before each trial; a worker started now would).
    killed = by_number[run["hung"]]
    assert killed.state == optuna.trial.TrialState.RUNNING or kind != "journal"
    if kind != "journal":
        time.sleep(2.5)
        url = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else postgres_url
        study = optuna.load_study(
            study_name=f"shared-{trials}", storage=optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)
        )
        optuna.storages.fail_stale_trials(study)
        assert study.trials[run["hung"]].state == optuna.trial.TrialState.FAIL
